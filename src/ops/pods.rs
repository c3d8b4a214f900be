//! The day-to-day commands on running pods: `logs` (every pod of a deployment, merged in
//! time order, followed across rollouts), `exec` (a command in one pod) and `ps` (every
//! managed container). Which containers they act on is decided from one observation, in
//! [`pod_containers`] (pure).

pub use crate::hosts::console::ExecMode;
use crate::hosts::console::{Console, LogRequest};
use crate::hosts::observe::ObserveOptions;
use crate::hosts::Fleet;
use crate::model::{label, DesiredState, ObservedHost, Selector};
use crate::render::logs::{merge, LogLine, LogSource};
use miette::miette;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What a command acts on: a deployment (or every one), narrowed by `-l` and `--host`.
#[derive(Debug, Clone, Default)]
pub struct PodFilter {
    pub deployment: Option<String>,
    pub selector: Option<Selector>,
    pub host: Option<String>,
}

/// One container of a pod, where it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodContainer {
    pub host: String,
    pub deployment: String,
    pub pod: String,
    pub container: String,
    /// The Docker name.
    pub name: String,
    pub running: bool,
    pub ready: bool,
}

/// The deployments a filter names, checked against Git.
pub fn deployments(
    desired: &DesiredState,
    filter: &PodFilter,
) -> crate::ops::Result<BTreeSet<String>> {
    let declared: Vec<&str> = desired
        .deployments
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    if let Some(name) = &filter.deployment {
        if !declared.contains(&name.as_str()) {
            return Err(miette!(
                help = format!("the deployments are: {}", declared.join(", ")),
                "there is no deployment named {name} in the repository"
            )
            .into());
        }
    }
    Ok(desired
        .deployments
        .iter()
        .filter(|d| filter.deployment.as_ref().is_none_or(|n| n == &d.name))
        .filter(|d| {
            filter
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&d.labels))
        })
        .map(|d| d.name.clone())
        .collect())
}

/// The pod containers of `deployments` in the observation, by host, pod and place in the pod
/// (jobs and other containers are not pods).
pub fn pod_containers(
    observed: &BTreeMap<String, Result<ObservedHost, String>>,
    project: &str,
    deployments: &BTreeSet<String>,
    host: Option<&str>,
) -> Vec<PodContainer> {
    let mut out: Vec<(PodContainer, String)> = Vec::new();
    for (h, o) in observed {
        let Ok(o) = o else { continue };
        if host.is_some_and(|want| want != h) {
            continue;
        }
        for c in &o.containers {
            let (Some(d), Some(pod), Some(name)) = (
                c.label(label::DEPLOYMENT),
                c.label(label::POD),
                c.label(label::CONTAINER),
            ) else {
                continue;
            };
            if c.label(label::PROJECT) != Some(project) || !deployments.contains(d) {
                continue;
            }
            let ready = c.is_running()
                && !matches!(
                    c.health,
                    Some(crate::model::Health::Unhealthy | crate::model::Health::Starting)
                );
            out.push((
                PodContainer {
                    host: h.clone(),
                    deployment: d.to_string(),
                    pod: pod.to_string(),
                    container: name.to_string(),
                    name: c.name.clone(),
                    running: c.is_running(),
                    ready,
                },
                c.label(label::INDEX).unwrap_or("0").to_string(),
            ));
        }
    }
    out.sort_by(|(a, ai), (b, bi)| (&a.host, &a.pod, ai).cmp(&(&b.host, &b.pod, bi)));
    out.into_iter().map(|(c, _)| c).collect()
}

/// What `berth logs` asks of each container.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    /// Unix seconds: only lines written since.
    pub since: Option<i64>,
    /// The last lines of each container (all when `None`).
    pub tail: Option<u64>,
    pub timestamps: bool,
}

fn source_of(c: &PodContainer, pods_with_many: &BTreeSet<String>) -> LogSource {
    LogSource {
        host: c.host.clone(),
        pod: c.pod.clone(),
        container: pods_with_many.contains(&c.pod).then(|| c.container.clone()),
    }
}

impl LogsOptions {
    fn request(&self) -> LogRequest {
        LogRequest {
            follow: self.follow,
            since: self.since,
            tail: self.tail,
        }
    }
}

/// How often a follow looks for new pods (a rollout's).
const NEW_PODS_EVERY: Duration = Duration::from_secs(2);

/// Prints the logs of the filter's pods: merged in time order, or, with `follow`, as they
/// come until `stop` resolves, taking in new pods as they appear.
pub async fn logs(
    fleet: &Fleet,
    project: &str,
    deployments: &BTreeSet<String>,
    host: Option<&str>,
    options: &LogsOptions,
    print: &(dyn Fn(&str) + Send + Sync),
    stop: impl std::future::Future<Output = ()>,
) -> crate::ops::Result<usize> {
    let observe = ObserveOptions {
        project: project.to_string(),
        ..Default::default()
    };
    let containers = pod_containers(
        &super::context::observe(fleet, &observe).await,
        project,
        deployments,
        host,
    );
    let many = pods_with_many(&containers);
    let width = containers
        .iter()
        .map(|c| source_of(c, &many).prefix().len())
        .max()
        .unwrap_or(0);
    if !options.follow {
        let reads = containers.iter().map(|c| async {
            let Some(connected) = fleet.connected.get(&c.host) else {
                return (source_of(c, &many), vec![]);
            };
            let mut lines = Vec::new();
            let request = options.request();
            (connected.log_lines(&c.name, &request, &mut |l| lines.push(l))).await;
            (source_of(c, &many), lines)
        });
        let streams = futures_util::future::join_all(reads).await;
        let merged: Vec<LogLine> = merge(streams);
        for l in &merged {
            print(&l.render(width, options.timestamps));
        }
        return Ok(containers.len());
    }
    let (send, mut receive) = tokio::sync::mpsc::unbounded_channel::<LogLine>();
    let mut following: BTreeSet<String> = BTreeSet::new();
    let mut follow = |c: &PodContainer, options: LogsOptions| {
        let Some(connected) = fleet.connected.get(&c.host) else {
            return;
        };
        if !following.insert(c.name.clone()) {
            return;
        }
        let connected = connected.clone();
        let source = source_of(c, &many);
        let name = c.name.clone();
        let send = send.clone();
        tokio::spawn(async move {
            let request = options.request();
            let mut line = |l: String| {
                let _ = send.send(LogLine::parse(&source, &l));
            };
            connected.log_lines(&name, &request, &mut line).await;
        });
    };
    for c in &containers {
        follow(c, options.clone());
    }
    tokio::pin!(stop);
    let mut look = tokio::time::interval(NEW_PODS_EVERY);
    look.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(line) = receive.recv() => print(&line.render(width, options.timestamps)),
            _ = look.tick() => {
                let now = pod_containers(&super::context::observe(fleet, &observe).await, project, deployments, host);
                // A new pod's lines from its start, whatever --since and --tail said.
                let fresh = LogsOptions { since: None, tail: None, ..options.clone() };
                for c in &now {
                    follow(c, fresh.clone());
                }
            }
        }
    }
    Ok(following.len())
}

fn pods_with_many(containers: &[PodContainer]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut many = BTreeSet::new();
    for c in containers {
        if !seen.insert(&c.pod) {
            many.insert(c.pod.clone());
        }
    }
    many
}

/// The container `berth exec` runs in: the named pod's (or else the first ready pod's, by
/// host and name), its first container unless one is named.
pub fn choose<'c>(
    containers: &'c [PodContainer],
    pod: Option<&str>,
    container: Option<&str>,
) -> Result<&'c PodContainer, String> {
    fn of<'c>(all: &'c [PodContainer], p: &str) -> impl Iterator<Item = &'c PodContainer> {
        let p = p.to_string();
        all.iter().filter(move |c| c.pod == p)
    }
    let of_pod = |p: &str| of(containers, p);
    let pod = match pod {
        Some(p) => {
            if of_pod(p).next().is_none() {
                return Err(format!("there is no pod {p} among the deployment's pods"));
            }
            p.to_string()
        }
        None => {
            let ready = containers
                .iter()
                .find(|c| of_pod(&c.pod).all(|o| o.ready))
                .or_else(|| containers.iter().find(|c| c.running));
            match ready {
                Some(c) => c.pod.clone(),
                None => return Err("no pod of the deployment is running".into()),
            }
        }
    };
    match container {
        None => Ok(of_pod(&pod).next().expect("the pod has containers")),
        Some(name) => of_pod(&pod).find(|c| c.container == name).ok_or_else(|| {
            let names: Vec<&str> = of_pod(&pod).map(|c| c.container.as_str()).collect();
            format!(
                "pod {pod} has no container {name}; it has {}",
                names.join(", ")
            )
        }),
    }
}

/// Runs `command` in the pod container `container` on `host`, its output on berth's, its
/// input from berth's when asked; the command's exit code.
pub async fn exec(
    fleet: &Fleet,
    host: &str,
    container: &str,
    command: &[String],
    mode: ExecMode,
) -> crate::ops::Result<i64> {
    let connected =
        (fleet.connected.get(host)).ok_or_else(|| miette!("{host} is not connected"))?;
    let code = connected.exec(container, command, mode).await;
    Ok(code.map_err(|e| miette!("{e}"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(host: &str, pod: &str, container: &str, ready: bool) -> PodContainer {
        PodContainer {
            host: host.into(),
            deployment: "web".into(),
            pod: pod.into(),
            container: container.into(),
            name: format!("{pod}-{container}"),
            running: true,
            ready,
        }
    }

    #[test]
    fn exec_picks_the_named_pod_or_the_first_ready_one() {
        let all = vec![
            c("h1", "web-a-0", "app", false),
            c("h1", "web-a-0", "side", true),
            c("h2", "web-a-1", "app", true),
            c("h2", "web-a-1", "side", true),
        ];
        assert_eq!(choose(&all, None, None).unwrap().name, "web-a-1-app");
        assert_eq!(
            choose(&all, Some("web-a-0"), Some("side")).unwrap().name,
            "web-a-0-side"
        );
        assert!(choose(&all, Some("web-b-0"), None)
            .unwrap_err()
            .contains("no pod web-b-0"));
        assert!(choose(&all, None, Some("db"))
            .unwrap_err()
            .contains("has app, side"));
        assert!(choose(&[], None, None).is_err());
    }
}

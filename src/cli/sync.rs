//! `berth sync`: converge from cron or CI. It is `berth apply --auto-approve` without a saved
//! plan: plan, apply under the lock, exit 0 when done or when nothing changed, non-zero only
//! on failure (1 error, 3 rolled back, 4 locked). A rollout waiting for `berth promote` is left
//! waiting. With `--every`, it keeps running: read Git (fetch a remote), converge, sleep.

use super::apply;
use super::common::*;
use super::progress::Verbosity;
use crate::ops::context::{load_repo, Depth, Secrets};
use crate::ops::metrics::{serve, Metrics};
use crate::render::Format;
use clap::Args;
use miette::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Converge the hosts to Git without asking (for cron and CI): plan, then apply under the
/// project's lock. Exits non-zero only on failure.
///
/// With --every, berth keeps running as a reconciler: each round reads Git again (fetching a
/// remote repository), repairs drift and rolls out new commits, then sleeps. SIGTERM or
/// Ctrl-C while it sleeps or plans ends it with exit 0; during an apply, the wave in progress
/// is rolled back first, as for any apply.
///
/// Examples:
///   berth sync --repo https://git.example/ops/deploy.git --ref main
///   berth sync --repo https://git.example/ops/deploy.git --every 1m
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct SyncArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub flags: PlanFlags,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Keep running: a sync every DURATION (`30s`, `1m`, `1h`; at least 5s), until SIGTERM
    /// or Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    pub every: Option<Duration>,
    /// With --every: serve Prometheus metrics on this port of loopback (`9187`) or this
    /// address (`0.0.0.0:9187`): last sync time and result, rounds by exit code, ready and
    /// desired pods per deployment, refused commits.
    #[arg(long, value_name = "[ADDR:]PORT", requires = "every", value_parser = crate::ops::metrics::parse_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

/// The shortest pause between rounds: each round observes every host, and rounds back to
/// back would keep their engines busy for nothing.
pub const MIN_EVERY: Duration = Duration::from_secs(5);

fn parse_every(text: &str) -> std::result::Result<Duration, String> {
    let every = parse_duration(text)?;
    if every < MIN_EVERY {
        return Err(format!(
            "{text} is too short: rounds are at least {}s apart",
            MIN_EVERY.as_secs()
        ));
    }
    Ok(every)
}

pub fn run(a: SyncArgs, verbosity: Verbosity) -> Result<u8> {
    let (every, metrics) = (a.every, a.metrics);
    let args = apply::unattended(a.repo, a.ssh, a.flags, a.lock, a.notify, a.format);
    match every {
        None => apply::run(args, verbosity),
        Some(every) => runtime().block_on(keep_syncing(&args, every, metrics, verbosity)),
    }
}

/// The metrics after a round: how it ended, and each deployment's pods as they are now.
async fn measure(metrics: &Mutex<Metrics>, args: &apply::ApplyArgs, code: u8, started: Instant) {
    let ended = crate::here::unix_now();
    let pods = async {
        let desired = load_repo(&args.repo.source(Some(&args.ssh)), Secrets::NotNeeded).ok()?;
        let to = args.ssh.connection().ok()?;
        let s = crate::ops::status::status(&desired, &to, Depth::Shallow, None).await;
        let pods = s
            .deployments
            .iter()
            .map(|d| (d.name.clone(), (d.ready, d.replicas)))
            .collect();
        Some((desired.project.clone(), pods, s.unreachable.len()))
    }
    .await;
    let mut m = metrics.lock().expect("not poisoned");
    m.last_round_end = Some(ended);
    m.last_exit_code = Some(code);
    m.last_round_seconds = started.elapsed().as_secs_f64();
    *m.rounds.entry(code).or_default() += 1;
    if let Some((project, pods, unreachable)) = pods {
        m.project = project;
        m.pods = pods;
        m.unreachable = unreachable;
    }
}

/// What a round applies under a policy that asks for signed commits.
enum Pinned {
    /// The round's arguments, pinned to the commit checked (or as given, without such a
    /// policy).
    At(apply::ApplyArgs),
    /// The newest commit was refused: the round holds the fleet at the last good commit of
    /// this run, or does nothing when there was none.
    Refused(Option<apply::ApplyArgs>),
}

/// Checks the commit a round would read before the round, and pins the round to it, so a
/// push between the check and the round's own read cannot slip in; a refused commit keeps
/// the fleet at the last good one (and repairs drift there).
fn pin_to_trusted(args: &apply::ApplyArgs, last_good: &mut Option<String>) -> Pinned {
    let at = |commit: &str| {
        let mut pinned = args.clone();
        pinned.repo.git_ref = Some(commit.to_string());
        pinned
    };
    if args.repo.policy.is_none() {
        return Pinned::At(args.clone());
    }
    match crate::ops::policy::trusted_commit(&args.repo.source(Some(&args.ssh))) {
        Ok(Some(commit)) => {
            let pinned = at(&commit);
            *last_good = Some(commit);
            Pinned::At(pinned)
        }
        Ok(None) => Pinned::At(args.clone()),
        Err(e) if crate::ops::policy::is_untrusted(&e) => {
            let report = miette::Report::from(e);
            match last_good.as_deref() {
                Some(good) => {
                    eprintln!("sync: {report}; the fleet stays at the last good commit {good}");
                    Pinned::Refused(Some(at(good)))
                }
                None => {
                    eprintln!("sync: {report}; no commit was allowed since berth started, so nothing is applied");
                    Pinned::Refused(None)
                }
            }
        }
        // Any other failure (a fetch, a bad policy) is the round's own to report.
        Err(_) => Pinned::At(args.clone()),
    }
}

/// Syncs, sleeps `every`, and again, until a signal: one round's failure is reported and the
/// next round tries again.
async fn keep_syncing(
    args: &apply::ApplyArgs,
    every: Duration,
    metrics_at: Option<std::net::SocketAddr>,
    verbosity: Verbosity,
) -> Result<u8> {
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    if let Some(addr) = metrics_at {
        serve(addr, metrics.clone())
            .await
            .map_err(|e| miette::miette!("cannot serve metrics on {addr}: {e}"))?;
        eprintln!("sync: metrics on http://{addr}/metrics");
    }
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(tokio::sync::Notify::new());
    {
        let (stopping, stop) = (stopping.clone(), stop.clone());
        tokio::spawn(async move {
            let signal = crate::here::interrupt().await;
            eprintln!("sync: {signal}: stopping after this round");
            stopping.store(true, Ordering::SeqCst);
            stop.notify_one();
        });
    }
    let mut round = 0u64;
    let mut last_good: Option<String> = None;
    while !stopping.load(Ordering::SeqCst) {
        round += 1;
        let started = crate::here::unix_now();
        eprintln!(
            "sync: round {round} at {}",
            crate::model::rollout::rfc3339(started)
        );
        let clock = Instant::now();
        let pinned = pin_to_trusted(args, &mut last_good);
        if metrics_at.is_some() {
            let mut m = metrics.lock().expect("not poisoned");
            m.held_at_last_good = matches!(pinned, Pinned::Refused(_));
            m.refused_commits += u64::from(m.held_at_last_good);
        }
        let code = match &pinned {
            Pinned::Refused(None) => super::exit::ERROR,
            Pinned::Refused(Some(at)) | Pinned::At(at) => {
                match apply::run_async(at, verbosity).await {
                    Ok(code) => code,
                    Err(report) => {
                        eprintln!("sync: round {round} failed: {report:?}");
                        super::exit::ERROR
                    }
                }
            }
        };
        if metrics_at.is_some() {
            let at = match &pinned {
                Pinned::At(at) | Pinned::Refused(Some(at)) => at,
                Pinned::Refused(None) => args,
            };
            measure(&metrics, at, code, clock).await;
        }
        eprintln!("sync: round {round} ended with exit {code}");
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.notified() => break,
        }
    }
    Ok(super::exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rounds_are_at_least_five_seconds_apart() {
        assert!(super::parse_every("0s").unwrap_err().contains("too short"));
        assert!(super::parse_every("4s").is_err());
        assert_eq!(super::parse_every("5s").unwrap().as_secs(), 5);
        assert_eq!(super::parse_every("1m").unwrap().as_secs(), 60);
    }
}

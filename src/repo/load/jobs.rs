//! A deployment's `jobs:` (migrations run before a new revision's pods start), each checked
//! where it is written. Pure.

use super::*;

const DEFAULT_JOB_TIMEOUT_MS: u64 = 10 * 60 * 1000;

pub(super) fn load_jobs(
    l: &mut Loader,
    src: &SourceFile,
    raw: &DeploymentFile,
    pod: &PodSpec,
    placement: &Selector,
    needs_secrets: bool,
) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for j in &raw.jobs {
        l.name(src, &j.name, "job");
        if jobs.iter().any(|o| o.name == j.name.value) {
            l.report(src.error(
                &j.name,
                format!("two jobs of this deployment are named {:?}", j.name.value),
                "again here",
            ));
        }
        let container = match &j.container {
            Some(c) => {
                if !pod.containers.iter().any(|p| p.name == c.value) {
                    let names: Vec<&str> = pod.containers.iter().map(|p| p.name.as_str()).collect();
                    l.report(
                        src.error(
                            c,
                            format!("the pod has no container {:?}", c.value),
                            "not in the pod",
                        )
                        .with_help(format!(
                            "a job runs as one of the pod's containers: {}",
                            names.join(", ")
                        )),
                    );
                }
                c.value.clone()
            }
            None => pod
                .containers
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        };
        let hosts = match &j.hosts {
            Some(s) => l.selector(src, s),
            None => placement.clone(),
        };
        let timeout_ms = l.duration(src, &j.timeout, DEFAULT_JOB_TIMEOUT_MS);
        if timeout_ms == 0 {
            if let Some(t) = &j.timeout {
                l.report(src.error(t, "a job's timeout must be more than zero", "zero"));
            }
        }
        jobs.push(Job {
            name: j.name.value.clone(),
            container,
            command: j.command.as_ref().map(args),
            env: super::env::load_env(l, src, &j.env, needs_secrets),
            hosts,
            timeout_ms,
        });
    }
    jobs
}

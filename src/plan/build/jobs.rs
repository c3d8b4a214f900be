//! A deployment's jobs before its rollout: a wave per job that has not run for the revision
//! being rolled out, on one host, ahead of the waves that create the new pods. Pure.

use super::*;

/// `waves` with the waves of the jobs to run first, when they create pods of the
/// deployment's revision and a job has no record of a run for it. Without a reachable
/// host for a job, the rollout waits (no wave at all) and an issue says why.
pub(super) fn with_jobs(
    cx: &Context,
    d: &Deployment,
    waves: Vec<Wave>,
    plan: &mut DeploymentPlan,
) -> Vec<Wave> {
    if d.jobs.is_empty() {
        return waves;
    }
    let project = &cx.input.desired.project;
    let revision = d.revision(project);
    let prefix = format!("{}-{revision}-", d.name);
    let creates = waves.iter().flat_map(|w| w.steps.values().flatten()).any(
        |s| matches!(s, Step::CreatePod { pod } if pod.deployment == d.name && pod.name.starts_with(&prefix)),
    );
    if !creates {
        return waves;
    }
    let mut out = Vec::new();
    for job in d.jobs.iter().filter(|j| !cx.job_done(d, j, &revision)) {
        let Some(host) = cx.job_host(job) else {
            plan.rollout_issue(
                d,
                format!(
                    "job {} of {} has no reachable host matching {}; the rollout waits for one",
                    job.name, d.name, job.hosts
                ),
            );
            return vec![];
        };
        let Some(plan) = cx.job_plan(d, job, &revision) else {
            continue;
        };
        let mut steps = prepare_steps(project, &plan.container.spec);
        let record = JobRecord {
            deployment: d.name.clone(),
            job: job.name.clone(),
            revision: revision.clone(),
        };
        steps.push(Step::RunJob {
            job: Box::new(plan),
        });
        steps.push(Step::RecordJob { record });
        out.push(Wave {
            description: format!(
                "run job {} on {host} before the new pods of {}",
                job.name, d.name
            ),
            deployment: None,
            steps: BTreeMap::from([(host, steps)]),
            on_failure: BTreeMap::new(),
        });
    }
    out.extend(waves);
    out
}

impl Context<'_> {
    /// Whether a host records that the job ran for this revision.
    fn job_done(&self, d: &Deployment, job: &Job, revision: &str) -> bool {
        self.input
            .observed
            .values()
            .filter_map(|o| o.as_ref().ok())
            .flat_map(|o| &o.jobs)
            .any(|r| r.deployment == d.name && r.job == job.name && r.revision == revision)
    }

    /// The first reachable host (by name) the job's selector matches.
    fn job_host(&self, job: &Job) -> Option<String> {
        let mut hosts: Vec<&Host> = (self.input.desired.hosts.iter())
            .filter(|h| job.hosts.matches(&h.labels))
            .filter(|h| matches!(self.input.observed.get(&h.name), Some(Ok(_))))
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        hosts.first().map(|h| h.name.clone())
    }

    fn job_plan(&self, d: &Deployment, job: &Job, revision: &str) -> Option<JobPlan> {
        let desired = self.input.desired;
        let project = &desired.project;
        let spec = job.spec(&d.pod)?;
        let mut labels = d.labels.clone();
        for (k, v) in [
            (label::PROJECT, project.clone()),
            (label::DEPLOYMENT, d.name.clone()),
            (label::JOB, job.name.clone()),
            (label::REVISION, revision.to_string()),
        ] {
            labels.insert(k.to_string(), v);
        }
        if let Some(commit) = &desired.commit {
            labels.insert(label::COMMIT.to_string(), commit.clone());
        }
        Some(JobPlan {
            deployment: d.name.clone(),
            job: job.name.clone(),
            revision: revision.to_string(),
            network: network_name(project),
            container: ContainerPlan {
                name: names::job_container(&d.name, revision, &job.name),
                spec,
                labels,
            },
            timeout_ms: job.timeout_ms,
        })
    }
}

/// What a job's host needs before the job: the network, its named volumes, its image.
fn prepare_steps(project: &str, spec: &ContainerSpec) -> Vec<Step> {
    let mut steps = vec![Step::EnsureNetwork {
        name: network_name(project),
    }];
    for v in spec.volumes.iter().filter(|v| v.is_named_volume()) {
        steps.push(Step::EnsureVolume {
            name: volume_name(project, &v.source),
        });
    }
    if spec.pull != PullPolicy::Never {
        steps.push(Step::EnsureImage {
            image: spec.pull_ref(),
        });
    }
    steps
}

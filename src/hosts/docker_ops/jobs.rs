//! Jobs: a container run to completion with its output streamed, then removed; and the
//! record that a job ran for a revision (labels on an empty volume, as rollout states are).

use super::PodInputs;
use super::*;
use crate::hosts::engine::JobOutput;
use crate::model::{label, names, JobRecord};
use crate::plan::JobPlan;
use std::time::Duration;

/// Creates the job's container (its files placed), starts it, passes its output on line by
/// line and waits for its exit code; the container is removed however it ends. One left by
/// an apply that died is removed first, so the job runs from its start.
pub async fn run_job(
    docker: &Docker,
    job: &JobPlan,
    project: &str,
    inputs: &PodInputs,
    output: &JobOutput<'_>,
    addresses: &super::Addresses,
) -> Result<i64, OpError> {
    let name = &job.container.name;
    remove_containers(docker, std::slice::from_ref(name), project, 0).await?;
    let (env, _) = env_list(&job.container.spec, inputs.secrets.as_ref(), &inputs.seals)?;
    // A job is created as a pod of one container would be, on the project's network.
    let pod = PodPlan {
        name: name.clone(),
        deployment: job.deployment.clone(),
        network: job.network.clone(),
        aliases: vec![],
        containers: vec![job.container.clone()],
        ingress: None,
    };
    let body = create_body(&pod, 0, project, env);
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker
        .create_container(Some(options), body)
        .await
        .map_err(doing(format!("creating {name}")))?;
    let ran = async {
        place_files(docker, name, &job.container.spec, inputs).await?;
        let starting = addresses.starting().await;
        docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(doing(format!("starting {name}")))?;
        drop(starting);
        let deadline = Duration::from_millis(job.timeout_ms);
        match tokio::time::timeout(deadline, follow(docker, name, output)).await {
            Ok(code) => code,
            Err(_) => Err(OpError::JobTimedOut {
                job: job.job.clone(),
                secs: job.timeout_ms / 1000,
            }),
        }
    }
    .await;
    let removed = remove_containers(docker, std::slice::from_ref(name), project, 0).await;
    let code = ran?;
    removed?;
    Ok(code)
}

/// Streams the container's output until it exits, then its exit code.
async fn follow(docker: &Docker, name: &str, output: &JobOutput<'_>) -> Result<i64, OpError> {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(name, Some(options));
    let mut lines = crate::model::lines::Lines::default();
    while let Some(chunk) = logs.next().await {
        let Ok(chunk) = chunk else { break };
        lines.push(&chunk.into_bytes(), &mut |l| output(&l));
    }
    lines.finish(&mut |l| output(&l));
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut wait = docker.wait_container(name, Some(options));
    match wait.next().await {
        Some(Ok(r)) => Ok(r.status_code),
        // bollard reports a non-zero exit as an error that carries the code.
        Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(doing(format!("waiting for {name}"))(e)),
        None => Err(OpError::Refused(format!(
            "{name} ended without an exit code"
        ))),
    }
}

/// Records that a job ran for a revision (replacing the record of an earlier one).
pub async fn record_job(docker: &Docker, project: &str, record: &JobRecord) -> Result<(), OpError> {
    let name = names::job_record_volume(project, &record.deployment, &record.job);
    remove_volume(docker, &name).await?;
    let mut labels = project_labels(project);
    labels.insert(
        label::JOB_RECORD.to_string(),
        serde_json::to_string(record).expect("a record serialises"),
    );
    let what = format!("recording job {} of {}", record.job, record.deployment);
    record_volume(docker, &name, labels, what).await
}

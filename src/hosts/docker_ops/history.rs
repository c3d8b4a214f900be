//! The audit log on a host: each apply's record in the labels of an empty volume, the
//! oldest removed past [`HISTORY_KEEP`].

use super::*;
use crate::model::history::{
    record_volume as record_volume_name, ApplyRecord, HISTORY_KEEP, HISTORY_LABEL,
    HISTORY_PROJECT_LABEL,
};

/// The project's records on this host, oldest first.
pub async fn history(
    docker: &Docker,
    project: &str,
) -> Result<Vec<(String, ApplyRecord)>, OpError> {
    let filters = HashMap::from([("label", vec![format!("{HISTORY_PROJECT_LABEL}={project}")])]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_volumes(Some(options))
        .await
        .map_err(doing("listing the apply history"))?;
    let mut records: Vec<(String, ApplyRecord)> = list
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            let record = serde_json::from_str(v.labels.get(HISTORY_LABEL)?).ok()?;
            Some((v.name, record))
        })
        .collect();
    records.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(records)
}

/// Adds a record, then removes the oldest past the limit.
pub async fn record_apply(
    docker: &Docker,
    project: &str,
    record: &ApplyRecord,
) -> Result<(), OpError> {
    let labels = HashMap::from([
        (HISTORY_PROJECT_LABEL.to_string(), project.to_string()),
        (
            HISTORY_LABEL.to_string(),
            serde_json::to_string(record).expect("a record serialises"),
        ),
    ]);
    let name = record_volume_name(project, record);
    record_volume(
        docker,
        &name,
        labels,
        "recording the apply in the history".into(),
    )
    .await?;
    let all = history(docker, project).await?;
    for (name, _) in all.iter().take(all.len().saturating_sub(HISTORY_KEEP)) {
        remove_volume(docker, name).await?;
    }
    Ok(())
}

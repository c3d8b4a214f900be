//! Names berth gives to what it creates on a host, derived from the project, deployment and
//! service names. Every other module asks here, so a name is made in one place. Pure.

/// The Docker network every pod of a project joins; service names are aliases on it.
pub fn network_name(project: &str) -> String {
    format!("berth-{project}")
}

/// A named volume of the project, as declared `name:/path` by a container.
pub fn volume_name(project: &str, volume: &str) -> String {
    format!("{project}-{volume}")
}

/// A pod: its deployment, its revision and its ordinal (unique within the deployment).
pub fn pod_name(deployment: &str, revision: &str, ordinal: u32) -> String {
    format!("{deployment}-{revision}-{ordinal}")
}

/// A container of a pod.
pub fn container_name(pod: &str, container: &str) -> String {
    format!("{pod}-{container}")
}

/// The alias a blue-green's new set answers to before its promotion.
pub fn preview_alias(service: &str) -> String {
    format!("{service}-preview")
}

/// The container a deployment's job runs in, for one revision.
pub fn job_container(deployment: &str, revision: &str, job: &str) -> String {
    format!("{deployment}-{revision}-job-{job}")
}

/// The empty volume whose labels record the revision a deployment's job last ran for.
pub fn job_record_volume(project: &str, deployment: &str, job: &str) -> String {
    format!("berth-job-{project}-{deployment}-{job}")
}

/// The empty volume whose labels carry a deployment's rollout state.
pub fn rollout_volume(project: &str, deployment: &str) -> String {
    format!("berth-rollout-{project}-{deployment}")
}

/// The project's apply lock on a host (a network: an engine refuses a second of one name).
pub fn lock_name(project: &str) -> String {
    format!("berth-lock-{project}")
}

/// What every lease volume of one lock's holder starts with.
pub fn lease_prefix(project: &str, id: &str) -> String {
    format!("berth-lease-{project}-{id}-")
}

/// The `n`th lease volume a lock's holder writes.
pub fn lease_name(project: &str, id: &str, n: u64) -> String {
    format!("{}{n}", lease_prefix(project, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_from_their_parts() {
        assert_eq!(network_name("shop"), "berth-shop");
        assert_eq!(volume_name("shop", "data"), "shop-data");
        assert_eq!(pod_name("web", "0123abcd45", 3), "web-0123abcd45-3");
        assert_eq!(
            container_name("web-0123abcd45-3", "app"),
            "web-0123abcd45-3-app"
        );
        assert_eq!(preview_alias("web"), "web-preview");
        assert_eq!(rollout_volume("shop", "web"), "berth-rollout-shop-web");
        assert_eq!(lock_name("shop"), "berth-lock-shop");
        assert_eq!(lease_name("shop", "a1", 2), "berth-lease-shop-a1-2");
        assert!(lease_name("shop", "a1", 2).starts_with(&lease_prefix("shop", "a1")));
    }
}

//! `berth restart`: every pod of a settled deployment is replaced by a new pod of the same
//! revision, behind the same health gates a rollout has, with no change to the spec. Pure.

use super::*;

/// The waves that restart the deployment's pods, or none (and why, as a rollout issue) while
/// a rollout of it is under way or nothing of it runs.
pub(super) fn waves(cx: &Context, d: &Deployment, out: &mut DeploymentPlan) -> Vec<Wave> {
    let revision = d.revision(cx.project());
    let mine = cx.pods_of(d);
    let others = mine.iter().filter(|p| p.revision != revision).count();
    if others > 0 || cx.under_way(d).is_some() {
        out.rollout_issue(
            d,
            format!(
                "{} has a rollout under way ({others} pod(s) of another revision than Git's {revision}): apply it to its end, or promote or abort it, then restart",
                d.name
            ),
        );
        return vec![];
    }
    if !mine.iter().any(|p| p.is_running()) {
        out.rollout_issue(d, format!("{} has no running pod to restart", d.name));
        return vec![];
    }
    let mut plan = strategy::restart(cx, d);
    let waves = std::mem::take(&mut plan.waves);
    out.extend(plan);
    waves
}

//! Old revisions kept on the hosts, stopped, for `berth rollback --to` (`history_limit`):
//! which pods they are, forgetting those past the limit, and bringing one back with the
//! deployment's strategy (its pods start again: no pull, no create). Pure.

use super::*;
use crate::model::{rollout::rfc3339, Phase, Rollout};

/// A kept revision: its pods, and when its newest pod was created.
struct KeptRevision {
    revision: String,
    pods: Vec<ObservedPod>,
    created: i64,
}

impl Context<'_> {
    /// The revision that should serve: Git's, unless `berth rollback --to` brought back a
    /// kept one while Git still declares this revision.
    pub(super) fn serving_revision(&self, d: &Deployment) -> String {
        let revision = d.revision(&self.input.desired.project);
        Rollout::serving(Rollout::of(self.input.observed, &d.name), &revision)
    }

    /// The deployment's state when it was rolled back to a kept revision and Git has not
    /// moved since.
    fn rolled_back_state(&self, d: &Deployment) -> Option<Rollout> {
        let revision = d.revision(&self.input.desired.project);
        Rollout::of(self.input.observed, &d.name)
            .filter(|s| s.holds_back(&revision))
            .cloned()
    }

    /// Which of the deployment's pods are history: those of a revision none of whose pods
    /// runs, other than the one that should serve, and not the stable set a canary or
    /// blue-green rollout under way keeps for its abort. (A stopped pod of a revision that
    /// still runs elsewhere was stopped by a rollout cut short, or by hand: the planner
    /// deals with it as before.)
    pub(super) fn kept_filter(&self, d: &Deployment) -> impl Fn(&ObservedPod) -> bool + use<> {
        let serving = self.serving_revision(d);
        let parked = self.under_way(d).map(|s| s.stable);
        let live: BTreeSet<String> = self
            .pods
            .iter()
            .filter(|p| p.deployment == d.name && !p.is_stopped())
            .map(|p| p.revision.clone())
            .collect();
        move |p: &ObservedPod| {
            p.is_stopped()
                && p.revision != serving
                && !live.contains(&p.revision)
                && parked.as_ref() != Some(&p.revision)
        }
    }

    fn kept_revisions(&self, d: &Deployment) -> Vec<KeptRevision> {
        let kept = self.kept_filter(d);
        let mut by_revision: BTreeMap<String, KeptRevision> = BTreeMap::new();
        for p in self
            .pods
            .iter()
            .filter(|p| p.deployment == d.name && kept(p))
        {
            let created = p.containers.iter().map(|c| c.created).max().unwrap_or(0);
            let r = by_revision
                .entry(p.revision.clone())
                .or_insert_with(|| KeptRevision {
                    revision: p.revision.clone(),
                    pods: vec![],
                    created,
                });
            r.created = r.created.max(created);
            r.pods.push(p.clone());
        }
        let mut out: Vec<KeptRevision> = by_revision.into_values().collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.revision.cmp(&b.revision)));
        out
    }

    /// Whether this plan brings back a kept revision of the deployment: `berth rollback
    /// --to`, or `berth rollback` with no canary or blue-green rollout under way (which it
    /// would undo instead).
    pub(super) fn restores(&self, d: &Deployment) -> bool {
        if self.input.intents.get(&d.name) != Some(&super::Intent::Rollback) {
            return false;
        }
        self.under_way(d).is_none() || self.input.rollback_to.contains_key(&d.name)
    }

    /// The deployment's canary or blue-green rollout of Git's revision that waits for a
    /// promote, or whose old set is still kept after promotion.
    pub(super) fn under_way(&self, d: &Deployment) -> Option<Rollout> {
        let desired = d.revision(&self.input.desired.project);
        Rollout::of(self.input.observed, &d.name)
            .filter(|s| matches!(s.phase, Phase::Paused | Phase::Promoted) && s.revision == desired)
            .cloned()
    }
}

/// A wave that removes the kept revisions past `history_limit`. The revision running now
/// and about to be replaced counts as the newest, so a rollout and the forgetting it
/// calls for are planned together and the next plan is empty.
pub(super) fn forget_old_revisions(
    cx: &Context,
    d: &Deployment,
    out: &mut DeploymentPlan,
) -> Option<Wave> {
    let serving = cx.serving_revision(d);
    let outgoing: BTreeSet<String> = cx
        .pods
        .iter()
        .filter(|p| p.deployment == d.name && p.is_running() && p.revision != serving)
        .map(|p| p.revision.clone())
        .collect();
    let limit = d.strategy.history_limit as usize;
    let room = limit.saturating_sub(outgoing.len());
    let past: Vec<KeptRevision> = cx
        .kept_revisions(d)
        .into_iter()
        .filter(|r| !outgoing.contains(&r.revision))
        .skip(room)
        .collect();
    let mut steps: BTreeMap<String, Vec<Step>> = BTreeMap::new();
    for r in &past {
        for p in &r.pods {
            let reason = Reason::PastHistoryLimit {
                revision: r.revision.clone(),
                limit: d.strategy.history_limit,
            };
            out.change(
                d,
                PodChange::new(&p.host, Action::Remove, ChangeKind::Pending, reason).of(p),
            );
            steps
                .entry(p.host.clone())
                .or_default()
                .push(remove_step(p, d.strategy.stop_timeout_s));
        }
    }
    (!steps.is_empty()).then(|| Wave {
        deployment: None,
        description: format!(
            "{}: forget revisions past history_limit {}",
            d.name, d.strategy.history_limit
        ),
        steps,
        on_failure: BTreeMap::new(),
    })
}

/// While a deployment is rolled back to a kept revision and Git still declares the
/// revision it left, nothing is rolled out: the plan says so and drift reports it.
pub(super) fn held_back(cx: &Context, d: &Deployment, out: &mut DeploymentPlan) -> bool {
    let Some(s) = cx.rolled_back_state(d) else {
        return false;
    };
    out.deployment_issue(IssueKind::RolledBack, d, format!(
            "{} was rolled back to revision {} at {}, but Git declares revision {}: berth keeps revision {} until Git changes, or `berth rollback {} --to {}` goes back to Git's",
            d.name,
            s.stable,
            rfc3339(s.since),
            s.revision,
            s.stable,
            d.name,
            s.revision
        ));
    true
}

/// `berth rollback DEPLOYMENT [--to REVISION]`: brings back a kept revision (the newest
/// without `--to`) with the deployment's strategy, keeps the revision it replaces
/// stopped, and records that Git declares another revision (unless it is Git's).
pub(super) fn restore(
    cx: &Context,
    d: &Deployment,
    to: Option<&str>,
    out: &mut DeploymentPlan,
) -> Vec<Wave> {
    let reachable = |h: &String| cx.reachable(h);
    if let Some(s) = cx.under_way(d) {
        let message = format!(
            "the rollout of revision {} is under way: `berth rollback {}` without --to undoes it first",
            s.revision, d.name
        );
        out.rollout_issue(d, message);
        return vec![];
    }
    let serving = cx.serving_revision(d);
    let kept = cx.kept_revisions(d);
    let Some(target) = restore_target(out, d, &serving, &kept, to) else {
        return vec![];
    };
    // The kept pods start; pods of the revision that still run (an apply cut short)
    // are gated and joined with them. The running pods of other revisions stop, except
    // on a host where no pod of the revision would serve (names answer per host).
    let running = cx.pods_of(d);
    let back: Vec<ObservedPod> = target
        .pods
        .iter()
        .chain(
            running
                .iter()
                .filter(|p| p.revision == target.revision && p.is_running()),
        )
        .filter(|p| reachable(&p.host))
        .cloned()
        .collect();
    let current: Vec<ObservedPod> = running
        .iter()
        .filter(|p| p.is_running() && p.revision != target.revision && reachable(&p.host))
        .filter(|p| back.iter().any(|b| b.host == p.host))
        .cloned()
        .collect();
    for p in back.iter().filter(|p| p.is_stopped()) {
        let reason = Reason::RollbackTo {
            revision: target.revision.clone(),
        };
        out.change(
            d,
            PodChange::new(&p.host, Action::Start, ChangeKind::Pending, reason).of(p),
        );
    }
    for p in &current {
        let reason = Reason::KeptAfterRollback {
            revision: p.revision.clone(),
        };
        let action = if d.strategy.history_limit > 0 {
            Action::Stop
        } else {
            Action::Remove
        };
        out.change(
            d,
            PodChange::new(&p.host, action, ChangeKind::Pending, reason).of(p),
        );
    }
    let shape = super::restore::Restore {
        d,
        network: network_name(&cx.input.desired.project),
        revision: target.revision.clone(),
    };
    let mut waves = shape.waves(&back, &current);
    let desired = d.revision(&cx.input.desired.project);
    let state = (target.revision != desired).then(|| Rollout {
        deployment: d.name.clone(),
        strategy: d.strategy.kind,
        revision: desired,
        stable: target.revision.clone(),
        phase: Phase::RolledBack,
        step: 0,
        weight: 0,
        since: 0,
        attempt: Some(d.attempt()),
    });
    let mut carriers: BTreeSet<String> = cx.state_carriers(d).into_iter().collect();
    carriers.extend(back.iter().chain(&current).map(|p| p.host.clone()));
    carriers.retain(|h| reachable(h));
    let record = Step::RecordRollout {
        deployment: d.name.clone(),
        state,
    };
    waves.push(Wave {
        deployment: None,
        description: format!(
            "{}: record the rollback to revision {}",
            d.name, target.revision
        ),
        steps: carriers
            .into_iter()
            .map(|h| (h, vec![record.clone()]))
            .collect(),
        on_failure: BTreeMap::new(),
    });
    waves
}

/// The kept revision `--to` names (a prefix will do), or the newest; `None` with an
/// issue that lists what is kept when there is no such revision.
fn restore_target<'k>(
    out: &mut DeploymentPlan,
    d: &Deployment,
    serving: &str,
    kept: &'k [KeptRevision],
    to: Option<&str>,
) -> Option<&'k KeptRevision> {
    let listed = || {
        let names: Vec<String> = kept
            .iter()
            .map(|r| format!("{} ({} pod(s))", r.revision, r.pods.len()))
            .collect();
        if names.is_empty() {
            format!(
                "no earlier revision of {} is kept on its hosts (history_limit {}; a rollout keeps the revision it replaces)",
                d.name, d.strategy.history_limit
            )
        } else {
            format!(
                "kept revisions of {}, newest first: {}",
                d.name,
                names.join(", ")
            )
        }
    };
    let message = match to {
        Some(to) if serving.starts_with(to) && !to.is_empty() => {
            format!("{} already runs revision {serving}", d.name)
        }
        Some(to) => {
            let found: Vec<&KeptRevision> = kept
                .iter()
                .filter(|r| !to.is_empty() && r.revision.starts_with(to))
                .collect();
            match found.as_slice() {
                [one] => return Some(one),
                [] => format!("revision {to:?} is not kept; {}", listed()),
                _ => format!("revision {to:?} names more than one; {}", listed()),
            }
        }
        None => match kept.first() {
            Some(newest) => return Some(newest),
            None => listed(),
        },
    };
    out.rollout_issue(d, message);
    None
}

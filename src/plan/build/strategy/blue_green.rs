//! Blue-green: the complete new set starts behind `<service>-preview`; promotion moves the
//! service name to it on every host at once, and the old set stays out of service for
//! `scale_down_delay` so that `berth rollback` can switch back. Pure.

use super::super::progressive::*;
use super::*;
use crate::model::{self, rollout::rfc3339};

pub(super) struct BlueGreen;

impl Strategy for BlueGreen {
    fn rollout(&self, cx: &Context, d: &Deployment) -> DeploymentPlan {
        plan_with(cx, d, blue_green)
    }

    fn restore(&self, shape: &Restore, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        shape.switch(back, current)
    }

    /// The new set waits behind the preview name until promoted; after promotion the old
    /// set waits out of service for a rollback.
    fn behind_during(&self, s: &Rollout, revision: &str) -> Option<Option<Behind>> {
        if revision == s.revision {
            return Some(match s.phase {
                Phase::Paused => Some(Behind::Preview),
                Phase::Promoted => Some(Behind::Service),
                _ => None,
            });
        }
        (revision == s.stable).then_some(Some(match s.phase {
            Phase::Promoted => Behind::Nothing,
            _ => Behind::Service,
        }))
    }

    fn new_set_waits(&self) -> bool {
        true
    }

    fn routed_weight(&self, _: &Rollout) -> Option<u32> {
        None
    }
}

fn blue_green(r: &mut Flow, sets: Sets, current: Option<model::Rollout>, intent: Option<Intent>) {
    let d = r.d;
    let preview = names::preview_alias(&r.service);
    let at = |_: &model::Rollout| format!("with the new set behind {preview}");
    if r.waiting(&current, intent, at) {
        return;
    }
    let phase = current.as_ref().map(|s| s.phase);
    let old: Vec<Member> = sets.stable.iter().map(Member::observed).collect();
    let mut gone: Vec<Member> = sets
        .other
        .iter()
        .chain(&sets.parked)
        .map(Member::observed)
        .collect();
    let service = vec![r.service.clone()];
    match (phase, intent) {
        (Some(model::Phase::Promoted), Some(Intent::Rollback | Intent::Abort))
            if old.len() < d.replicas as usize =>
        {
            // The old set's scale-down had begun (an apply stopped in it): switching back
            // would leave the service short.
            r.rollout_issue(format!(
                    "cannot roll back to revision {}: only {} of {} pod(s) of the old set are left; commit the previous revision to go back",
                    r.stable_revision,
                    old.len(),
                    d.replicas
                ),
            );
        }
        (Some(model::Phase::Promoted), Some(Intent::Rollback | Intent::Abort)) => {
            let mut steps = HostSteps::new();
            for m in &old {
                push(&mut steps, &m.host, [r.join(m, &service)]);
                r.switch_change(
                    &m.host,
                    Reason::BlueGreenRollBack {
                        pod: m.pod.clone(),
                        service: r.service.clone(),
                    },
                );
            }
            let mut by_host: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
            for m in &sets.new {
                by_host.entry(m.host.clone()).or_default().push(m);
            }
            for (host, ms) in by_host {
                push(&mut steps, &host, r.leave(&ms));
                push(&mut steps, &host, ms.iter().map(|m| r.remove(m)));
                for m in ms {
                    r.member_change(m, Action::Remove, Reason::RolledBack);
                }
            }
            let desc = format!(
                "roll back to revision {}: the service moves back to the old set",
                r.stable_revision
            );
            r.wave(desc, steps, HostSteps::new());
            let aborted = r.state(model::Phase::Aborted, 0, 0);
            let record = r.record(Some(aborted));
            r.wave("record the rollback".into(), record, HostSteps::new());
        }
        (Some(model::Phase::Promoted), _) => {
            let s = current.as_ref().expect("promoted");
            let until = s.since + d.strategy.scale_down_delay_ms.div_ceil(1000);
            if r.cx.input.now < until {
                r.rollout_issue(format!(
                        "revision {} is promoted; the old set (revision {}) stays out of service until {} for `berth rollback {}`",
                        r.revision,
                        r.stable_revision,
                        rfc3339(until),
                        d.name
                    ),
                );
                return;
            }
            let keeps = d.strategy.history_limit > 0;
            for (m, kept) in gone
                .iter()
                .map(|m| (m, false))
                .chain(old.iter().map(|m| (m, keeps)))
            {
                r.member_change(
                    m,
                    if kept { Action::Stop } else { Action::Remove },
                    Reason::OldSetAfterPromotion {
                        delay_s: Some(d.strategy.scale_down_delay_ms / 1000),
                    },
                );
            }
            r.scale_down(&gone, &old);
        }
        (Some(model::Phase::Paused), Some(Intent::Abort | Intent::Rollback)) => {
            gone.extend(sets.new.iter().cloned());
            let mut steps = HostSteps::new();
            for m in &gone {
                r.member_change(m, Action::Remove, Reason::BlueGreenAborted);
            }
            r.retire(&gone, &mut steps);
            for (h, s) in r.record(Some(r.state(model::Phase::Aborted, 0, 0))) {
                push(&mut steps, &h, s);
            }
            r.wave(
                format!("abort revision {}: remove the new set", r.revision),
                steps,
                HostSteps::new(),
            );
        }
        (Some(model::Phase::Paused), Some(Intent::Promote)) => {
            promote(r, &sets.new, &old);
        }
        _ => start_new_set(r, &sets, &gone, &old),
    }
}

/// Blue-green: removes pods of other revisions, starts (or completes) the new set beside
/// the old one behind the preview name, then promotes it or waits for `berth promote`.
pub(super) fn start_new_set(r: &mut Flow, sets: &Sets, gone: &[Member], old: &[Member]) {
    let d = r.d;
    let mut cleanup = HostSteps::new();
    for m in gone {
        let reason = Reason::NeitherRevision {
            revision: r.revision.clone(),
            stable: r.stable_revision.clone(),
        };
        r.member_change(m, Action::Remove, reason);
    }
    r.retire(gone, &mut cleanup);
    r.wave(
        "remove pods of other revisions".into(),
        cleanup,
        HostSteps::new(),
    );
    let preview = names::preview_alias(&r.service);
    let role = sets
        .stable
        .first()
        .and_then(|p| p.containers[0].role())
        .unwrap_or(Role::Stable)
        .next_colour();
    let mut current_count: BTreeMap<String, u32> = BTreeMap::new();
    for p in &sets.stable {
        *current_count.entry(p.host.clone()).or_default() += 1;
    }
    let (target, _) = placement::place(d.replicas, &r.eligible, &current_count, d.pods_per_host());
    let mut ordinal = r.cx.next_ordinals(d);
    let mut start = Phased::default();
    let mut undo = HostSteps::new();
    let mut members = sets.new.clone();
    // Pods of this revision that are already there (an earlier run, a revert to a kept
    // old set) wait behind the preview name too.
    for m in &sets.new {
        // One already behind the service (a promotion was cut short) is left there until
        // the promotion moves the rest: taking it off could leave a host with no pod
        // behind the service.
        let serving =
            r.cx.pods
                .iter()
                .find(|p| p.name == m.pod && p.host == m.host)
                .and_then(|p| p.behind(&[&r.service]))
                .is_some_and(|b| !b.is_empty());
        if !serving {
            start.add(&m.host, [r.join(m, std::slice::from_ref(&preview))]);
        }
    }
    let reason = Reason::BlueGreenNewSet {
        revision: r.revision.clone(),
        stable: r.stable_revision.clone(),
        preview: preview.clone(),
    };
    for (host, want) in &target {
        let have = sets.new.iter().filter(|m| &m.host == host).count() as u32;
        for _ in have..*want {
            let mut pod = r.out.pod_plan(r.cx, d, &r.revision, ordinal(), host);
            pod.aliases = vec![preview.clone()];
            role_label(&mut pod, role);
            let why = reason.clone();
            let change = PodChange::new(host, Action::Create, ChangeKind::Pending, why);
            r.out.change(d, change.to(pod.name.clone()));
            members.push(Member::planned(host, &pod));
            start.add(host, create_and_await(d, pod));
        }
    }
    for m in &members {
        push(&mut undo, &m.host, [r.remove(m)]);
    }
    for (h, s) in r.record(Some(r.state(model::Phase::Aborted, 0, 0))) {
        push(&mut undo, &h, s);
    }
    let desc = format!(
        "start the new set (revision {}) behind {preview}",
        r.revision
    );
    r.wave(desc, start.into_steps(), undo);
    if d.strategy.auto_promote {
        promote(r, &members, old);
    } else {
        let record = r.record(Some(r.state(model::Phase::Paused, 0, 100)));
        r.wave(
            format!("wait behind {preview} for `berth promote {}`", d.name),
            record,
            HostSteps::new(),
        );
        let note = format!(
            "the new set will wait behind {preview}; `berth promote {}` moves {} to it",
            d.name, r.service
        );
        r.rollout_issue(note);
    }
}

/// Blue-green promotion: the new set joins the service and the old set leaves it, on
/// every host in the same wave; the old set stays for `scale_down_delay`.
pub(super) fn promote(r: &mut Flow, new: &[Member], old: &[Member]) {
    let d = r.d;
    let service = vec![r.service.clone()];
    let mut steps = HostSteps::new();
    let mut undo = HostSteps::new();
    let mut hosts: BTreeSet<&str> = BTreeSet::new();
    for m in new {
        push(&mut steps, &m.host, [r.join(m, &service)]);
        hosts.insert(&m.host);
    }
    let mut by_host: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
    for m in old {
        by_host.entry(m.host.clone()).or_default().push(m);
        hosts.insert(&m.host);
        push(&mut undo, &m.host, [r.join(m, &service)]);
    }
    for (host, ms) in &by_host {
        push(&mut steps, host, r.leave(ms));
    }
    for host in hosts {
        r.switch_change(
            host,
            Reason::Promote {
                service: r.service.clone(),
                revision: r.revision.clone(),
            },
        );
    }
    let delay = d.strategy.scale_down_delay_ms;
    let promoted = r.state(model::Phase::Promoted, 0, 100);
    for (h, s) in r.record(Some(promoted)) {
        push(&mut steps, &h, s);
    }
    r.wave(
        format!(
            "promote revision {}: {} moves to the new set on every host",
            r.revision, r.service
        ),
        steps,
        undo,
    );
    if delay == 0 {
        let action = if d.strategy.history_limit > 0 {
            Action::Stop
        } else {
            Action::Remove
        };
        for m in old {
            r.member_change(m, action, Reason::OldSetAfterPromotion { delay_s: None });
        }
        r.scale_down(&[], old);
    } else {
        let note = format!(
            "after promotion the old set stays out of service for {}s, for `berth rollback {}`",
            delay / 1000,
            d.name
        );
        r.rollout_issue(note);
    }
}

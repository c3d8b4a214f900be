//! The waves of `berth rollback --to`: a kept revision's pods start again in place of the
//! running ones, in the shape of the deployment's strategy, each step undone if it fails.
//! Pure.

use super::*;

/// The waves that bring a kept revision back in place of the running one.
pub(super) struct Restore<'d> {
    pub(super) d: &'d Deployment,
    pub(super) network: String,
    pub(super) revision: String,
}

impl Restore<'_> {
    pub(super) fn waves(&self, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        if self.d.pod.host_ports().is_empty() {
            strategy::of(self.d.strategy.kind).restore(self, back, current)
        } else {
            self.stop_first(back, current)
        }
    }

    fn service(&self, p: &ObservedPod) -> Option<ServiceJoin> {
        self.d.service.as_ref().map(|s| ServiceJoin {
            container: network_owner(p),
            network: self.network.clone(),
            aliases: vec![s.name.clone()],
        })
    }

    /// Starts a kept pod; it joins the service once ready (`join`) or stays out of it.
    fn bring(&self, p: &ObservedPod, join: bool) -> [Step; 2] {
        let mut gate = await_step(self.d, &p.name, container_names(p));
        if let (Step::AwaitReady { join: j, .. }, true) = (&mut gate, join) {
            *j = self.service(p);
        }
        [start_step(p), gate]
    }

    /// Takes a pod out of the service and stops it: kept, or removed when the strategy
    /// keeps no history.
    fn put_away(&self, p: &ObservedPod) -> Vec<Step> {
        let mut steps: Vec<Step> = self
            .service(p)
            .map(|s| leave_steps(&[(&p.name, s)], self.d.strategy.drain_ms))
            .unwrap_or_default();
        steps.push(if self.d.strategy.history_limit > 0 {
            stop_step(p, self.d.strategy.stop_timeout_s)
        } else {
            remove_step(p, self.d.strategy.stop_timeout_s)
        });
        steps
    }

    /// Undoes a restore step: the kept pod stops again, the current one serves again.
    fn undo(&self, back: &[&ObservedPod], current: &[&ObservedPod]) -> BTreeMap<String, Vec<Step>> {
        let mut undo = Phased::default();
        for p in current {
            undo.add(&p.host, self.bring(p, true));
        }
        let mut steps = undo.into_steps();
        for p in back {
            let s = steps.entry(p.host.clone()).or_default();
            if let Some(svc) = self.service(p) {
                s.extend(leave_steps(&[(&p.name, svc)], 0));
            }
            s.push(stop_step(p, self.d.strategy.stop_timeout_s));
        }
        steps
    }

    /// Rolling: in batches of `max_surge + max_unavailable` across hosts, a kept pod starts
    /// and joins once ready, then a current pod on its host leaves; those stop at the end.
    pub(super) fn in_batches(&self, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        let (surge, unavailable) = self.d.strategy.rolling_budget(self.d.replicas);
        let batch = (surge + unavailable).max(1) as usize;
        let mut by_host: BTreeMap<&str, (Vec<&ObservedPod>, Vec<&ObservedPod>)> = BTreeMap::new();
        for p in back {
            by_host.entry(&p.host).or_default().0.push(p);
        }
        for p in current {
            by_host.entry(&p.host).or_default().1.push(p);
        }
        // Pairs (kept pod, current pod it replaces) round robin over hosts.
        let mut queues: Vec<
            std::collections::VecDeque<(Option<&ObservedPod>, Option<&ObservedPod>)>,
        > = by_host
            .values()
            .map(|(b, c)| {
                (0..b.len().max(c.len()))
                    .map(|i| (b.get(i).copied(), c.get(i).copied()))
                    .collect()
            })
            .collect();
        let mut order = Vec::new();
        while queues.iter().any(|q| !q.is_empty()) {
            for q in &mut queues {
                order.extend(q.pop_front());
            }
        }
        let chunks: Vec<_> = order.chunks(batch).collect();
        let mut waves = Vec::new();
        let mut stops: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for (n, chunk) in chunks.iter().enumerate() {
            let mut phased = Phased::default();
            for (b, _) in chunk.iter() {
                if let Some(b) = b {
                    phased.add(&b.host, self.bring(b, true));
                }
            }
            let mut steps = phased.into_steps();
            for (_, c) in chunk.iter() {
                if let Some(c) = c {
                    // It leaves now and stops in the last wave, its drain running out
                    // meanwhile under the next batches' gates.
                    let mut away = self.put_away(c);
                    stops.entry(c.host.clone()).or_default().extend(away.pop());
                    steps.entry(c.host.clone()).or_default().extend(away);
                }
            }
            let backs: Vec<&ObservedPod> = chunk.iter().filter_map(|(b, _)| *b).collect();
            let currents: Vec<&ObservedPod> = chunk.iter().filter_map(|(_, c)| *c).collect();
            waves.push(Wave {
                deployment: None,
                description: format!(
                    "{}: rollback batch {}/{} to revision {}: start {}",
                    self.d.name,
                    n + 1,
                    chunks.len(),
                    self.revision,
                    names(&backs)
                ),
                steps,
                on_failure: self.undo(&backs, &currents),
            });
        }
        waves.push(Wave {
            deployment: None,
            description: format!("{}: stop the pods replaced by the rollback", self.d.name),
            steps: stops,
            on_failure: BTreeMap::new(),
        });
        waves
    }

    /// Canary and blue-green: the kept set starts and passes its health gate out of
    /// service, then the service moves to it on every host at once and the current set
    /// leaves and stops.
    pub(super) fn switch(&self, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        let mut start = Phased::default();
        for p in back {
            start.add(&p.host, self.bring(p, false));
        }
        let backs: Vec<&ObservedPod> = back.iter().collect();
        let mut stop_back = BTreeMap::new();
        for p in back {
            stop_back
                .entry(p.host.clone())
                .or_insert_with(Vec::new)
                .push(stop_step(p, self.d.strategy.stop_timeout_s));
        }
        let mut moves: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for p in back {
            if let Some(s) = self.service(p) {
                moves
                    .entry(p.host.clone())
                    .or_default()
                    .push(Step::JoinService {
                        pod: p.name.clone(),
                        join: s,
                    });
            }
        }
        for p in current {
            moves
                .entry(p.host.clone())
                .or_default()
                .extend(self.put_away(p));
        }
        let currents: Vec<&ObservedPod> = current.iter().collect();
        vec![
            Wave {
                deployment: None,
                description: format!(
                    "{}: start revision {} ({}) out of service",
                    self.d.name,
                    self.revision,
                    names(&backs)
                ),
                steps: start.into_steps(),
                on_failure: stop_back,
            },
            Wave {
                deployment: None,
                description: format!(
                    "{}: move the service to revision {} on every host",
                    self.d.name, self.revision
                ),
                steps: moves,
                on_failure: self.undo(&backs, &currents),
            },
        ]
    }

    /// Recreate, or pods that publish a host port (one container can bind it): the current
    /// pods stop first, then the kept ones start.
    pub(super) fn stop_first(&self, back: &[ObservedPod], current: &[ObservedPod]) -> Vec<Wave> {
        let mut stop: BTreeMap<String, Vec<Step>> = BTreeMap::new();
        for p in current {
            stop.entry(p.host.clone())
                .or_default()
                .extend(self.put_away(p));
        }
        let mut start = Phased::default();
        for p in back {
            start.add(&p.host, self.bring(p, true));
        }
        let backs: Vec<&ObservedPod> = back.iter().collect();
        let currents: Vec<&ObservedPod> = current.iter().collect();
        vec![
            Wave {
                deployment: None,
                description: format!("{}: stop the running pods", self.d.name),
                steps: stop,
                on_failure: BTreeMap::new(),
            },
            Wave {
                deployment: None,
                description: format!(
                    "{}: start revision {} ({})",
                    self.d.name,
                    self.revision,
                    names(&backs)
                ),
                steps: start.into_steps(),
                on_failure: self.undo(&backs, &currents),
            },
        ]
    }
}

fn names(pods: &[&ObservedPod]) -> String {
    pods.iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

//! A deployment's strategy: its kind, timings, surge and unavailability, canary steps and
//! blue-green settings, each checked where it is written. Pure.

use super::*;

impl Loader<'_> {
    pub(super) fn strategy(
        &mut self,
        file: &SourceFile,
        s: Option<&StrategyFile>,
        fallback: &Strategy,
    ) -> Strategy {
        let Some(s) = s else { return fallback.clone() };
        let kind = match &s.kind {
            None => fallback.kind,
            Some(k) => match k.value.as_str() {
                "rolling" => StrategyKind::Rolling,
                "recreate" => StrategyKind::Recreate,
                "canary" => StrategyKind::Canary,
                "blue-green" => StrategyKind::BlueGreen,
                other => {
                    self.report(
                        file.error(k, format!("unknown strategy {other:?}"), "not a strategy")
                            .with_help("use rolling (the default), recreate, canary or blue-green"),
                    );
                    fallback.kind
                }
            },
        };
        let max_surge = self.amount(file, &s.max_surge, fallback.max_surge);
        let max_unavailable = self.amount(file, &s.max_unavailable, fallback.max_unavailable);
        let given = s.max_surge.as_ref().or(s.max_unavailable.as_ref());
        if let (Some(at), true) = (
            given,
            max_surge == Amount::Count(0) && max_unavailable == Amount::Count(0),
        ) {
            self.report(
                file.error(at, "max_surge and max_unavailable are both 0", "the rollout could never move")
                    .with_help("allow at least one extra pod (max_surge: 1) or one missing pod (max_unavailable: 1)"),
            );
        }
        Strategy {
            kind,
            min_ready_ms: self.duration(file, &s.min_ready, fallback.min_ready_ms),
            health_timeout_ms: self.duration(file, &s.health_timeout, fallback.health_timeout_ms),
            stop_timeout_s: self
                .duration(file, &s.stop_timeout, fallback.stop_timeout_s as u64 * 1000)
                .div_ceil(1000) as u32,
            max_surge,
            max_unavailable,
            drain_ms: self.duration(file, &s.drain, fallback.drain_ms),
            steps: match &s.steps {
                Some(steps) => self.canary_steps(file, steps),
                None => fallback.steps.clone(),
            },
            auto_promote: s.auto_promote.unwrap_or(fallback.auto_promote),
            scale_down_delay_ms: self.duration(
                file,
                &s.scale_down_delay,
                fallback.scale_down_delay_ms,
            ),
            history_limit: s.history_limit.unwrap_or(fallback.history_limit),
        }
    }

    fn edge_analysis(
        &mut self,
        file: &SourceFile,
        a: &crate::repo::schema_ingress::EdgeAnalysisFile,
    ) -> crate::model::edge_stats::EdgeAnalysis {
        let max_errors_percent = match &a.max_errors {
            None => 0,
            Some(m) => match m.value.trim().trim_end_matches('%').trim().parse::<u32>() {
                Ok(p) if p <= 100 => p,
                _ => {
                    self.report(file.error(
                        m,
                        "max_errors is a whole percentage like 1%",
                        "not a percentage",
                    ));
                    0
                }
            },
        };
        let max_latency_ms = a.max_latency.as_ref().map(|m| {
            units::duration_ms(&m.value).unwrap_or_else(|why| {
                self.report(file.error(m, "invalid max_latency", why));
                0
            })
        });
        crate::model::edge_stats::EdgeAnalysis {
            duration_ms: self.duration(file, &a.duration, 30_000),
            max_errors_percent,
            max_latency_ms,
            min_requests: a.min_requests.unwrap_or(1),
        }
    }

    pub(super) fn canary_steps(
        &mut self,
        file: &SourceFile,
        steps: &Spanned<Vec<Spanned<CanaryStepFile>>>,
    ) -> Vec<CanaryStep> {
        let mut out = Vec::new();
        for spanned in &steps.value {
            let step = &spanned.value;
            let given = [
                step.weight.is_some(),
                step.pause.is_some(),
                step.analysis.is_some(),
                step.edge_analysis.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                self.report(
                    file.error(spanned, "a canary step has exactly one of weight, pause, analysis, edge_analysis", "this step")
                        .with_help("write each step as its own list item: - weight: 20, - pause: 30s, - analysis: {...}"),
                );
                continue;
            }
            if let Some(w) = &step.weight {
                if w.value > 100 {
                    self.report(file.error(w, "a weight is a percentage", "more than 100"));
                }
                out.push(CanaryStep::Weight(w.value.min(100)));
            } else if let Some(p) = &step.pause {
                out.push(CanaryStep::Pause(match &p.value {
                    serde_json::Value::String(d) => {
                        Some(units::duration_ms(d).unwrap_or_else(|why| {
                            self.report(file.error(p, "invalid pause", why));
                            0
                        }))
                    }
                    serde_json::Value::Object(m) if m.is_empty() => None,
                    _ => {
                        self.report(file.error(
                            p,
                            "invalid pause",
                            "a duration like 30s, or {} to wait for berth promote",
                        ));
                        None
                    }
                }));
            } else if let Some(at) = &step.edge_analysis {
                out.push(CanaryStep::EdgeAnalysis(
                    self.edge_analysis(file, &at.value),
                ));
            } else if let Some(at) = &step.analysis {
                let a = &at.value;
                let Some(port) = &a.port else {
                    self.report(
                        file.error(at, "an analysis needs the port to check", "no port")
                            .with_help(
                                "analysis: {port: 8080, path: /health, status: 200, samples: 5}",
                            ),
                    );
                    continue;
                };
                if port.value == 0 {
                    self.report(file.error(port, "an analysis port is 1 to 65535", "port 0"));
                }
                out.push(CanaryStep::Analysis(Analysis {
                    path: a.path.clone().unwrap_or_else(|| "/".into()),
                    port: port.value,
                    status: a.status.unwrap_or(200),
                    samples: a.samples.unwrap_or(5).max(1),
                    interval_ms: self.duration(file, &a.interval, 1000),
                    failure_limit: a.failure_limit.unwrap_or(0),
                }));
            }
        }
        out
    }
}

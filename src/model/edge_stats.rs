//! A canary judged by the edges' own counts: each edge's HAProxy statistics (CSV from its
//! admin port) are read before and after a window, and the canary's servers' answers in
//! between are counted: 5xx answers and failed connections against a limit, the average
//! response time against another. Pure: parsing and the verdict.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `edge_analysis:` in a canary's steps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct EdgeAnalysis {
    /// How long the edges count.
    pub duration_ms: u64,
    /// The share of the canary's answers that may be errors (5xx, or no answer), in percent.
    pub max_errors_percent: u32,
    /// The highest average response time of a canary pod, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<u64>,
    /// Fewer requests than this to the canary in the window is no verdict: it fails.
    pub min_requests: u64,
}

/// One server's counters on one edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answers of any status.
    pub answers: u64,
    pub errors_5xx: u64,
    /// Connections that failed and answers that broke off.
    pub failed: u64,
    /// Average response time over its last requests, in ms.
    pub rtime_ms: u64,
}

/// The servers of `backend` in a statistics CSV, by server name.
pub fn parse(csv: &str, backend: &str) -> BTreeMap<String, Counts> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv)) = (at("pxname"), at("svname")) else {
        return BTreeMap::new();
    };
    let numbers = [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
    ];
    let mut out = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let cell = |name: &str| -> u64 {
            at(name)
                .and_then(|i| cells.get(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let server = cells.get(sv).copied().unwrap_or_default();
        if cells.get(px).copied() != Some(backend) || matches!(server, "FRONTEND" | "BACKEND") {
            continue;
        }
        let counts = Counts {
            answers: numbers.iter().map(|n| cell(n)).sum(),
            errors_5xx: cell("hrsp_5xx"),
            failed: cell("econ") + cell("eresp"),
            rtime_ms: cell("rtime"),
        };
        out.insert(server.to_string(), counts);
    }
    out
}

/// What happened between two readings of one server (a reload in between starts its counts
/// from zero: then the later reading is all there is).
pub fn between(before: Counts, after: Counts) -> Counts {
    let reset = after.answers < before.answers || after.failed < before.failed;
    let base = if reset { Counts::default() } else { before };
    Counts {
        answers: after.answers - base.answers,
        errors_5xx: after.errors_5xx - base.errors_5xx,
        failed: after.failed - base.failed,
        rtime_ms: after.rtime_ms,
    }
}

/// The verdict on the canary's counts over every edge: `Ok(summary)` or `Err(why)`.
pub fn verdict(check: &EdgeAnalysis, counts: &[Counts]) -> Result<String, String> {
    let answers: u64 = counts.iter().map(|c| c.answers).sum();
    let errors: u64 = counts.iter().map(|c| c.errors_5xx + c.failed).sum();
    let requests = answers + counts.iter().map(|c| c.failed).sum::<u64>();
    let latency = counts.iter().map(|c| c.rtime_ms).max().unwrap_or(0);
    let percent = if requests == 0 {
        0.0
    } else {
        errors as f64 * 100.0 / requests as f64
    };
    let summary = format!(
        "{requests} requests through the edges, {errors} errors ({percent:.1}%), slowest pod {latency} ms on average"
    );
    if requests < check.min_requests {
        return Err(format!(
            "analysis failed: the canary got {requests} requests through the edges, fewer than {} (no verdict without traffic)",
            check.min_requests
        ));
    }
    if percent > f64::from(check.max_errors_percent) {
        return Err(format!(
            "analysis failed: {summary}; more than {}% errors",
            check.max_errors_percent
        ));
    }
    if let Some(max) = check.max_latency_ms.filter(|m| latency > *m) {
        return Err(format!("analysis failed: {summary}; slower than {max} ms"));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# pxname,svname,qcur,econ,eresp,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,rtime,\n\
        port-80,FRONTEND,0,,,0,900,0,0,0,0,,\n\
        be-web,web-aaa-0,0,0,0,0,600,0,0,0,0,3,\n\
        be-web,web-bbb-1,0,2,1,0,290,0,5,5,0,40,\n\
        be-web,BACKEND,0,2,1,0,890,0,5,5,0,20,\n\
        be-api,api-ccc-0,0,0,0,0,10,0,0,0,0,1,\n";

    fn check() -> EdgeAnalysis {
        EdgeAnalysis {
            duration_ms: 10_000,
            max_errors_percent: 1,
            max_latency_ms: Some(100),
            min_requests: 10,
        }
    }

    #[test]
    fn parses_the_servers_of_one_backend() {
        let got = parse(CSV, "be-web");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got["web-bbb-1"],
            Counts {
                answers: 300,
                errors_5xx: 5,
                failed: 3,
                rtime_ms: 40
            }
        );
    }

    #[test]
    fn counts_between_readings_survive_a_reload() {
        let before = Counts {
            answers: 100,
            errors_5xx: 1,
            failed: 0,
            rtime_ms: 5,
        };
        let after = Counts {
            answers: 150,
            errors_5xx: 2,
            failed: 1,
            rtime_ms: 6,
        };
        assert_eq!(
            between(before, after),
            Counts {
                answers: 50,
                errors_5xx: 1,
                failed: 1,
                rtime_ms: 6
            }
        );
        let reloaded = Counts {
            answers: 20,
            errors_5xx: 0,
            failed: 0,
            rtime_ms: 4,
        };
        assert_eq!(between(before, reloaded), reloaded);
    }

    #[test]
    fn the_verdict_weighs_errors_latency_and_traffic() {
        let good = Counts {
            answers: 500,
            errors_5xx: 2,
            failed: 0,
            rtime_ms: 20,
        };
        assert!(verdict(&check(), &[good]).is_ok());
        let bad = Counts {
            answers: 100,
            errors_5xx: 5,
            failed: 0,
            rtime_ms: 20,
        };
        let why = verdict(&check(), &[good, bad]).unwrap_err();
        assert!(
            why.starts_with("analysis failed") && why.contains("errors"),
            "{why}"
        );
        let slow = Counts {
            rtime_ms: 250,
            ..good
        };
        assert!(verdict(&check(), &[slow])
            .unwrap_err()
            .contains("slower than 100 ms"));
        let quiet = Counts {
            answers: 3,
            ..Counts::default()
        };
        assert!(verdict(&check(), &[quiet])
            .unwrap_err()
            .contains("fewer than 10"));
    }
}

//! Events for whoever watches the fleet: a JSON document POSTed to a webhook URL for each
//! apply started and ended (succeeded, rolled back, failed, interrupted) and each drift
//! found. The URL often holds a token (Slack, Discord, a CI's), so it comes from a flag or
//! the environment, never from Git, and is never printed.

use crate::plan::Plan;
use serde::Serialize;
use std::time::Duration;

/// One event as the webhook receives it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// `apply.started`, `apply.succeeded`, `apply.rolled_back`, `apply.failed`,
    /// `apply.interrupted`, or `drift.found`.
    pub event: String,
    pub project: String,
    /// Unix seconds.
    pub at: u64,
    pub commit: Option<String>,
    /// The plan's summary (`0 to create, 2 to replace, …`).
    pub summary: String,
    pub deployments: Vec<String>,
    pub hosts: Vec<String>,
    /// What went wrong, or each drift found, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Event {
    pub fn of(event: &str, plan: &Plan, details: Vec<String>) -> Event {
        let mut deployments: Vec<String> =
            plan.changes.iter().map(|c| c.deployment.clone()).collect();
        deployments.extend(plan.waves.iter().filter_map(|w| w.deployment.clone()));
        deployments.retain(|d| !d.is_empty());
        deployments.sort();
        deployments.dedup();
        let mut hosts: Vec<String> = plan
            .waves
            .iter()
            .flat_map(|w| w.steps.keys().cloned())
            .collect();
        hosts.extend(plan.changes.iter().map(|c| c.host.clone()));
        hosts.sort();
        hosts.dedup();
        Event {
            event: event.to_string(),
            project: plan.project.clone(),
            at: crate::here::unix_now(),
            commit: plan.commit.clone(),
            summary: crate::render::summary(plan),
            deployments,
            hosts,
            details,
        }
    }
}

/// How long a webhook may take to answer before berth goes on without it.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where events go (`--webhook-url`, `BERTH_WEBHOOK_URL`); nowhere by default.
#[derive(Clone, Default)]
pub struct Notifier {
    url: Option<String>,
    /// The key each payload is signed with (the secret `webhook`), when one is set.
    key: Option<String>,
}

/// The headers that let a receiver check an event came from berth and is fresh: the time
/// it was sent, and `sha256=` HMAC-SHA256 of `"{timestamp}.{body}"` keyed with the shared
/// secret (hex). A receiver recomputes it, compares in constant time, and refuses an old
/// timestamp (a replay).
pub fn signature_headers(key: &str, timestamp: u64, body: &str) -> [(&'static str, String); 2] {
    let signed = format!("{timestamp}.{body}");
    [
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (
            SIGNATURE_HEADER,
            format!("sha256={}", crate::model::secret::mac(key, &signed)),
        ),
    ]
}

pub const TIMESTAMP_HEADER: &str = "x-berth-timestamp";
pub const SIGNATURE_HEADER: &str = "x-berth-signature";

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a token.
        f.write_str(if self.url.is_some() {
            "Notifier(webhook)"
        } else {
            "Notifier(none)"
        })
    }
}

impl Notifier {
    /// A webhook at `url`, its payloads signed with `key` when there is one.
    pub fn webhook(url: Option<String>, key: Option<String>) -> Notifier {
        Notifier {
            url: url.filter(|u| !u.is_empty()),
            key: key.filter(|k| !k.is_empty()),
        }
    }

    /// POSTs the event; a webhook that fails or does not answer is a warning (returned),
    /// never a reason to stop an apply. The warning does not show the URL.
    pub async fn send(&self, event: &Event) -> Option<String> {
        let url = self.url.clone()?;
        let body = serde_json::to_string(event).expect("an event serialises");
        let name = event.event.clone();
        let signed =
            (self.key.as_deref()).map(|key| signature_headers(key, crate::here::unix_now(), &body));
        let posted = tokio::task::spawn_blocking(move || {
            let tls = ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::NativeTls)
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build();
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(WEBHOOK_TIMEOUT))
                .tls_config(tls)
                .build()
                .into();
            let mut request = agent.post(&url).header("content-type", "application/json");
            for (header, value) in signed.iter().flatten() {
                request = request.header(*header, value);
            }
            request
                .send(body.as_str())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
        match posted {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(format!("the webhook did not take the {name} event: {why}")),
            Err(_) => Some(format!("the webhook did not take the {name} event")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_signed_over_its_timestamp_and_body() {
        // The value `openssl dgst -sha256 -hmac k3y` gives for `1700000000.{"a":1}`.
        let [time, signature] = signature_headers("k3y", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(time, (TIMESTAMP_HEADER, "1700000000".to_string()));
        assert_eq!(
            signature,
            (
                SIGNATURE_HEADER,
                "sha256=fd5a70e965043f7df6309c2c3b5ff5a8ffa99b1f5175e9a311459e73c4634d4a"
                    .to_string()
            )
        );
    }
}

//! Draining: a pod that left its service keeps serving the connections it has for `drain`
//! before anything stops it. The wait is kept at the stop rather than at the leave, so it
//! overlaps whatever the apply does meanwhile (a rolling update's next health gate, say)
//! instead of holding up the wave, and a pod that leaves without being stopped (the old set
//! of a blue-green promotion) costs no wait at all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Leaving a service reconnects the pod to its network at the same address; a connection
/// attempt that reached it in that instant is lost and retried after TCP's initial
/// retransmission timeout (1 s on Linux). The drain counts from that retry.
pub const CONNECT_RETRY: Duration = Duration::from_secs(1);

/// When each pod that left its service in this apply may be stopped, by host and container.
#[derive(Default)]
pub struct Drains(Mutex<HashMap<(String, String), Instant>>);

impl Drains {
    /// `container` on `host` just left its service names.
    pub fn left(&self, host: &str, container: &str, drain_ms: u64) {
        if drain_ms == 0 {
            return;
        }
        let until = Instant::now() + CONNECT_RETRY + Duration::from_millis(drain_ms);
        self.lock()
            .insert((host.to_string(), container.to_string()), until);
    }

    /// `container` on `host` is behind a service again (a rollback): nothing to wait for.
    pub fn joined(&self, host: &str, container: &str) {
        self.lock()
            .remove(&(host.to_string(), container.to_string()));
    }

    /// Waits until every one of `containers` on `host` has drained; returns how long.
    pub async fn before_stop(&self, host: &str, containers: &[String]) -> Duration {
        let until = {
            let mut map = self.lock();
            containers
                .iter()
                .filter_map(|c| map.remove(&(host.to_string(), c.clone())))
                .max()
        };
        let Some(until) = until else {
            return Duration::ZERO;
        };
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::sleep(left).await;
        left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Instant>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_waits_out_the_drain_and_the_connect_retry_once() {
        let d = Drains::default();
        d.left("h1", "web-0", 50);
        let c = vec!["web-0".to_string(), "web-0-side".to_string()];
        assert_eq!(
            d.before_stop("h2", &c).await,
            Duration::ZERO,
            "another host"
        );
        let started = Instant::now();
        let waited = d.before_stop("h1", &c).await;
        assert!(waited > CONNECT_RETRY, "{waited:?}");
        assert!(started.elapsed() >= waited);
        assert_eq!(d.before_stop("h1", &c).await, Duration::ZERO, "once");
    }

    #[tokio::test]
    async fn a_pod_that_joins_again_or_has_no_drain_is_stopped_at_once() {
        let d = Drains::default();
        d.left("h1", "a", 1000);
        d.joined("h1", "a");
        d.left("h1", "b", 0);
        let c = vec!["a".to_string(), "b".to_string()];
        assert_eq!(d.before_stop("h1", &c).await, Duration::ZERO);
    }
}

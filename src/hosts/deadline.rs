//! A deadline on every exchange with an engine, answer body included, and what a host that
//! missed one is for the rest of the run: silent, not asked again.
//!
//! bollard's own timeout ends at an answer's headers; a body that never comes (an engine
//! frozen mid-answer, a pull that stops making progress) would wait for ever. So the
//! deadline sits under HTTP, on the channel's bytes: each request gets one by what it asks
//! (`Deadline::for_request`), and a read or write past it fails the exchange. The first
//! missed deadline marks the host silent (`Silence`): every later call on it fails at once
//! with the same words, so a frozen engine costs one wait per run, not one per call.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long engine calls may take (`--command-timeout`, `--pull-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One call, its answer included; for a pull, the longest time without progress.
    pub command: Duration,
    /// One pull, whole.
    pub pull: Duration,
}

/// When an exchange must end: `total` after it began, or `idle` after the last byte read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline {
    pub total: Option<Duration>,
    pub idle: Option<Duration>,
    /// The most bytes read of its answer (bollard holds a whole answer in memory before it
    /// parses it); `None` for the streams berth reads piece by piece.
    pub max_bytes: Option<u64>,
}

/// The most berth reads of an engine's answer to a plain call: a container list of
/// thousands of containers is a few megabytes.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

impl Deadline {
    /// The deadline of a request, by its method and path (`/v1.41/containers/x/stop?t=10`).
    /// A pull must make progress and end within `pull`; a stop may take its grace time on top;
    /// the calls that wait on purpose (a job's exit, followed logs, an exec or attach) end
    /// when their caller says (a job's timeout, Ctrl-C); every other call within `command`.
    pub fn for_request(method: &str, uri: &str, limits: Limits) -> Deadline {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        // Without the API version prefix (`/v1.41`).
        let path = match path.strip_prefix("/v") {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                rest.find('/').map_or("/", |i| &rest[i..])
            }
            _ => path,
        };
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        let total = |d: Duration| Deadline {
            total: Some(d),
            idle: None,
            max_bytes: Some(MAX_ANSWER_BYTES),
        };
        match (method, parts.as_slice()) {
            ("POST", ["images", "create"]) => Deadline {
                total: Some(limits.pull),
                idle: Some(limits.command),
                max_bytes: None,
            },
            ("POST", ["containers", _, "wait"])
            | ("POST", ["containers", _, "attach"])
            | ("POST", ["exec", _, "start"])
            | ("GET", ["events"]) => Deadline::default(),
            ("GET", ["containers", _, "logs"]) if matches!(param("follow"), Some("1" | "true")) => {
                Deadline::default()
            }
            ("POST", ["containers", _, "stop" | "restart"]) => {
                let grace = param("t").and_then(|t| t.parse::<u64>().ok()).unwrap_or(10);
                total(limits.command + Duration::from_secs(grace))
            }
            _ => total(limits.command),
        }
    }

    pub fn is_none(&self) -> bool {
        self.total.is_none() && self.idle.is_none() && self.max_bytes.is_none()
    }
}

/// Whether a host's engine missed a deadline in this run, and the words that say so. Clones
/// share one state.
#[derive(Debug, Clone, Default)]
pub struct Silence(Arc<Mutex<Option<String>>>);

impl Silence {
    /// Marks the host silent; the first words stay.
    pub fn mark(&self, said: &str) {
        let mut now = self.0.lock().expect("silence");
        if now.is_none() {
            *now = Some(said.to_string());
        }
    }

    /// What the host missed, when it missed something.
    pub fn said(&self) -> Option<String> {
        self.0.lock().expect("silence").clone()
    }
}

/// The words for an engine that missed a deadline (its host's name goes before them).
pub fn missed(deadline: &Deadline, idle: bool) -> String {
    match (idle, deadline.idle, deadline.total) {
        (true, Some(d), _) => format!(
            "the Docker engine made no progress for {} (--command-timeout)",
            seconds(d)
        ),
        (_, _, Some(d)) => format!(
            "the Docker engine did not answer within {} (--command-timeout)",
            seconds(d)
        ),
        _ => "the Docker engine did not answer".into(),
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A byte stream to an engine whose reads and writes fail past the exchange's deadline,
/// marking the host silent.
pub struct Deadlined<S> {
    inner: S,
    deadline: Deadline,
    total: Option<Pin<Box<Sleep>>>,
    idle: Option<Pin<Box<Sleep>>>,
    silence: Silence,
    read: u64,
}

impl<S> Deadlined<S> {
    pub fn new(inner: S, deadline: Deadline, silence: Silence) -> Deadlined<S> {
        let now = Instant::now();
        Deadlined {
            inner,
            deadline,
            total: deadline
                .total
                .map(|d| Box::pin(tokio::time::sleep_until(now + d))),
            idle: deadline
                .idle
                .map(|d| Box::pin(tokio::time::sleep_until(now + d))),
            silence,
            read: 0,
        }
    }

    /// Ready with an error once a deadline passed (registering the waker otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let idle = self
            .idle
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(cx).is_ready());
        let total = self
            .total
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(cx).is_ready());
        if !(idle || total) {
            return Poll::Pending;
        }
        let said = missed(&self.deadline, idle && !total);
        self.silence.mark(&said);
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, said))
    }

    fn progressed(&mut self) {
        if let (Some(sleep), Some(d)) = (self.idle.as_mut(), self.deadline.idle) {
            sleep.as_mut().reset(Instant::now() + d);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlined<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = (buf.filled().len() - before) as u64;
                if got > 0 {
                    self.progressed();
                }
                self.read += got;
                match self.deadline.max_bytes {
                    Some(max) if self.read > max => {
                        // An error hands back no bytes.
                        buf.set_filled(before);
                        Poll::Ready(Err(io::Error::other(format!(
                            "the Docker engine's answer is over {} MiB: not read further",
                            max / (1024 * 1024)
                        ))))
                    }
                    _ => Poll::Ready(Ok(())),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlined<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.expired(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.expired(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        command: Duration::from_secs(20),
        pull: Duration::from_secs(1800),
    };

    fn total(s: u64) -> Deadline {
        Deadline {
            total: Some(Duration::from_secs(s)),
            idle: None,
            max_bytes: Some(MAX_ANSWER_BYTES),
        }
    }

    #[test]
    fn each_call_gets_the_deadline_of_what_it_asks() {
        let d = |m, u| Deadline::for_request(m, u, LIMITS);
        assert_eq!(d("GET", "/v1.41/containers/json?all=true"), total(20));
        assert_eq!(d("POST", "/v1.41/containers/create?name=x"), total(20));
        assert_eq!(d("GET", "/info"), total(20));
        assert_eq!(
            d("POST", "/v1.41/images/create?fromImage=nginx"),
            Deadline {
                total: Some(Duration::from_secs(1800)),
                idle: Some(Duration::from_secs(20)),
                max_bytes: None,
            }
        );
        assert_eq!(d("POST", "/v1.41/containers/web-1/stop?t=30"), total(50));
        assert_eq!(d("POST", "/v1.41/containers/web-1/stop"), total(30));
        for waits in [
            "/v1.41/containers/job/wait?condition=not-running",
            "/v1.41/exec/abc/start",
            "/v1.41/containers/x/attach?stream=1",
        ] {
            assert!(d("POST", waits).is_none(), "{waits}");
        }
        assert!(d("GET", "/v1.41/containers/x/logs?follow=true&stdout=true").is_none());
        assert_eq!(d("GET", "/v1.41/containers/x/logs?tail=50"), total(20));
        // A container named like a call is still a plain inspect.
        assert_eq!(d("GET", "/v1.41/containers/wait/json"), total(20));
    }

    #[test]
    fn the_first_words_of_a_silence_stay() {
        let silence = Silence::default();
        assert_eq!(silence.said(), None);
        silence.clone().mark("first");
        silence.mark("second");
        assert_eq!(silence.said().as_deref(), Some("first"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_stops_answering_fails_at_its_deadline_and_marks_the_host() {
        let (ours, mut engine) = tokio::io::duplex(64);
        let silence = Silence::default();
        let mut stream = Deadlined::new(ours, total(20), silence.clone());
        engine.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let mut buf = [0u8; 17];
        stream.read_exact(&mut buf).await.unwrap();
        // Then nothing: the read fails at the deadline, with words naming the host.
        let started = Instant::now();
        let e = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        assert_eq!(
            silence.said().as_deref(),
            Some("the Docker engine did not answer within 20s (--command-timeout)")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pull_lives_while_it_makes_progress_and_no_longer() {
        let (ours, mut engine) = tokio::io::duplex(64);
        let deadline = Deadline {
            total: Some(Duration::from_secs(100)),
            idle: Some(Duration::from_secs(20)),
            max_bytes: None,
        };
        let silence = Silence::default();
        let mut stream = Deadlined::new(ours, deadline, silence.clone());
        let mut buf = [0u8; 8];
        // Progress every 15 s keeps it going past the idle time...
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(15)).await;
            engine.write_all(b"progress").await.unwrap();
            stream.read_exact(&mut buf).await.unwrap();
        }
        assert_eq!(silence.said(), None);
        // ...until the total, 100 s after it began (10 s after the last progress).
        let e = stream.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(silence
            .said()
            .unwrap()
            .contains("did not answer within 100s"));

        // Silent for the idle time: it ends then.
        let (ours, _engine) = tokio::io::duplex(64);
        let silence = Silence::default();
        let mut stream = Deadlined::new(ours, deadline, silence.clone());
        let started = Instant::now();
        stream.read(&mut buf).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(20));
        assert!(silence.said().unwrap().contains("made no progress for 20s"));
    }

    #[tokio::test]
    async fn an_answer_past_its_size_is_not_read() {
        let (ours, mut engine) = tokio::io::duplex(1024);
        let capped = Deadline {
            max_bytes: Some(10),
            ..Deadline::default()
        };
        let mut stream = Deadlined::new(ours, capped, Silence::default());
        engine.write_all(b"0123456789abc").await.unwrap();
        drop(engine);
        let mut all = Vec::new();
        let e = stream.read_to_end(&mut all).await.unwrap_err();
        assert!(e.to_string().contains("over 0 MiB"), "{e}");
    }
}

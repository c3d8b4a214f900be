//! What `berth logs` and `berth exec` ask of one host's engine: a container's log, line by
//! line, and a command run in a container with this terminal's streams. A connected Docker
//! host (`Connected`) is the one implementation.

use super::{Connected, HostError};
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::StreamExt;
use std::time::Duration;

/// Which lines of a container's log to read.
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    /// Go on reading as lines come, until the container's log ends.
    pub follow: bool,
    /// Unix seconds: only lines written since.
    pub since: Option<i64>,
    /// The last lines (all when `None`).
    pub tail: Option<u64>,
}

/// How `exec` runs its command.
#[derive(Debug, Clone, Copy)]
pub struct ExecMode {
    /// This terminal's input goes to the command.
    pub stdin: bool,
    /// The command gets a terminal of its own.
    pub tty: bool,
}

/// A follow or an exec may last for days: the engine's calls get no deadline but this one.
const LONG_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// One host's engine, as `logs` and `exec` use it.
pub trait Console: Send + Sync {
    /// Reads a container's log, passing each complete line (with the engine's timestamp
    /// first) to `line`.
    fn log_lines<'a>(
        &'a self,
        container: &'a str,
        request: &'a LogRequest,
        line: &'a mut (dyn FnMut(String) + Send),
    ) -> BoxFuture<'a, ()>;

    /// Runs `command` in the container, its output on this process's, its input from this
    /// process's when asked; the command's exit code.
    fn exec<'a>(
        &'a self,
        container: &'a str,
        command: &'a [String],
        mode: ExecMode,
    ) -> BoxFuture<'a, Result<i64, HostError>>;
}

impl Console for Connected {
    fn log_lines<'a>(
        &'a self,
        container: &'a str,
        request: &'a LogRequest,
        line: &'a mut (dyn FnMut(String) + Send),
    ) -> BoxFuture<'a, ()> {
        async move {
            let docker = match request.follow {
                true => self.docker.clone().with_timeout(LONG_WAIT),
                false => self.docker.clone(),
            };
            let mut builder = LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .timestamps(true)
                .follow(request.follow);
            if let Some(since) = request.since {
                builder = builder.since(since as i32);
            }
            if let Some(n) = request.tail {
                builder = builder.tail(&n.to_string());
            }
            let mut stream = docker.logs(container, Some(builder.build()));
            let mut lines = crate::model::lines::Lines::default();
            while let Some(Ok(chunk)) = stream.next().await {
                lines.push(&chunk.into_bytes(), &mut |l| line(l));
            }
            lines.finish(&mut |l| line(l));
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        container: &'a str,
        command: &'a [String],
        mode: ExecMode,
    ) -> BoxFuture<'a, Result<i64, HostError>> {
        async move {
            use bollard::container::LogOutput;
            use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
            use tokio::io::AsyncWriteExt;
            let failed = |e: bollard::errors::Error| {
                self.kind_of(HostError::from(e).within(&format!("exec in {container}")))
            };
            let docker = self.docker.clone().with_timeout(LONG_WAIT);
            let asked = CreateExecOptions {
                cmd: Some(command.to_vec()),
                attach_stdin: Some(mode.stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(mode.tty),
                ..Default::default()
            };
            let created = docker.create_exec(container, asked).await.map_err(failed)?;
            let start = StartExecOptions {
                tty: mode.tty,
                ..Default::default()
            };
            let started = (docker.start_exec(&created.id, Some(start)).await).map_err(failed)?;
            let StartExecResults::Attached {
                mut output,
                mut input,
            } = started
            else {
                return Err(HostError::Engine(format!(
                    "exec in {container}: the engine did not attach"
                )));
            };
            if mode.stdin {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut input).await;
                    let _ = input.shutdown().await;
                });
            }
            let mut stdout = tokio::io::stdout();
            let mut stderr = tokio::io::stderr();
            while let Some(Ok(chunk)) = output.next().await {
                let _ = match chunk {
                    LogOutput::StdErr { message } => stderr.write_all(&message).await,
                    other => stdout.write_all(&other.into_bytes()).await,
                };
                let _ = stdout.flush().await;
            }
            let inspected = docker.inspect_exec(&created.id).await.map_err(failed)?;
            Ok(inspected.exit_code.unwrap_or(0))
        }
        .boxed()
    }
}

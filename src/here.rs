//! This machine and this process, as an apply lock records its holder, and whether a holder
//! recorded that way is still running here; this machine's clock (`unix_now`), the one
//! place the shell reads it; and the signals that ask this process to stop (`interrupt`).
//!
//! A process is named by the kernel's boot id, its pid namespace, its user, its pid and its
//! start time: two machines never share a boot id, two containers on one kernel do not share
//! a pid namespace, and a pid used again later has another start time. Only a process of the
//! same user is judged (`/proc` may hide other users' processes, `hidepid`). So "that process
//! is gone" is said only when it is certain; anywhere else (another machine, another user, a
//! system without `/proc`) nothing can be told and the lock's lease decides.

use std::path::Path;

/// This machine's clock, in Unix seconds: when a rollout state, a history record or a sync
/// round happened. Never compared with another machine's (the apply lock is judged by the
/// engines' clocks, see `model::lock`).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// This machine's name, as lock owners record it (for people to read).
pub fn machine() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Who is applying: user, machine and process, for people to read.
pub fn owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("{user}@{} pid {}", machine(), std::process::id())
}

/// This process as `boot/pidns/uid/pid/start`, or `None` where the system cannot tell.
pub fn this_process() -> Option<String> {
    let pid = std::process::id();
    let (boot, ns, uid) = namespace(Path::new("/proc"))?;
    let start = start_time(Path::new("/proc"), pid)?;
    Some(format!("{boot}/{ns}/{uid}/{pid}/{start}"))
}

/// What became of a process recorded by `this_process`, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It runs in this pid namespace on this boot of this machine.
    Running(u32),
    /// It ran here and has ended (or only its zombie is left).
    Gone,
    /// It ran elsewhere, or the record cannot be read: only the lease can tell.
    Unknown,
}

/// Whether a process recorded by `this_process` is known to have ended.
pub fn has_ended(process: &str) -> bool {
    fate(process) == Fate::Gone
}

pub fn fate(process: &str) -> Fate {
    fate_in(Path::new("/proc"), process)
}

fn fate_in(proc: &Path, process: &str) -> Fate {
    let mut parts = process.split('/');
    let (Some(boot), Some(ns), Some(uid), Some(pid), Some(start), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
        parts.next(),
        parts.next(),
    ) else {
        return Fate::Unknown;
    };
    match namespace(proc) {
        Some((b, n, u)) if b == boot && n == ns && u == uid => {}
        _ => return Fate::Unknown,
    }
    match stat_fields(proc, pid) {
        Some(fields) if fields.first().map(String::as_str) != Some("Z") => {
            if fields.get(19).map(String::as_str) == Some(start) {
                Fate::Running(pid)
            } else {
                Fate::Gone
            }
        }
        _ => Fate::Gone,
    }
}

/// The boot id, this process's pid namespace and its user id.
fn namespace(proc: &Path) -> Option<(String, String, String)> {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string(proc.join("sys/kernel/random/boot_id")).ok()?;
    let ns = std::fs::read_link(proc.join("self/ns/pid")).ok()?;
    let ns = ns.to_string_lossy();
    let ns: String = ns.chars().filter(char::is_ascii_digit).collect();
    let uid = std::fs::metadata(proc.join("self")).ok()?.uid().to_string();
    let boot = boot.trim().to_string();
    (!boot.is_empty() && !ns.is_empty()).then_some((boot, ns, uid))
}

fn start_time(proc: &Path, pid: u32) -> Option<String> {
    stat_fields(proc, pid)?.get(19).cloned()
}

/// The fields of `/proc/PID/stat` after the command name (state first), which may itself
/// hold spaces and parentheses.
fn stat_fields(proc: &Path, pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Resolves with the signal's name on SIGINT or SIGTERM.
pub async fn interrupt() -> &'static str {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn this_process_is_running() {
        let me = this_process().expect("a Linux /proc");
        assert_eq!(fate(&me), Fate::Running(std::process::id()));
    }

    #[test]
    fn an_ended_process_is_gone_and_one_from_elsewhere_is_unknown() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let me = this_process().unwrap();
        // boot/ns/uid of this process; the child shares them.
        let (prefix, _) = me.rsplit_once('/').unwrap();
        let (prefix, _) = prefix.rsplit_once('/').unwrap();
        let start = start_time(Path::new("/proc"), child.id()).unwrap();
        let record = format!("{prefix}/{}/{start}", child.id());
        assert_eq!(fate(&record), Fate::Running(child.id()));
        child.kill().unwrap();
        // Killed but not yet waited for: a zombie is gone too.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(fate(&record), Fate::Gone);
        child.wait().unwrap();
        assert_eq!(fate(&record), Fate::Gone);

        // The same pid started again later is another process.
        let again = format!("{prefix}/{}/1", std::process::id());
        assert_eq!(fate(&again), Fate::Gone);
        // Another boot, another namespace, or a record that cannot be read: unknown.
        let other_boot = record.replacen(&prefix[..8], "ffffffff", 1);
        assert_eq!(fate(&other_boot), Fate::Unknown);
        assert_eq!(fate("a/b/c"), Fate::Unknown);
        // Another user's process is not judged (`hidepid` may hide it).
        let (boot_ns, uid) = prefix.rsplit_once('/').unwrap();
        let other_user = format!("{boot_ns}/{}1/{}/{start}", uid, child.id());
        assert_eq!(fate(&other_user), Fate::Unknown);
        assert_eq!(fate(""), Fate::Unknown);
    }
}

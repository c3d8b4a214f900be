//! Progress of an apply: a spinner per host and deployment on a terminal, one timestamped
//! line per event elsewhere (CI logs), or only failures with `-q`.

use crate::ops::apply::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Picks bars on a terminal (unless verbose or quiet), lines otherwise.
pub fn for_apply(verbosity: Verbosity, hosts: &[String]) -> Arc<dyn Progress> {
    if verbosity == Verbosity::Normal && std::io::stderr().is_terminal() {
        Arc::new(Bars::new(hosts))
    } else {
        Arc::new(Lines {
            start: Instant::now(),
            verbosity,
        })
    }
}

/// `h1` or `h1 web`: the host, and the deployment whose lane the step belongs to.
fn who(host: &str, lane: Option<&str>) -> String {
    match lane {
        Some(d) => format!("{host} {d}"),
        None => host.to_string(),
    }
}

/// One line per event, prefixed with the time since the apply started.
pub struct Lines {
    start: Instant,
    verbosity: Verbosity,
}

impl Lines {
    fn line(&self, text: &str) {
        eprintln!("[+{:6.1}s] {text}", self.start.elapsed().as_secs_f64());
    }
}

impl Progress for Lines {
    fn wave(&self, index: usize, total: usize, description: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line(&format!("[{index}/{total}] {description}"));
        }
    }
    fn step_started(&self, host: &str, lane: Option<&str>, step: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("  {}: {step}", who(host, lane)));
        }
    }
    fn step_done(&self, host: &str, lane: Option<&str>, step: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("  {}: done: {step}", who(host, lane)));
        }
    }
    fn failed(&self, host: &str, message: &str) {
        self.line(&format!("  ✗ {host}: {message}"));
    }
    fn rolling_back(&self, wave: &str) {
        self.line(&format!("  rolling back: {wave}"));
    }
    fn output(&self, host: &str, job: &str, line: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line(&format!("  {host} job {job} | {line}"));
        }
    }
    fn finish(&self) {}
}

/// A spinner per host and deployment showing its current step: one per host from the start
/// (preparation, pruning), and one per deployment on a host once its lane gets there.
pub struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    /// Each bar, with the steps running under it (a host runs a batch's pods at once).
    bars: Mutex<BTreeMap<String, (ProgressBar, Vec<String>)>>,
}

impl Bars {
    fn new(hosts: &[String]) -> Bars {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{spinner} {prefix:>18} {wide_msg} {elapsed:>4}")
            .expect("a valid template");
        let bars = Bars {
            multi,
            style,
            bars: Mutex::new(BTreeMap::new()),
        };
        for h in hosts {
            bars.on(h, None, |b, _| b.set_message("waiting"));
        }
        bars
    }

    fn on(&self, host: &str, lane: Option<&str>, f: impl FnOnce(&ProgressBar, &mut Vec<String>)) {
        let key = who(host, lane);
        let mut bars = self.bars.lock().expect("not poisoned");
        let (bar, running) = bars.entry(key.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(self.style.clone());
            bar.set_prefix(key);
            bar.enable_steady_tick(Duration::from_millis(120));
            (bar, Vec::new())
        });
        f(bar, running);
    }

    /// The first step still running, and how many run beside it.
    fn show(bar: &ProgressBar, running: &[String]) {
        match running {
            [] => bar.set_message("idle"),
            [one] => bar.set_message(one.clone()),
            [first, rest @ ..] => bar.set_message(format!("{first} (+{} more)", rest.len())),
        }
    }
}

impl Progress for Bars {
    fn wave(&self, index: usize, total: usize, description: &str) {
        let _ = self
            .multi
            .println(format!("[{index}/{total}] {description}"));
    }
    fn step_started(&self, host: &str, lane: Option<&str>, step: &str) {
        self.on(host, lane, |b, running| {
            running.push(step.to_string());
            Bars::show(b, running);
        });
    }
    fn step_done(&self, host: &str, lane: Option<&str>, step: &str) {
        self.on(host, lane, |b, running| {
            if let Some(i) = running.iter().position(|s| s == step) {
                running.remove(i);
            }
            Bars::show(b, running);
        });
    }
    fn failed(&self, host: &str, message: &str) {
        let _ = self.multi.println(format!("  ✗ {host}: {message}"));
    }
    fn rolling_back(&self, wave: &str) {
        let _ = self.multi.println(format!("  rolling back: {wave}"));
    }
    fn output(&self, host: &str, job: &str, line: &str) {
        let _ = self.multi.println(format!("  {host} job {job} | {line}"));
    }
    fn finish(&self) {
        for (bar, _) in self.bars.lock().expect("not poisoned").values() {
            bar.finish_and_clear();
        }
    }
}

//! Progress of an apply: bars per host on a terminal, one timestamped line per event
//! elsewhere (CI logs), or only failures with `-q`.

use crate::apply::Progress;
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
    fn step_started(&self, host: &str, step: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("  {host}: {step}"));
        }
    }
    fn step_done(&self, host: &str, step: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("  {host}: done: {step}"));
        }
    }
    fn failed(&self, host: &str, message: &str) {
        self.line(&format!("  ✗ {host}: {message}"));
    }
    fn rolling_back(&self, wave: &str) {
        self.line(&format!("  rolling back: {wave}"));
    }
    fn finish(&self) {}
}

/// A spinner per host showing its current step, under the current wave.
pub struct Bars {
    multi: MultiProgress,
    hosts: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    fn new(hosts: &[String]) -> Bars {
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{spinner} {prefix:>10} {wide_msg} {elapsed:>4}")
            .expect("a valid template");
        let bars = hosts
            .iter()
            .map(|h| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(h.clone());
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                (h.clone(), bar)
            })
            .collect();
        Bars {
            multi,
            hosts: Mutex::new(bars),
        }
    }

    fn on(&self, host: &str, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.hosts.lock().expect("not poisoned").get(host) {
            f(bar);
        }
    }
}

impl Progress for Bars {
    fn wave(&self, index: usize, total: usize, description: &str) {
        let _ = self
            .multi
            .println(format!("[{index}/{total}] {description}"));
    }
    fn step_started(&self, host: &str, step: &str) {
        self.on(host, |b| b.set_message(step.to_string()));
    }
    fn step_done(&self, host: &str, _step: &str) {
        self.on(host, |b| b.set_message("idle"));
    }
    fn failed(&self, host: &str, message: &str) {
        let _ = self.multi.println(format!("  ✗ {host}: {message}"));
    }
    fn rolling_back(&self, wave: &str) {
        let _ = self.multi.println(format!("  rolling back: {wave}"));
    }
    fn finish(&self) {
        for bar in self.hosts.lock().expect("not poisoned").values() {
            bar.finish_and_clear();
        }
    }
}

//! The local terminal in raw mode for `exec -it`: keys go to the remote shell as typed
//! (Ctrl-C included), and the terminal is restored when the guard is dropped.

use rustix::termios::{tcgetattr, tcsetattr, OptionalActions, Termios};

pub struct Raw {
    saved: Termios,
}

impl Raw {
    /// Raw mode on standard input, when it is a terminal.
    pub fn enter() -> Option<Raw> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(Raw { saved })
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

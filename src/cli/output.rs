//! Standard output that never panics: `print!` panics when the reader has gone away
//! (`berth plan | head -3`). Here a closed pipe ends the output quietly and the command goes
//! on (an apply must not die half-way because nobody reads its plan any more).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to standard output; after a write error (a closed pipe), writes nothing more.
pub fn write(args: std::fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_fmt(args).and_then(|_| out.flush()).is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `print!` that ends quietly at a closed pipe.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*)) };
}

/// `println!` that ends quietly at a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        $crate::cli::output::write(format_args!($($arg)*));
        $crate::cli::output::write(format_args!("\n"));
    }};
}

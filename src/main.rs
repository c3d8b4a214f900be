//! The berth binary: parse flags, run the command, map the result to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = berth::cli::Cli::parse();
    match berth::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(berth::cli::exit::ERROR)
        }
    }
}

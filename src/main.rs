//! The berth binary: parse flags, run the command, map the result to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = berth::cli::Cli::parse();
    match berth::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(report) => {
            // A repository's problems are printed one by one, each with its file and position.
            match report.downcast_ref::<berth::repo::Diagnostics>() {
                Some(diags) => {
                    for r in &diags.reports {
                        eprintln!("{r:?}");
                    }
                    eprintln!("error: {diags}; nothing was changed on any host");
                }
                None => eprintln!("{report:?}"),
            }
            ExitCode::from(berth::cli::exit::ERROR)
        }
    }
}

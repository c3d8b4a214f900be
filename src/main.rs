//! The berth binary: parse flags, run the command, map the result to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match berth::cli::Cli::parse_args() {
        Ok(cli) => cli,
        // Usage errors exit 1 (clap's own 2 means "changes found" in berth); help exits 0.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                berth::cli::exit::ERROR
            } else {
                berth::cli::exit::OK
            });
        }
    };
    // A local repository needs no CA certificates (see repo::git_tls).
    if !cli
        .repository
        .as_deref()
        .is_some_and(berth::repo::source::is_url)
    {
        berth::repo::git_tls::start_without_certificates();
    }
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

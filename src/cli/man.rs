use clap::{Args, CommandFactory};
use miette::{IntoDiagnostic, Result, WrapErr};
use std::path::PathBuf;

/// Write man pages: berth.1 and one per command (berth-plan.1, ...), made from the same
/// definitions as `--help`, so they never disagree with the binary that wrote them.
///
/// Examples:
///   berth man /usr/local/share/man/man1
///   berth man ./man && man ./man/berth-apply.1
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ManArgs {
    /// The directory to write into (made if missing).
    pub dir: PathBuf,
}

pub fn run(a: ManArgs) -> Result<u8> {
    std::fs::create_dir_all(&a.dir)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot create {}", a.dir.display()))?;
    let top = super::Cli::command();
    let mut pages = vec![("berth".to_string(), top.clone())];
    for sub in top.get_subcommands() {
        let name = format!("berth-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, command) in &pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .into_diagnostic()?;
        let path = a.dir.join(format!("{name}.1"));
        std::fs::write(&path, page)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
    }
    crate::outln!("wrote {} man pages to {}", pages.len(), a.dir.display());
    Ok(super::exit::OK)
}

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use miette::Result;

/// Print a shell completion script.
///
/// Examples:
///   berth completion bash > /etc/bash_completion.d/berth
///   berth completion zsh > "${fpath[1]}/_berth"
///   berth completion fish > ~/.config/fish/completions/berth.fish
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn run(a: CompletionArgs) -> Result<u8> {
    let mut command = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut command, "berth", &mut out);
    crate::out!("{}", String::from_utf8_lossy(&out));
    Ok(super::exit::OK)
}

//! Command-line interface: clap definitions and one file per subcommand.

pub mod apply;
pub mod common;
pub mod completion;
pub mod drift;
pub mod exec;
pub mod history;
pub mod init;
pub mod logs;
pub mod man;
pub mod output;
pub mod plan;
pub mod progress;
pub mod ps;
pub mod render;
pub mod rollout;
pub mod schema;
pub mod status;
pub mod sync;
pub mod terminal;
pub mod unlock;
pub mod validate;

use clap::{Parser, Subcommand};

/// berth: a declarative GitOps reconciler for fleets of plain Docker hosts.
///
/// A Git repository declares deployments; berth connects to every host over SSH, shows the
/// difference between Git and the live containers as a plan, and applies it.
#[derive(Parser, Debug)]
#[command(name = "berth", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only errors and the one-line result (no plan, no progress).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global"
    )]
    pub quiet: bool,
    /// Print every step of an apply as a line, with the time since it started.
    #[arg(short, long, global = true, help_heading = "Global")]
    pub verbose: bool,
    /// Colour in plans and errors: auto (a terminal without NO_COLOR), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN",
        help_heading = "Global"
    )]
    pub color: clap::ColorChoice,
    /// The command's `--repo`, if it takes one (filled in by `parse_args`).
    #[arg(skip)]
    pub repository: Option<String>,
}

pub const EXIT_CODES: &str =
    "Exit codes: 0 success / no changes, 1 error, 2 changes pending or drift found, \
3 apply failed and was rolled back, 4 lock held by someone else, 5 saved plan is stale, \
130 a second interrupt stopped a rollback half-way.";

#[derive(Subcommand, Debug)]
pub enum Command {
    Plan(plan::PlanArgs),
    Apply(apply::ApplyArgs),
    Sync(sync::SyncArgs),
    Drift(drift::DriftArgs),
    Render(render::RenderArgs),
    Validate(validate::ValidateArgs),
    Init(init::InitArgs),
    Completion(completion::CompletionArgs),
    Schema(schema::SchemaArgs),
    Man(man::ManArgs),
    Status(status::StatusArgs),
    Logs(logs::LogsArgs),
    Exec(exec::ExecArgs),
    Ps(ps::PsArgs),
    History(history::HistoryArgs),
    Unlock(unlock::UnlockArgs),
    #[command(subcommand)]
    Lock(unlock::LockCommand),
    /// Go on with a paused canary, or switch a blue-green service to its new set.
    ///
    /// Examples:
    ///   berth promote web --repo ./deploy
    #[command(verbatim_doc_comment)]
    Promote(rollout::RolloutArgs),
    /// Stop a canary or blue-green rollout: the stable set serves at full count again and
    /// the revision is not rolled out again until Git names another (or `promote` retries it).
    ///
    /// Examples:
    ///   berth abort web --repo ./deploy
    #[command(verbatim_doc_comment)]
    Abort(rollout::RolloutArgs),
    /// Restart a deployment: each pod replaced by a new one of the same revision, with no
    /// change to Git, behind the same health gates as a rollout (rolling batches; recreate
    /// stops first). The old pods serve until their replacements are ready.
    ///
    /// Refused while a rollout of the deployment is under way. Killed half-way, the next
    /// apply or sync finds nothing to do: the pods not yet restarted simply run on.
    ///
    /// Examples:
    ///   berth restart web --repo ./deploy
    #[command(verbatim_doc_comment)]
    Restart(rollout::RolloutArgs),
    /// Go back to an earlier revision, kept stopped on the hosts (`history_limit`).
    ///
    /// Without --to: undoes a canary or blue-green rollout under way (a paused canary, a
    /// promoted blue-green whose old set is still there), or else brings back the newest
    /// kept revision. The kept pods start again with the deployment's strategy (no pull, no
    /// create) and the running ones stop, kept in turn. While Git still declares the revision
    /// left, berth keeps the one brought back (sync leaves it, drift reports it) until Git
    /// changes or `berth rollback DEPLOYMENT --to <Git's revision>` goes back.
    /// `berth status` and `berth ps` show the kept revisions.
    ///
    /// Examples:
    ///   berth rollback web --repo ./deploy
    ///   berth rollback web --to 3f2a9c1b --repo ./deploy
    ///   berth undo web --repo ./deploy
    #[command(verbatim_doc_comment, visible_alias = "undo")]
    Rollback(rollout::RollbackArgs),
}

/// Exit codes (see the README).
pub use crate::ops::exit;

impl Cli {
    /// Parses the command line, every subcommand's help ending with the exit codes.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_subcommands(|s| {
            s.after_help(EXIT_CODES)
                .mut_subcommands(|n| n.after_help(EXIT_CODES))
        });
        let matches = command.try_get_matches()?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.repository = repository_of(&matches);
        Ok(cli)
    }
}

/// The `--repo` of the innermost subcommand that takes one.
fn repository_of(matches: &clap::ArgMatches) -> Option<String> {
    if let Ok(Some(repo)) = matches.try_get_one::<String>("repo") {
        return Some(repo.clone());
    }
    matches.subcommand().and_then(|(_, sub)| repository_of(sub))
}

pub fn run(cli: Cli) -> miette::Result<u8> {
    common::set_color(cli.color);
    let verbosity = match (cli.quiet, cli.verbose) {
        (true, _) => progress::Verbosity::Quiet,
        (_, true) => progress::Verbosity::Verbose,
        _ => progress::Verbosity::Normal,
    };
    match cli.command {
        Command::Plan(a) => plan::run(a),
        Command::Apply(a) => apply::run(a, verbosity),
        Command::Sync(a) => sync::run(a, verbosity),
        Command::Drift(a) => drift::run(a),
        Command::Render(a) => render::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Init(a) => init::run(a),
        Command::Completion(a) => completion::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Man(a) => man::run(a),
        Command::Status(a) => status::run(a),
        Command::Logs(a) => logs::run(a),
        Command::Exec(a) => exec::run(a),
        Command::Ps(a) => ps::run(a),
        Command::History(a) => history::run(a),
        Command::Unlock(a) => unlock::run(a),
        Command::Lock(unlock::LockCommand::Status(a)) => unlock::status(a),
        Command::Promote(a) => rollout::run(a, crate::plan::Intent::Promote, verbosity),
        Command::Abort(a) => rollout::run(a, crate::plan::Intent::Abort, verbosity),
        Command::Restart(a) => rollout::run(a, crate::plan::Intent::Restart, verbosity),
        Command::Rollback(a) => rollout::rollback(a, verbosity),
    }
}

//! Golden plans: for each case under tests/fixtures/golden/<case>/, the repository in `repo/`
//! is planned against the hosts in `observed.json`, and the plan is compared whole, as text,
//! JSON and Markdown, with `plan.txt`, `plan.json` and `plan.md`. A change that is meant to
//! alter plans rewrites them with `BERTH_BLESS=1 cargo test --test golden`; the diff then
//! shows in review exactly what users will see differently.

use crate::fixture;

use berth::plan;
use std::path::{Path, PathBuf};

fn cases() -> Vec<PathBuf> {
    let root = fixture::dir("golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A case's plan. An optional `flags` file names the plan flags it runs with, one a line
/// (`prune`, `prune_volumes`, `retry`).
fn plan_of(case: &Path) -> plan::Plan {
    let files = fixture::repo_files(&case.join("repo"));
    let desired = fixture::desired(&files);
    let observed = fixture::observed(&case.join("observed.json"));
    let mut input = fixture::input(&desired, &observed);
    let flags = std::fs::read_to_string(case.join("flags")).unwrap_or_default();
    for flag in flags.split_whitespace() {
        match flag {
            "prune" => input.prune = true,
            "prune_volumes" => input.prune_volumes = true,
            "retry" => input.retry = true,
            other => panic!("{}: unknown flag {other}", case.display()),
        }
    }
    plan::build(&input)
}

#[test]
fn plans_match_their_golden_files() {
    let bless = std::env::var_os("BERTH_BLESS").is_some();
    let mut differ = Vec::new();
    let cases = cases();
    assert!(cases.len() >= 6, "the golden cases are missing: {cases:?}");
    for case in &cases {
        let plan = plan_of(case);
        let shown = [
            ("plan.txt", berth::render::text::plan(&plan, false)),
            ("plan.json", berth::render::json(&plan) + "\n"),
            ("plan.md", berth::render::markdown::plan(&plan)),
        ];
        for (file, now) in shown {
            let path = case.join(file);
            if bless {
                std::fs::write(&path, &now).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != now {
                let diff = similar::TextDiff::from_lines(&want, &now)
                    .unified_diff()
                    .header("golden", "now")
                    .to_string();
                differ.push(format!("{}:\n{diff}", path.display()));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "plans differ from their golden files (BERTH_BLESS=1 cargo test --test golden rewrites them if that is intended):\n{}",
        differ.join("\n")
    );
}

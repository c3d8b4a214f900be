//! Property tests (proptest) for the two parsers that read what users type: the selector
//! parser and the repository loader. Whatever the input, they return a value or errors and
//! never panic, and the errors render (spans inside their files). Bounded: PROPTEST_CASES
//! (default below) cases per property, so `scripts/test` stays quick.

use berth::model::Selector;
use berth::repo::{self, RepoFiles};
use proptest::prelude::*;

const CASES: u32 = 3000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(CASES),
        ..ProptestConfig::default()
    }
}

/// Text made of what selectors and YAML are made of, plus some non-ASCII.
fn texty() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a",
        "web",
        "env",
        "=",
        "==",
        "!=",
        "!",
        ",",
        " ",
        "\t",
        "\n",
        "\r",
        "(",
        ")",
        "in",
        "notin",
        ">",
        "<",
        "1",
        "-",
        ".",
        "/",
        "_",
        ":",
        "{",
        "}",
        "[",
        "]",
        "- ",
        "  ",
        "#",
        "\"",
        "'",
        "é",
        "日本",
        "\u{0}",
        "null",
        "~",
        "&a",
        "*a",
        "!!str",
        "---",
        "...",
        "%",
        "name",
        "pod",
        "containers",
        "image",
        "replicas",
        "secret",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

const INVENTORY: &str = "hosts:\n  - {name: a1, address: 198.18.1.1, labels: {role: web}}\n  - {name: a2, address: 198.18.1.2, labels: {role: web}}\n";
const WEB: &str = "name: web\nlabels: {app: web}\nreplicas: 2\nplacement: {hosts: role=web}\nservice: {name: web, port: 8080}\npod:\n  containers:\n    - name: app\n      image: example/web:1\n      env: {MODE: prod, TOKEN: {secret: tok}}\n      ports: [\"8080\"]\n      volumes: [\"data:/data\"]\n      healthcheck: {test: [CMD, \"true\"], interval: 1s}\nstrategy:\n  type: canary\n  steps: [{weight: 50}, {pause: 10s}, {analysis: {port: 8080, path: /}}]\n";

fn files(project: &str, inventory: &str, web: &str) -> RepoFiles {
    let mut f = RepoFiles::default();
    f.files.insert("berth.yaml".into(), project.into());
    f.files.insert("inventory.yaml".into(), inventory.into());
    f.files.insert("deployments/web.yaml".into(), web.into());
    f
}

/// Loads and, on errors, renders every diagnostic as the CLI does.
fn load_and_render(f: &RepoFiles) {
    let secrets = |_: &str| Some("s3cret".to_string());
    if let Err(diags) = repo::load(f, &secrets) {
        for r in &diags.reports {
            let _ = format!("{r:?}");
        }
    }
}

/// A valid file with one edit: a piece of text put in, or a stretch taken out, anywhere.
fn edited(base: &'static str) -> impl Strategy<Value = String> {
    (0..=base.len(), 0..8usize, texty()).prop_map(move |(at, cut, put)| {
        let mut at = at;
        while !base.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut).min(base.len());
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{put}{}", &base[..at], &base[end..])
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_selector_parser_never_panics_and_round_trips(text in texty()) {
        if let Ok(s) = Selector::parse(&text) {
            let again = Selector::parse(&s.to_string());
            prop_assert!(again.is_ok(), "{text:?} printed as {s} does not parse");
            prop_assert_eq!(again.unwrap().to_string(), s.to_string());
        }
    }

    #[test]
    fn the_selector_parser_takes_any_string(text in ".{0,60}") {
        let _ = Selector::parse(&text);
    }

    #[test]
    fn the_loader_never_panics_on_edited_deployments(web in edited(WEB)) {
        load_and_render(&files("project: p\n", INVENTORY, &web));
    }

    #[test]
    fn the_loader_never_panics_on_edited_inventories(inventory in edited(INVENTORY)) {
        load_and_render(&files("project: p\n", &inventory, WEB));
    }

    #[test]
    fn the_loader_never_panics_on_any_text(project in texty(), web in texty()) {
        load_and_render(&files(&project, INVENTORY, &web));
    }
}

#[test]
fn the_unedited_fixture_loads() {
    // The edits above start from a valid repository; make sure it is one.
    let secrets = |_: &str| Some("s3cret".to_string());
    let loaded = repo::load(&files("project: p\n", INVENTORY, WEB), &secrets);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

//! The JSON plan against its documentation (docs/plan-format.md): every field a plan has is
//! documented, every documented field that is not marked optional is in every plan, and every
//! step a plan holds is documented — over the golden plans and plans with jobs, files and an
//! environment.

use crate::fixture;
use serde_json::Value;
use std::collections::BTreeSet;

fn docs() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/plan-format.md"),
    )
    .unwrap()
}

/// The top-level fields of the documentation's table: (name, optional).
fn documented_fields(docs: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for line in docs.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').collect();
        let optional = cells[2].contains("present only when") || cells[2].contains("if any");
        for name in cells[1].split('`').skip(1).step_by(2) {
            out.push((name.trim_end_matches("[]").to_string(), optional));
        }
    }
    out
}

fn plans() -> Vec<Value> {
    let mut out = Vec::new();
    for case in std::fs::read_dir(fixture::dir("golden")).unwrap() {
        let text = std::fs::read_to_string(case.unwrap().path().join("plan.json")).unwrap();
        out.push(serde_json::from_str(&text).unwrap());
    }
    // A plan with a job, a file and an environment.
    let case = fixture::dir("golden/rolling-image-change");
    let mut files = fixture::repo_files(&case.join("repo"));
    let web = files.files["deployments/web.yaml"].replace("example/web:2", "example/web:3")
        + "jobs:\n  - {name: migrate, command: [migrate]}\n";
    files.files.insert("deployments/web.yaml".into(), web);
    files.files.insert(
        "berth.yaml".into(),
        "project: fx\nenvironments:\n  staging: {}\n".into(),
    );
    let desired =
        berth::repo::load::load_for(&files, Some("staging"), Some(&|_| None), None).unwrap();
    let observed = fixture::observed(&case.join("observed.json"));
    let plan = fixture::plan(&desired, &observed);
    out.push(serde_json::to_value(&plan).unwrap());
    out
}

fn ops(plan: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for wave in plan["waves"].as_array().unwrap() {
        for key in ["steps", "on_failure"] {
            for steps in wave[key].as_object().into_iter().flat_map(|m| m.values()) {
                for s in steps.as_array().unwrap() {
                    out.insert(s["op"].as_str().unwrap().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn the_json_plan_is_as_documented() {
    let docs = docs();
    let fields = documented_fields(&docs);
    let names: BTreeSet<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let plans = plans();
    let mut seen_ops = BTreeSet::new();
    for plan in &plans {
        let keys: BTreeSet<&str> = plan
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in &keys {
            assert!(
                names.contains(k),
                "the plan has `{k}`, which docs/plan-format.md does not document"
            );
        }
        for (name, optional) in &fields {
            assert!(
                *optional || keys.contains(name.as_str()),
                "`{name}` is documented as always there, and a plan lacks it"
            );
        }
        seen_ops.extend(ops(plan));
    }
    for op in &seen_ops {
        assert!(
            docs.contains(&format!("`{op}`")),
            "step `{op}` is not documented"
        );
    }
    for op in ["run_job", "record_job", "create_pod", "await_ready"] {
        assert!(
            seen_ops.contains(op),
            "the plans checked hold no `{op}` step: {seen_ops:?}"
        );
    }
    let last = plans.last().unwrap();
    assert_eq!(last["environment"], "staging");
    // Every change's fields are documented in the changes row.
    let row = docs
        .lines()
        .find(|l| l.starts_with("| `changes[]`"))
        .unwrap();
    for plan in &plans {
        for c in plan["changes"].as_array().unwrap() {
            for k in c.as_object().unwrap().keys() {
                let documented =
                    row.contains(&format!("`{k}`")) || row.contains(&format!("`{k}[]`"));
                assert!(documented, "change field `{k}` is not documented");
            }
        }
    }
}

//! `berth schema` and `berth man`, offline: the repository schemas accept every key the
//! examples and the starter repository use and refuse one they do not know, the plan schema
//! names every field and step of the golden plans, and the man pages are written.

use crate::common::*;
use serde_json::Value;
use std::path::Path;

fn schema(args: &[&str]) -> Value {
    let r = berth(&[&["schema"], args].concat());
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// The schema a `$ref` points at, or the schema itself.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/$defs/");
            resolve(root, &root["$defs"][name])
        }
        None => s,
    }
}

/// The keys of `doc` the schema does not allow, as paths: objects with properties and no
/// additional ones, maps, arrays and alternatives (`anyOf`/`oneOf`, any one that fits).
fn unknown_keys(root: &Value, s: &Value, doc: &Value, at: &str) -> Vec<String> {
    let s = resolve(root, s);
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let fits = alts
                .iter()
                .filter(|a| of_type(resolve(root, a), doc))
                .map(|a| unknown_keys(root, a, doc, at))
                .min_by_key(Vec::len)
                .unwrap_or_default();
            return fits;
        }
    }
    match doc {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let extra = s.get("additionalProperties");
            map.iter()
                .flat_map(|(k, v)| {
                    let path = format!("{at}.{k}");
                    match (props.and_then(|p| p.get(k)), extra) {
                        (Some(p), _) => unknown_keys(root, p, v, &path),
                        (None, Some(Value::Bool(false))) => vec![path],
                        (None, Some(e @ Value::Object(_))) => unknown_keys(root, e, v, &path),
                        (None, _) if props.is_some() => vec![path],
                        (None, _) => vec![],
                    }
                })
                .collect()
        }
        Value::Array(items) => match s.get("items") {
            Some(item) => items
                .iter()
                .enumerate()
                .flat_map(|(i, v)| unknown_keys(root, item, v, &format!("{at}[{i}]")))
                .collect(),
            None => vec![],
        },
        _ => vec![],
    }
}

/// Whether a schema's `type` (if it says one) admits the value.
fn of_type(s: &Value, doc: &Value) -> bool {
    let name = match doc {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let admits = |t: &Value| t == name || (name == "integer" && t == "number");
    match s.get("type") {
        Some(Value::Array(types)) => types.iter().any(admits),
        Some(t) => admits(t),
        None => true,
    }
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_repository_schemas_take_every_key_the_examples_use_and_refuse_others() {
    let (deployment, project, inventory) = (
        schema(&["deployment"]),
        schema(&["project"]),
        schema(&["inventory"]),
    );
    let mut checked = 0;
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["examples/repo-layout", "examples/webapp", "src/cli/init"] {
        for entry in walk(&root().join(dir)) {
            if entry.extension().is_some_and(|e| e == "yaml") {
                files.push(entry);
            }
        }
    }
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // The starter repository's deployment is src/cli/init/web.yaml.
        let is_deployment = path.parent().is_some_and(|p| p.ends_with("deployments"))
            || (path.parent().is_some_and(|p| p.ends_with("init")) && name == "web.yaml");
        let s = if is_deployment {
            &deployment
        } else if name.starts_with("berth") || name.starts_with("project") {
            &project
        } else if name.starts_with("inventory") {
            &inventory
        } else {
            continue;
        };
        let doc = yaml(&path);
        let bad = unknown_keys(s, s, &doc, "");
        assert!(bad.is_empty(), "{}: {bad:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} files checked");

    // A key berth does not know is refused, at any depth.
    let doc: Value = serde_json::json!({
        "name": "web",
        "pod": {"containers": [{"name": "app", "image": "x", "imagee": "typo"}]},
        "strategy": {"type": "canary", "steps": [{"weight": 10}], "max_surg": 1}
    });
    let bad = unknown_keys(&deployment, &deployment, &doc, "");
    assert_eq!(
        bad,
        [".pod.containers[0].imagee", ".strategy.max_surg"],
        "{bad:?}"
    );
    // The strategy documents its keys for editors.
    let strategy = &deployment["$defs"]["StrategyFile"]["properties"];
    assert!(
        strategy["history_limit"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("rollback")),
        "{strategy}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_plan_schema_names_every_field_and_step_of_the_golden_plans() {
    let s = schema(&["--plan"]);
    let mut plans = 0;
    for dir in std::fs::read_dir(root().join("tests/fixtures/golden")).unwrap() {
        let path = dir.unwrap().path().join("plan.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let plan: Value = serde_json::from_str(&text).unwrap();
        let bad = unknown_keys(&s, &s, &plan, "");
        assert!(bad.is_empty(), "{}: {bad:?}", path.display());
        plans += 1;
    }
    assert!(plans >= 3, "{plans} golden plans");
    let plan: Value = serde_json::json!({"version": 2, "surprise": true});
    assert_eq!(unknown_keys(&s, &s, &plan, ""), [".surprise"]);
}

#[test]
fn man_pages_are_written_for_berth_and_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let r = berth(&["man", dir.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let top = std::fs::read_to_string(dir.path().join("berth.1")).unwrap();
    assert!(top.contains(".TH berth"), "{top}");
    let rollback = std::fs::read_to_string(dir.path().join("berth-rollback.1")).unwrap();
    assert!(rollback.contains("\\-\\-to"), "{rollback}");
}

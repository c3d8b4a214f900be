//! A container's or a job's env as written: plain values and secret references, each checked
//! where it is. Pure.

use super::*;

/// Env values as written (`NAME: value` or `NAME: {secret: NAME}`), each checked where it is.
pub(super) fn load_env(
    l: &mut Loader,
    src: &SourceFile,
    entries: &std::collections::HashMap<Spanned<String>, Spanned<EnvEntry>>,
    needs_secrets: bool,
) -> std::collections::BTreeMap<String, EnvValue> {
    let mut env = std::collections::BTreeMap::new();
    for (k, v) in entries {
        if k.value.is_empty() || k.value.contains('=') || k.value.contains('\0') {
            l.report(
                src.error(
                    k,
                    format!("invalid env name {:?}", k.value),
                    "not a variable name",
                )
                .with_help("an env name is not empty and has no `=` in it"),
            );
        }
        let value = match &v.value {
            EnvEntry::Value(s) => EnvValue::Plain(s.to_string()),
            EnvEntry::Other(other) => {
                let why = match other {
                    serde_json::Value::Null => {
                        "it has no value; write \"\" for an empty one".to_string()
                    }
                    serde_json::Value::Object(m) => format!(
                        "a secret reference is {{secret: NAME}} and nothing else; found {}",
                        m.keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => "an env value is a string, a number, true or false, or {secret: NAME}"
                        .to_string(),
                };
                l.report(src.error(v, format!("invalid value for env {}", k.value), why));
                EnvValue::Plain(String::new())
            }
            EnvEntry::Secret(SecretRef { secret }) => {
                l.need_secret(secret, needs_secrets, || {
                    src.error(
                        v,
                        format!("secret {secret:?} has no value"),
                        "secret not set",
                    )
                });
                EnvValue::Secret {
                    secret: secret.clone(),
                }
            }
        };
        env.insert(k.value.clone(), value);
    }
    env
}

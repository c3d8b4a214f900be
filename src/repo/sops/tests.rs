//! The SOPS reader on files sops made (tests/fixtures/sops).
use super::*;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sops")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn key() -> Vec<age::x25519::Identity> {
    identities(&fixture("age-key.txt")).unwrap()
}

#[test]
fn a_file_made_by_sops_decrypts_with_its_age_key() {
    let yaml = decrypt("app.enc.yaml", &fixture("app.enc.yaml"), &key()).unwrap();
    assert_eq!(yaml["db-password"], "hunter2-from-sops");
    assert_eq!(yaml["api-token"], "12345");
    assert_eq!(yaml["port"], "5432");
    assert_eq!(yaml["enabled"], "true");
    assert_eq!(yaml["nested.inner"], "deep-value");
    assert_eq!(yaml["note_unencrypted"], "visible");
    let json = decrypt("app.enc.json", &fixture("app.enc.json"), &key()).unwrap();
    assert_eq!(json["db-password"], "hunter2-json");
    assert!(!json.contains_key("list"), "list items have no name");
    assert!(is_sops("app.enc.yaml", &fixture("app.enc.yaml")));
    assert!(!is_sops("x.yaml", "a: b\n"));
}

#[test]
fn a_wrong_key_an_edited_value_or_a_plain_file_is_refused() {
    let other = identities(&fixture("other-age-key.txt")).unwrap();
    let e = decrypt("app.enc.yaml", &fixture("app.enc.yaml"), &other).unwrap_err();
    assert!(
        matches!(&e, SopsError::NoKey(why) if why.contains("none of the age keys given opens it")),
        "{e}"
    );
    let e = decrypt("app.enc.yaml", &fixture("app.enc.yaml"), &[]).unwrap_err();
    assert!(
        matches!(&e, SopsError::NoKey(why) if why.contains("SOPS_AGE_KEY_FILE")),
        "{e}"
    );
    // An unencrypted value changed by hand: the MAC says so.
    let edited =
        fixture("app.enc.yaml").replace("note_unencrypted: visible", "note_unencrypted: changed");
    let e = decrypt("app.enc.yaml", &edited, &key()).unwrap_err();
    assert!(
        matches!(&e, SopsError::Invalid(why) if why.contains("MAC does not match")),
        "{e}"
    );
    // Two encrypted values swapped: each is bound to its path.
    let text = fixture("app.enc.yaml");
    let line = |k: &str| text.lines().find(|l| l.starts_with(k)).unwrap().to_string();
    let (a, b) = (line("db-password:"), line("api-token:"));
    let swapped = text
        .replace(&a, "@@A@@")
        .replace(&b, &a.replacen("db-password", "api-token", 1))
        .replace("@@A@@", &b.replacen("api-token", "db-password", 1));
    let e = decrypt("app.enc.yaml", &swapped, &key())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be decrypted"), "{e}");
    let e = decrypt("plain.yaml", "db-password: hunter2\n", &key())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not encrypted with sops"), "{e}");
}

#[test]
fn a_file_for_another_key_is_skipped_and_a_name_in_two_files_is_an_error() {
    let file = |path: &str, name: &str| (path.to_string(), fixture(name));
    // other.enc.yaml is for the other environment's key: skipped, and named.
    let files = [
        file("secrets/prod.yaml", "app.enc.yaml"),
        file("secrets/staging.yaml", "other.enc.yaml"),
    ];
    let d = decrypt_all(&files, &key()).unwrap();
    assert_eq!(
        d.values["db-password"],
        (
            "hunter2-from-sops".to_string(),
            "secrets/prod.yaml".to_string()
        )
    );
    assert!(!d.values.contains_key("queue-token"));
    assert_eq!(d.skipped.len(), 1);
    assert!(
        d.skipped[0].starts_with("secrets/staging.yaml: none of the age keys"),
        "{d:?}"
    );
    // With both keys, both are read.
    let mut both = key();
    both.extend(identities(&fixture("other-age-key.txt")).unwrap());
    let d = decrypt_all(&files, &both).unwrap();
    assert_eq!(d.values["queue-token"].0, "for-the-other-environment");
    // db-password is in both app fixtures: refused, naming both files.
    let twice = [
        file("secrets/prod.yaml", "app.enc.yaml"),
        file("secrets/app.json", "app.enc.json"),
    ];
    assert_eq!(
        decrypt_all(&twice, &key()).unwrap_err(),
        "secret \"db-password\" is in both secrets/prod.yaml and secrets/app.json: a name may be in one SOPS file only"
    );
}

/// With `mac_only_encrypted` (made by sops 3.11 from a creation rule), the MAC covers the
/// encrypted values only: a plain value added by hand passes it, and the file's rules
/// (encrypt all but `_unencrypted` keys) refuse it.
#[test]
fn a_plain_value_the_rules_say_is_encrypted_is_refused() {
    let text = fixture("app.mac-only.enc.yaml");
    let ok = decrypt("m.yaml", &text, &key()).unwrap();
    assert_eq!(ok["db-password"], "hunter2-mac-only");
    assert_eq!(ok["note_unencrypted"], "visible");
    let injected = text.replacen(
        "note_unencrypted: visible",
        "note_unencrypted: visible\napi-token: injected",
        1,
    );
    let e = decrypt("m.yaml", &injected, &key())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the value at api-token is plain, but the file's sops rules encrypt it"),
        "{e}"
    );
    let allowed = text.replacen(
        "note_unencrypted: visible",
        "note_unencrypted: visible\nother_unencrypted: fine",
        1,
    );
    assert_eq!(
        decrypt("m.yaml", &allowed, &key()).unwrap()["other_unencrypted"],
        "fine"
    );
}

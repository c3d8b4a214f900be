//! Tags that move and digests that pin, on the lab registry (198.18.0.1:5000). A tag is
//! resolved to its digest at plan time through a host's engine; a container records and runs
//! that digest; CI pushing a new image under the same tag is a planned replace naming both
//! digests, which `sync` rolls out, and the next sync changes nothing. `image@sha256:…` runs
//! exactly that; `pull: missing` does not look at the registry.

use crate::common::*;

const REF: &str = "198.18.0.1:5000/t-digest/web:live";

/// Pushes the lab image `berth-lab/web:VERSION` as REF from h1, as CI would; returns its
/// digest. No host keeps the tag, so berth's hosts pull it from the registry.
fn push(version: &str) -> String {
    docker("h1", &["tag", &format!("berth-lab/web:{version}"), REF]);
    let out = docker("h1", &["push", REF]);
    docker("h1", &["rmi", REF]);
    let digest = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in the push output: {out}"));
    digest.to_string()
}

fn deployment(image: &str, pull: Option<&str>) -> String {
    let web = web("web", 2, "v1", "role=web").replace("berth-lab/web:v1", image);
    match pull {
        Some(p) => web.replace(
            &format!("      image: {image}\n"),
            &format!("      image: {image}\n      pull: {p}\n"),
        ),
        None => web,
    }
}

/// The digest each of the project's running containers was created from (its image
/// reference); the old revisions kept stopped are left out.
fn running(repo: &Repo) -> Vec<String> {
    let mut digests = Vec::new();
    for h in HOSTS {
        for c in repo.running_on(h) {
            let image = docker(h, &["inspect", "--format", "{{.Config.Image}}", &c.name]);
            digests.push(
                image
                    .trim()
                    .split('@')
                    .nth(1)
                    .unwrap_or("(none)")
                    .to_string(),
            );
        }
    }
    digests
}

#[test]
fn a_moved_tag_is_a_rollout_of_its_new_digest_and_a_pinned_digest_runs_exactly() {
    let repo = Repo::new("t-digest");
    let d1 = push("v1");
    repo.write("deployments/web.yaml", &deployment(REF, None));
    repo.commit("web at the live tag");
    repo.apply_ok(&[]);
    assert_eq!(running(&repo), vec![d1.clone(), d1.clone()]);
    let r = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(r.code, 0, "nothing moved: {r:?}");

    // CI pushes another image under the same tag.
    let d2 = push("v2");
    assert_ne!(d1, d2);
    let r = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    let short = |d: &str| format!("{}…", &d[..19]);
    let moved = format!("app.digest: {} → {}", short(&d1), short(&d2));
    assert!(r.stdout.contains(&moved), "{moved}\n{r:?}");
    // Two pods with the same change: one line, both pods named.
    assert_eq!(r.stdout.matches("~ replace").count(), 1, "{r:?}");
    assert_eq!(r.stdout.matches(" → web-").count(), 2, "{r:?}");
    let json = repo.berth(&["plan", "--format", "json"]);
    assert!(
        json.stdout.contains(&d2),
        "the JSON plan has the whole digest: {json:?}"
    );

    let r = repo.berth(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(running(&repo), vec![d2.clone(), d2.clone()]);
    let r = repo.berth(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("No changes"),
        "a second sync changes nothing: {r:?}"
    );

    // `pull: missing` does not ask the registry: a tag that moves again changes nothing.
    repo.write("deployments/web.yaml", &deployment(REF, Some("missing")));
    repo.commit("pull: missing");
    repo.apply_ok(&[]);
    let _d3 = push("v3");
    let r = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(r.code, 0, "{r:?}");

    // `pull: always` needs the registry's answer: one that does not answer stops the plan
    // before any host is touched.
    let gone = "198.18.0.1:5999/t-digest/web:live";
    repo.write("deployments/web.yaml", &deployment(gone, Some("always")));
    repo.commit("pull: always from a registry that is not there");
    let before = running(&repo);
    let r = repo.berth(&["plan"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("cannot resolve {gone} to a digest")),
        "{r:?}"
    );
    let r = repo.berth(&["apply", "--auto-approve"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(running(&repo), before, "nothing changed");

    // Pinned in Git: exactly that digest runs, whatever the tag names.
    let pinned = format!("198.18.0.1:5000/t-digest/web@{d1}");
    repo.write("deployments/web.yaml", &deployment(&pinned, None));
    repo.commit("pinned to the first digest");
    repo.apply_ok(&[]);
    assert_eq!(running(&repo), vec![d1.clone(), d1.clone()]);
    let r = repo.berth(&["plan", "--exit-code"]);
    assert_eq!(r.code, 0, "{r:?}");
}

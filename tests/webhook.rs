//! Webhook events on the lab: a receiver on loopback gets a JSON event for each apply
//! started and ended (succeeded, rolled back) and for drift found; a webhook that is down is
//! a warning that does not show its URL, and the apply goes on.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

/// An HTTP receiver on loopback: each request's JSON body, in order.
fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/t0ken-in-the-url",
        listener.local_addr().unwrap()
    );
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .unwrap();
            let _ = send.send(serde_json::from_slice(&body).unwrap());
        }
    });
    (url, receive)
}

fn events(receive: &mpsc::Receiver<serde_json::Value>) -> Vec<serde_json::Value> {
    receive.try_iter().collect()
}

#[test]
fn a_receiver_gets_apply_and_drift_events() {
    let repo = Repo::new("t-webhook");
    let (url, receive) = receiver();
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let r = repo.berth(&["apply", "--auto-approve", "-q", "--webhook-url", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    let got = events(&receive);
    let names: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["apply.started", "apply.succeeded"], "{got:?}");
    assert_eq!(got[1]["project"], "t-webhook");
    assert_eq!(got[1]["deployments"], serde_json::json!(["web"]));
    assert_eq!(got[1]["hosts"], serde_json::json!(["h2"]));
    assert!(
        got[1]["summary"]
            .as_str()
            .unwrap()
            .starts_with("1 to create"),
        "{got:?}"
    );

    // A failed health gate: rolled back, with what failed.
    repo.write(
        "deployments/web.yaml",
        &web("web", 1, "v2", "zone=b").replace("/healthz", "/missing"),
    );
    repo.commit("broken");
    let r = berth_env(
        &[
            "apply",
            "--auto-approve",
            "-q",
            "--repo",
            repo.path().to_str().unwrap(),
        ],
        &[("BERTH_WEBHOOK_URL", &url)],
    );
    assert_eq!(r.code, 3, "{r:?}");
    let got = events(&receive);
    assert_eq!(got.last().unwrap()["event"], "apply.rolled_back", "{got:?}");
    assert!(
        got.last().unwrap()["details"][0]
            .as_str()
            .unwrap()
            .contains("h2"),
        "{got:?}"
    );

    // Drift: the running pod stopped by hand.
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("back to v1");
    let name = repo.running_on("h2")[0].name.clone();
    docker("h2", &["stop", "-t", "1", &name]);
    let r = repo.berth(&["drift", "--webhook-url", &url]);
    assert_eq!(r.code, 2, "{r:?}");
    let got = events(&receive);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "drift.found");
    assert!(
        got[0]["details"][0].as_str().unwrap().contains("web"),
        "{got:?}"
    );

    // A webhook that is down: a warning without its URL; the apply is done.
    let r = repo.berth(&[
        "apply",
        "--auto-approve",
        "-q",
        "--webhook-url",
        "http://127.0.0.1:9/hooks/t0ken-in-the-url",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.said()
            .contains("the webhook did not take the apply.started event"),
        "{r:?}"
    );
    assert!(!r.all().contains("t0ken-in-the-url"), "{r:?}");
}

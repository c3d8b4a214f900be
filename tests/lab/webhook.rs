//! Webhook events on the lab: a receiver on loopback gets a JSON event for each apply
//! started and ended (succeeded, rolled back) and for drift found; a webhook that is down is
//! a warning that does not show its URL, and the apply goes on.

use crate::common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

/// One request as the receiver got it.
struct Received {
    /// Header names in lower case.
    headers: std::collections::BTreeMap<String, String>,
    body: String,
    json: serde_json::Value,
}

/// An HTTP receiver on loopback: each request's headers and JSON body, in order.
fn receiver() -> (String, mpsc::Receiver<Received>) {
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
            let mut headers = std::collections::BTreeMap::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let length = headers
                .get("content-length")
                .map_or(0, |v| v.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .unwrap();
            let _ = send.send(Received {
                headers,
                json: serde_json::from_slice(&body).unwrap(),
                body: String::from_utf8(body).unwrap(),
            });
        }
    });
    (url, receive)
}

fn events(receive: &mpsc::Receiver<Received>) -> Vec<serde_json::Value> {
    receive.try_iter().map(|r| r.json).collect()
}

/// HMAC-SHA256 by openssl, as a receiver would check it (not berth's own code).
fn openssl_hmac(key: &str, message: &str) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split_whitespace().last().unwrap().to_string()
}

#[test]
fn a_receiver_gets_apply_and_drift_events() {
    let repo = Repo::new("t-webhook");
    let (url, receive) = receiver();
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let r = repo.berth(&["apply", "--auto-approve", "-q", "--webhook-url", &url]);
    assert_eq!(r.code, 0, "{r:?}");
    let got: Vec<Received> = receive.try_iter().collect();
    assert!(
        got.iter()
            .all(|r| !r.headers.contains_key("x-berth-signature")),
        "no key, no signature"
    );
    let got: Vec<serde_json::Value> = got.into_iter().map(|r| r.json).collect();
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
        &[
            ("BERTH_WEBHOOK_URL", &url),
            ("BERTH_SECRET_WEBHOOK", "wh-s3cret"),
        ],
    );
    assert_eq!(r.code, 3, "{r:?}");
    let got: Vec<Received> = receive.try_iter().collect();
    // Signed with the secret `webhook`: a receiver checks it with its own HMAC.
    let last = got.last().unwrap();
    let time = &last.headers["x-berth-timestamp"];
    let expected = openssl_hmac("wh-s3cret", &format!("{time}.{}", last.body));
    assert_eq!(
        last.headers["x-berth-signature"],
        format!("sha256={expected}")
    );
    let sent: u64 = time.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        now.abs_diff(sent) < 120,
        "a fresh timestamp: {sent} vs {now}"
    );
    let got: Vec<serde_json::Value> = got.into_iter().map(|r| r.json).collect();
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

/// An HTTPS receiver (Python's http.server behind ssl) with a self-signed certificate for
/// 127.0.0.1; it prints each body it takes on a line.
const HTTPS_RECEIVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        print(body.decode(), flush=True)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(('127.0.0.1', 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn an_https_webhook_is_checked_against_the_systems_roots_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test's certificate");
    assert!(made.status.success(), "{made:?}");
    let mut server = std::process::Command::new("python3")
        .args(["-c", HTTPS_RECEIVER])
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the HTTPS receiver");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();
    let url = format!("https://127.0.0.1:{port}/hooks/t0ken");

    let repo = Repo::new("t-webhook-tls");
    repo.write("deployments/web.yaml", &web("web", 1, "v1", "zone=b"));
    repo.commit("v1");
    let path = repo.path().to_str().unwrap().to_string();
    // Its certificate is not among the system's roots: refused, a warning, the apply is done.
    let r = berth_env(
        &["apply", "--auto-approve", "-q", "--repo", &path],
        &[("BERTH_WEBHOOK_URL", &url)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.said()
            .contains("the webhook did not take the apply.started event"),
        "{r:?}"
    );
    // Trusted as OpenSSL is told to trust it (SSL_CERT_FILE): delivered.
    repo.write("deployments/web.yaml", &web("web", 1, "v2", "zone=b"));
    repo.commit("v2");
    let r = berth_env(
        &["apply", "--auto-approve", "-q", "--repo", &path],
        &[
            ("BERTH_WEBHOOK_URL", &url),
            ("SSL_CERT_FILE", cert.to_str().unwrap()),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.said().contains("did not take"), "{r:?}");
    let _ = server.kill();
    let _ = server.wait();
    let got: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(
        got.len(),
        2,
        "apply.started and apply.succeeded over HTTPS: {got:?}"
    );
    assert!(got[1].contains("\"apply.succeeded\""), "{got:?}");
}

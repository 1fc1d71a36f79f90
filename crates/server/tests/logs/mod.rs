//! `countersign-server serve` as a process: JSON logs whose `request_id`
//! matches the response's `X-Request-Id` and the audit rows the request
//! wrote; SIGHUP applies a new `log.level` without a restart, and a
//! configuration that no longer loads changes nothing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_core::pin::PinnedVerifier;
use countersign_testkit::Proc;

use crate::common::server_command;

fn config(dir: &Path, port: u16, level: &str) {
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n[log]\njson = true\nlevel = \"{level}\"\n[metrics]\nlisten = \"\"\n"
        ),
    )
    .unwrap();
}

/// Waits until `log` holds a line containing `text`; the lines so far.
fn wait_for_line(log: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = std::fs::read_to_string(log).unwrap_or_default();
        if got.contains(text) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {text:?} in:\n{got}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TOTP check through the admin API for an officer with no device yet
/// (refused, and audited); its `X-Request-Id`.
async fn check_code(http: &reqwest::Client, base: &str, admin: &str) -> String {
    let resp = http
        .post(format!("{base}/api/v1/totp/verify"))
        .bearer_auth(admin)
        // A client's own id is not taken: the server names its requests.
        .header("x-request-id", "chosen-by-the-client")
        .json(&serde_json::json!({"username": "cs0401", "code": "000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "no authenticator to check against");
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "chosen-by-the-client");
    id
}

/// The audit rows' request ids for `action`, oldest first.
fn audited_request_ids(dir: &Path, action: &str) -> Vec<String> {
    let out = server_command(dir)
        .args(["audit", "--format", "json"])
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .filter(|r| r["action"] == action)
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_join_logs_and_audit_rows_and_sighup_changes_the_level() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = countersign_testkit::free_port();
    config(dir, port, "warn");
    let out = server_command(dir)
        .args(["user", "add", "cs0401", "--first", "Ada", "--last", "Ng"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = dir.join("server.log");
    let proc = Proc::spawn(
        server_command(dir)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    // The runtime file is written once the server is ready, after it
    // started listening.
    let data = countersign_server::infra::datadir::DataDir::open(&dir.join("data")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let runtime = loop {
        if let Some(rt) = countersign_server::http::serve::running_server(&data) {
            break rt;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pin = runtime.tls_pin().unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(PinnedVerifier::client_config(pin).unwrap())
        .build()
        .unwrap();
    let admin = data.admin_token().unwrap();
    let base = format!("https://127.0.0.1:{port}");

    // At "warn", a request leaves no log line, but its audit row has its id.
    let quiet = check_code(&http, &base, &admin).await;
    assert_eq!(quiet.len(), 12, "{quiet}");

    // SIGHUP with "debug": the next request's lines carry its id.
    config(dir, port, "debug");
    let hup = Command::new("kill")
        .args(["-HUP", &proc.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for_line(&log, "SIGHUP: log level now \"debug\"");
    let loud = check_code(&http, &base, &admin).await;
    let lines = wait_for_line(&log, &format!("\"request_id\":\"{loud}\""));
    assert!(
        !lines.contains(&quiet),
        "the request served at warn was not logged"
    );
    let answered = lines
        .lines()
        .filter(|l| l.contains(&loud))
        .find(|l| l.contains("\"message\":\"answered\""))
        .unwrap_or_else(|| panic!("no 'answered' line for {loud}:\n{lines}"));
    let v: serde_json::Value = serde_json::from_str(answered).unwrap();
    assert_eq!(v["level"], "DEBUG");
    assert_eq!(v["fields"]["status"], 409);
    assert_eq!(
        audited_request_ids(dir, "totp.verify"),
        vec![quiet.clone(), loud.clone()],
        "each audit row names the request that wrote it"
    );

    // A configuration that no longer loads is reported; nothing changes.
    std::fs::write(dir.join("server.toml"), "[log]\nlevel = 5\n").unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &proc.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for_line(
        &log,
        "SIGHUP: the configuration does not load, nothing changed",
    );
    let after = check_code(&http, &base, &admin).await;
    wait_for_line(&log, &format!("\"request_id\":\"{after}\""));
    proc.terminate();
}

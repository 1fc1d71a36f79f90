//! Interop with a relying-party library from another ecosystem: Python's
//! `authlib` (`authlib_rp.py`, in a virtualenv `./test.sh` creates with
//! `scripts/interop-venv.sh`) does discovery, the code flow with PKCE, the
//! ID token's validation, userinfo and logout against a real server, while
//! this test holds the officer's device.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::*;

/// The virtualenv's Python, or a failure that says how to make it.
fn python() -> PathBuf {
    let venv = std::env::var_os("COUNTERSIGN_INTEROP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/interop-venv.sh (./test.sh does)",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_signs_in_validates_the_id_token_and_logs_out() {
    let sso = Sso::start_with(|lets| {
        lets.id_token_alg = TokenAlg::Es256;
    })
    .await;
    let ts = &sso.ts;
    let (temp, dev) = sso.officer("cs0751").await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/authlib_rp.py");
    let ca = ts.dir.path().join("tls-cert.pem");
    let mut child = Command::new(python())
        .arg(&script)
        .arg(&ts.url)
        .arg(&ca)
        .args([
            "lets",
            &sso.lets_secret,
            LETS_CB,
            LETS_BYE,
            "cs0751",
            &temp,
            NEW,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // The script's lines arrive on a thread; the device answers here.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut result = None;
    while let Some(line) = rx.recv().await {
        if let Some(push) = line.strip_prefix("PUSH ") {
            let (id, number) = push.split_once(' ').unwrap();
            let pending = dev.poll(ts, 5).await;
            let envelope = pending
                .iter()
                .find(|e| e.challenge.id == id)
                .expect("the push");
            assert_eq!(envelope.challenge.application, "LETS");
            let number: u8 = number.parse().unwrap();
            dev.answer(ts, &dev.response(id, Decision::Approve, Some(number)))
                .await;
            stdin.write_all(b"answered\n").unwrap();
        } else if let Some(json) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<Value>(json).unwrap());
        } else {
            panic!("authlib_rp.py: {line}");
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "authlib_rp.py failed");
    let r = result.expect("the script's result");
    assert_eq!(r["alg"], "ES256");
    assert_eq!(
        r["claims"]["amr"],
        serde_json::json!(["pwd", "swk", "user", "mfa"])
    );
    assert_eq!(r["claims"]["acr"], "mfa");
    assert_eq!(r["claims"]["preferred_username"], "cs0751");
    assert_eq!(r["userinfo"]["email"], "cs0751@alacop.gov");
    assert!(r["way_back"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{LETS_BYE}?state=")));
    assert_eq!(r["userinfo_after_logout"], 401);
}

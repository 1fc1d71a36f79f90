//! The app's commands through Tauri's mock runtime, against a real
//! `countersign-server` on loopback: first run, lock, adding accounts,
//! codes that agree with oathtool, and a number-matching push answered
//! with the number and the passcode.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;

mod common;

use common::PASSCODE;

fn app(home: &Path) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = countersign_app::with_commands(mock_builder())
        .manage(countersign_app::AppState::new(home.to_path_buf()))
        .build(mock_context(noop_assets()))
        .unwrap();
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, window)
}

/// Calls a command as the window would; `Err` carries `{code, message}`.
fn call(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    tauri::test::get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

/// First run: the vault under [`PASSCODE`].
fn create_vault(w: &WebviewWindow<MockRuntime>) {
    call(
        w,
        "create_vault",
        json!({"passcode": PASSCODE, "confirm": PASSCODE}),
    )
    .unwrap();
}

fn code_of(err: Result<Value, Value>) -> String {
    err.expect_err("the command should fail")["code"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn first_run_lock_and_otp_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let (_app, w) = app(tmp.path());
    assert_eq!(call(&w, "status", json!({})).unwrap()["vault"], "none");
    assert_eq!(
        code_of(call(
            &w,
            "create_vault",
            json!({"passcode": PASSCODE, "confirm": "246811"})
        )),
        "bad_input"
    );
    assert_eq!(
        code_of(call(
            &w,
            "create_vault",
            json!({"passcode": "123", "confirm": "123"})
        )),
        "weak_passcode"
    );
    create_vault(&w);
    assert_eq!(call(&w, "status", json!({})).unwrap()["vault"], "unlocked");

    let uri =
        "otpauth://totp/ALEA:cs0101@alacop.gov?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=ALEA";
    let preview = call(&w, "preview", json!({"text": uri})).unwrap();
    assert_eq!(preview[0]["account"], "cs0101@alacop.gov");
    assert_eq!(preview[0]["kind"], "totp");
    assert_eq!(
        code_of(call(
            &w,
            "preview",
            json!({"text": "otpauth://totp/x?secret=!!"})
        )),
        "invalid_input"
    );
    assert_eq!(
        call(&w, "accounts", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0,
        "a preview adds nothing"
    );
    call(&w, "add", json!({"text": uri})).unwrap();
    assert_eq!(code_of(call(&w, "add", json!({"text": uri}))), "duplicate");
    let accounts = call(&w, "accounts", json!({})).unwrap();
    let code = accounts[0]["code"].as_str().unwrap().to_string();
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"])
        .output()
        .expect("oathtool (test.sh installs it)");
    let want = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // A step boundary may fall between the two readings.
    let again = call(&w, "accounts", json!({})).unwrap()[0]["code"].clone();
    assert!(
        code == want || again == want,
        "app {code}/{again}, oathtool {want}"
    );

    // The next code comes with the current one, for the list to show when
    // the period turns without asking again: oathtool agrees.
    let a = &call(&w, "accounts", json!({})).unwrap()[0];
    let at = a["changes_at"].as_u64().unwrap() / 1000;
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "--now"])
        .arg(format!("@{at}"))
        .output()
        .unwrap();
    assert_eq!(
        a["next_code"].as_str().unwrap(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert!(a["seconds_left"].as_u64().unwrap() <= 30);

    // A key typed by hand: the engine makes the account, named as typed.
    let typed =
        json!({"text": "gezd gnbv gy3t qojq gezd gnbv gy3t qojq", "name": "typed@alacop.gov"});
    let preview = call(&w, "preview", typed.clone()).unwrap();
    assert_eq!(
        preview,
        json!([{"issuer": null, "account": "typed@alacop.gov", "kind": "totp", "server": null}])
    );
    call(&w, "add", typed).unwrap();
    let names: Vec<Value> = call(&w, "accounts", json!({}))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert!(names.contains(&json!("typed@alacop.gov")), "{names:?}");
    assert_eq!(
        code_of(call(
            &w,
            "preview",
            json!({"text": "not a key!", "name": "x"})
        )),
        "invalid_input"
    );

    // The passcode rule is the engine's, said as the page shows it.
    for (passcode, strength) in [
        ("12345", "too_short"),
        ("246810", "fair"),
        ("Abcdefghi1", "strong"),
    ] {
        let r = call(&w, "passcode_strength", json!({"passcode": passcode})).unwrap();
        assert_eq!(r["strength"], strength, "{passcode}");
        assert!(r["hint"].as_str().is_some_and(|h| !h.is_empty()));
    }

    call(&w, "lock", json!({})).unwrap();
    assert_eq!(call(&w, "status", json!({})).unwrap()["vault"], "locked");
    assert_eq!(code_of(call(&w, "accounts", json!({}))), "locked");
    assert_eq!(
        code_of(call(&w, "unlock", json!({"passcode": "000000"}))),
        "wrong_passcode"
    );
    let status = call(&w, "status", json!({})).unwrap();
    assert_eq!(status["failures"], 1);
    call(&w, "unlock", json!({"passcode": PASSCODE})).unwrap();
    assert_eq!(
        call(&w, "accounts", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2,
        "both accounts, from the link and the typed key"
    );
}

#[test]
fn scanning_an_enrollment_qr_image_and_bad_images() {
    let tmp = tempfile::tempdir().unwrap();
    let (_app, w) = app(tmp.path());
    let png = std::fs::read(fixtures().join("clean_totp_sha1.png")).unwrap();
    let b64 = data_encoding::BASE64.encode(&png);
    let payloads = call(
        &w,
        "scan_image",
        json!({"image": format!("data:image/png;base64,{b64}")}),
    )
    .unwrap();
    assert!(payloads[0].as_str().unwrap().contains("://"), "{payloads}");
    assert_eq!(
        code_of(call(
            &w,
            "scan_image",
            json!({"image": "data:image/png;base64,@@"})
        )),
        "bad_input"
    );
    assert_eq!(
        code_of(call(
            &w,
            "scan_image",
            json!({"image": data_encoding::BASE64.encode(b"not an image")})
        )),
        "invalid_input"
    );
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/qr")
}

fn wait_for_request(w: &WebviewWindow<MockRuntime>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = call(w, "requests", json!({})).unwrap();
        if let Some(r) = list.as_array().unwrap().first() {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "no request reached the app");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn number_matching_push_is_approved_with_the_number_and_passcode() {
    let server = common::server();
    let payload = server.enroll_link();

    let tmp = tempfile::tempdir().unwrap();
    let (_app, w) = app(tmp.path());
    create_vault(&w);
    assert_eq!(
        code_of(call(&w, "add", json!({"text": payload}))),
        "passcode_needed"
    );
    let added = call(&w, "add", json!({"text": payload, "passcode": PASSCODE})).unwrap();
    assert_eq!(added["added"][0]["kind"], "push");

    // A wrong passcode sends nothing; a wrong number is a mismatch.
    let (number, mut push, _) = server.push();
    let r = wait_for_request(&w);
    assert_eq!(r["account"].as_str().unwrap(), "ALEA (cs0101@alacop.gov)");
    assert!(r["seconds_left"].as_i64().unwrap() > 30);
    let wrong = if number == "42" { "43" } else { "42" };
    let answer = |number: &str, passcode: &str| {
        call(
            &w,
            "answer",
            json!({"id": r["id"], "decision": "approve", "number": number, "passcode": passcode}),
        )
    };
    assert_eq!(code_of(answer(wrong, "999999")), "wrong_passcode");
    assert_eq!(
        answer(wrong, PASSCODE).unwrap()["status"],
        "number_mismatch"
    );
    assert_eq!(
        push.wait().unwrap().code(),
        Some(1),
        "push reports the refusal"
    );

    // The right number with the passcode approves.
    let (number, mut push, rest) = server.push();
    let r = wait_for_request(&w);
    let answer = |number: &str| {
        call(
            &w,
            "answer",
            json!({"id": r["id"], "decision": "approve", "number": number, "passcode": PASSCODE}),
        )
    };
    assert_eq!(
        code_of(answer("7")),
        "bad_input",
        "one digit is not a number shown"
    );
    assert_eq!(answer(&number).unwrap()["status"], "approved");
    assert!(
        push.wait().unwrap().success(),
        "the server reports approved"
    );
    let result = rest.join().unwrap();
    assert!(result.contains("approved"), "{result}");
    assert_eq!(
        call(&w, "requests", json!({}))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let history = call(&w, "history", json!({})).unwrap();
    assert_eq!(history[0]["result"], "approved");

    // "I can't see the number" denies; "Report" blocks further requests.
    for (decision, verdict) in [("cannot_see_number", "denied"), ("report", "reported")] {
        let (_, mut push, _) = server.push();
        let r = wait_for_request(&w);
        let answer = call(
            &w,
            "answer",
            json!({"id": r["id"], "decision": decision, "passcode": PASSCODE}),
        )
        .unwrap();
        assert_eq!(answer["status"], verdict);
        assert_eq!(push.wait().unwrap().code(), Some(1), "{decision}");
    }
    let blocked = server.server_command(&["push", "cs0101"]).output().unwrap();
    assert!(!blocked.status.success());
    let said = String::from_utf8_lossy(&blocked.stderr);
    assert!(said.contains("blocked"), "{said}");
}

#[test]
fn an_account_that_cannot_listen_is_tried_again_at_the_next_unlock() {
    let server = common::server();
    let payload = server.enroll_link();
    let tmp = tempfile::tempdir().unwrap();
    {
        let (_app, w) = app(tmp.path());
        create_vault(&w);
        call(&w, "add", json!({"text": payload, "passcode": PASSCODE})).unwrap();
    }
    // The app starts again with the account's TLS pin damaged: the account
    // is refused, not trusted less, and not marked as listening.
    let db = rusqlite::Connection::open(tmp.path().join("vault.db")).unwrap();
    let pin: Vec<u8> = db
        .query_row("SELECT pin FROM accounts WHERE pin IS NOT NULL", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute("UPDATE accounts SET pin = x'00' WHERE pin IS NOT NULL", [])
        .unwrap();
    let (_app, w) = app(tmp.path());
    call(&w, "unlock", json!({"passcode": PASSCODE})).unwrap();
    let accounts = call(&w, "accounts", json!({})).unwrap();
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    // Mended, the next unlock listens, and a request arrives.
    db.execute("UPDATE accounts SET pin = ?1", [&pin]).unwrap();
    call(&w, "lock", json!({})).unwrap();
    call(&w, "unlock", json!({"passcode": PASSCODE})).unwrap();
    let (_, mut push, _) = server.push();
    let r = wait_for_request(&w);
    let answer = call(
        &w,
        "answer",
        json!({"id": r["id"], "decision": "deny", "passcode": PASSCODE}),
    )
    .unwrap();
    assert_eq!(answer["status"], "denied");
    assert_eq!(push.wait().unwrap().code(), Some(1));
}

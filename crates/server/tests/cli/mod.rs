//! The `countersign-server` command on a temporary data folder.

use std::process::{Command, Output};

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign-server"))
        .arg("--data")
        .arg(dir.join("data"))
        .args(args)
        .env_remove("COUNTERSIGN_CONFIG")
        .env_remove("COUNTERSIGN_LISTEN")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn a_bad_configuration_names_the_key_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[totp]\ndigits = 9\n").unwrap();
    let out = run(
        tmp.path(),
        &["--config", cfg.to_str().unwrap(), "user", "list"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: configuration key `totp.digits`: must be 6, 7 or 8"
    );
    std::fs::write(&cfg, "[push]\nttl = 5\n").unwrap();
    let out = run(
        tmp.path(),
        &["--config", cfg.to_str().unwrap(), "user", "list"],
    );
    assert!(
        text(&out.stderr).contains("unknown field `ttl`"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !tmp.path().join("data").exists(),
        "a bad configuration creates nothing"
    );
}

#[test]
fn user_lifecycle_and_audit_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &[
            "user",
            "add",
            "cs0201",
            "--first",
            "Lois",
            "--last",
            "Lane",
            "--ssn-last4",
            "1234",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "New$Alacop#l1234l");
    let dup = run(
        tmp.path(),
        &["user", "add", "cs0201", "--first", "Lois", "--last", "Lane"],
    );
    assert_eq!(
        (dup.status.code(), text(&dup.stderr).trim()),
        (Some(3), "error: user cs0201 already exists")
    );
    let bad = run(
        tmp.path(),
        &["user", "add", "CS 02", "--first", "X", "--last", "Y"],
    );
    assert!(text(&bad.stderr).contains("a username is 2–64 lower-case letters"));
    let bad = run(
        tmp.path(),
        &[
            "user",
            "add",
            "cs0202",
            "--first",
            "X",
            "--last",
            "Y",
            "--ssn-last4",
            "12a4",
        ],
    );
    assert!(text(&bad.stderr).contains("exactly four digits"));

    assert!(run(tmp.path(), &["user", "disable", "cs0201"])
        .status
        .success());
    assert!(run(tmp.path(), &["user", "role", "cs0201", "helpdesk"])
        .status
        .success());
    let show = text(&run(tmp.path(), &["user", "show", "cs0201"]).stdout);
    assert!(
        show.contains("role: helpdesk")
            && show.contains("disabled")
            && show.contains("must change password"),
        "{show}"
    );
    let unknown = run(tmp.path(), &["user", "show", "nobody"]);
    assert_eq!(text(&unknown.stderr).trim(), "error: user not found");
    let list: serde_json::Value =
        serde_json::from_slice(&run(tmp.path(), &["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["username"], "cs0201");
    assert!(
        list[0].get("password_hash").is_none(),
        "no hash in the listing"
    );

    let link = run(
        tmp.path(),
        &[
            "user",
            "enroll-link",
            "cs0201",
            "--png",
            tmp.path().join("qr.png").to_str().unwrap(),
        ],
    );
    assert!(text(&link.stdout)
        .starts_with("countersign://enroll?v=1&s=https%3A%2F%2F127.0.0.1%3A8443&c="));
    let decoded = countersign_core::qr::scan_bytes(
        &std::fs::read(tmp.path().join("qr.png")).unwrap(),
        &|| false,
    )
    .unwrap();
    assert_eq!(
        decoded.payloads,
        [text(&link.stdout).trim().to_string()],
        "the PNG holds the payload"
    );

    let csv = text(
        &run(
            tmp.path(),
            &["audit", "--format", "csv", "--user", "cs0201"],
        )
        .stdout,
    );
    assert!(csv.starts_with("seq,at,actor,action,target,ip,outcome,detail,hash\n"));
    for action in [
        "user.add",
        "user.disable",
        "user.role",
        "device.enroll_link",
    ] {
        assert!(csv.contains(action), "{action} in {csv}");
    }
    let verify = run(tmp.path(), &["audit", "verify"]);
    assert!(verify.status.success());
    assert!(text(&verify.stdout).starts_with("audit log intact: "));

    // Without a running server, a push says so.
    let push = run(tmp.path(), &["push", "cs0201"]);
    assert_eq!(push.status.code(), Some(3));
    assert!(text(&push.stderr).contains("no server is running"));

    // Ids are base64url and may start with '-': read as ids, not flags.
    let timeline = run(tmp.path(), &["helpdesk", "timeline", "-Yd2x"]);
    assert_eq!(timeline.status.code(), Some(3));
    assert!(
        text(&timeline.stderr).contains("challenge not found"),
        "{}",
        text(&timeline.stderr)
    );
}

#[test]
fn stored_control_characters_are_shown_escaped_on_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &[
            "user", "add", "cs0202", "--first", "Jimmy", "--last", "Olsen",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Rows written before control characters were refused at the door.
    let evil = "Pixel\x1b[2J\rApproved: type 42";
    let db = rusqlite::Connection::open(tmp.path().join("data/countersign.db")).unwrap();
    db.execute(
        "INSERT INTO devices (id, user_id, name, platform, app_version, public_key, token_hash, totp_secret, \
         totp_algorithm, totp_digits, totp_period, created_at) \
         SELECT 'dev1', id, ?1, 'linux', '1.0', x'00', x'00', x'00', 'SHA1', 6, 30, 0 FROM users WHERE username = 'cs0202'",
        [evil],
    )
    .unwrap();
    db.execute(
        "INSERT INTO registration_requests (first_name, last_name, email, agency, phone, reason, ip, created_at) \
         VALUES (?1, 'Doe', 'jd@agency.gov', ?1, '2055550100', ?1, '127.0.0.1', 0)",
        [evil],
    )
    .unwrap();
    drop(db);
    let shown = "Pixel\\u{1b}[2J\\u{d}Approved: type 42";
    for args in [
        &["helpdesk", "show", "cs0202"][..],
        &["user", "show", "cs0202"],
        &["user", "requests"],
    ] {
        let out = run(tmp.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(shown), "{args:?}: {stdout}");
        assert!(!stdout.contains(['\x1b', '\r']), "{args:?}: {stdout:?}");
    }
}

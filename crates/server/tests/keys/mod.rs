//! `keys rotate master` and `doctor` from the command line, on a real
//! data folder.

use std::path::Path;
use std::process::Output;

use countersign_server::now;

use crate::common::{on_folder as server, TestServer};

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_master_key_keeps_enrolled_devices_codes_working() {
    let mut ts = TestServer::start().await;
    let data = ts.dir.path().to_path_buf();
    if ts.config.store.is_postgres() {
        return; // SQLite only; the PostgreSQL refusal is in the domain.
    }
    ts.add_user("cs0501");
    let dev = ts.enroll("cs0501").await;
    assert!(ts.check_totp("cs0501", &dev.otp().code(now())).await);
    let running = server(&data, &["keys", "rotate", "master"]);
    assert!(!running.status.success());
    assert!(
        out(&running).contains("the server is running"),
        "{}",
        out(&running)
    );

    ts.running.take().unwrap().shutdown().await;
    let dir = std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap());
    drop(ts);
    let before = std::fs::read(data.join("master.key")).unwrap();
    let rotated = server(&data, &["keys", "rotate", "master"]);
    assert!(rotated.status.success(), "{}", out(&rotated));
    assert!(
        out(&rotated).contains("1 TOTP secrets sealed again"),
        "{}",
        out(&rotated)
    );
    assert_ne!(std::fs::read(data.join("master.key")).unwrap(), before);
    assert!(!data.join("master.key.next").exists());

    // The officer's codes still check: the secret opened under the new key.
    let ts = TestServer::start_on(dir).await;
    assert!(ts.check_totp("cs0501", &dev.otp().code(now() + 30)).await);
    let rows = ts.server.store.audit_entries(&Default::default()).unwrap();
    assert!(rows
        .iter()
        .any(|r| r.action == "keys.rotate_master" && r.outcome == "ok"));
    assert_eq!(ts.server.store.verify_audit().unwrap(), Ok(rows.len()));
}

#[test]
fn a_rotation_waits_for_no_server_on_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let made = server(
        &data,
        &["user", "add", "cs0503", "--first", "Ada", "--last", "Ng"],
    );
    assert!(made.status.success(), "{}", out(&made));
    // As a serving process does, from start to stop.
    let held = countersign_server::infra::datadir::DataDir::open(&data)
        .unwrap()
        .lock()
        .unwrap();
    let refused = server(&data, &["keys", "rotate", "master"]);
    assert!(!refused.status.success());
    assert!(
        out(&refused).contains("is in use by a running countersign-server"),
        "{}",
        out(&refused)
    );
    drop(held);
    let rotated = server(&data, &["keys", "rotate", "master"]);
    assert!(rotated.status.success(), "{}", out(&rotated));
}

#[test]
fn doctor_passes_a_sound_folder_names_what_is_wrong_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let made = server(
        &data,
        &["user", "add", "cs0502", "--first", "Ada", "--last", "Ng"],
    );
    assert!(made.status.success(), "{}", out(&made));
    let listing = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&data);
    let sound = server(&data, &["doctor"]);
    assert!(sound.status.success(), "{}", out(&sound));
    for line in [
        "ok   data folder",
        "database opens; audit chain intact (1 rows)",
        "free where the data folder is",
        "open-file limit is",
    ] {
        assert!(
            out(&sound).contains(line),
            "{line:?} missing:\n{}",
            out(&sound)
        );
    }
    assert_eq!(listing(&data), before, "doctor wrote nothing");

    // A folder open to others fails, with the command that fixes it.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let open = server(&data, &["doctor"]);
    assert_eq!(open.status.code(), Some(1));
    assert!(
        out(&open).contains(&format!("fix: chmod 700 {}", data.display())),
        "{}",
        out(&open)
    );
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();

    // A certificate ten days from its end is a warning.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    let today = time::OffsetDateTime::now_utc();
    params.not_before = today - time::Duration::days(1);
    params.not_after = today + time::Duration::days(10) + time::Duration::hours(1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(tmp.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(tmp.path().join("key.pem"), key.serialize_pem()).unwrap();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nmode = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            tmp.path().join("cert.pem").display(),
            tmp.path().join("key.pem").display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let soon = server(&data, &["--config", config, "doctor"]);
    assert!(out(&soon).contains("expires in 10 days"), "{}", out(&soon));

    // A configuration with a mistake fails and names the key.
    std::fs::write(tmp.path().join("server.toml"), "[totp]\ndigits = 9\n").unwrap();
    let bad = server(&data, &["--config", config, "doctor"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(out(&bad).contains("`totp.digits`"), "{}", out(&bad));
}

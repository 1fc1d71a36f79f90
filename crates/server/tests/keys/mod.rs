//! `keys rotate master|signing|tls` and `doctor` from the command line,
//! on a real data folder.

use std::path::Path;
use std::process::Output;

use countersign_core::protocol::Decision;
use countersign_server::now;

use crate::common::{on_folder as server, TestServer};

mod postgres;

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `countersign-server` on `data` and, on PostgreSQL, on the
/// database of the server that used `data`.
fn on_store(data: &Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_countersign-server"));
    cmd.arg("--data").arg(data).args(args);
    for var in [
        "COUNTERSIGN_CONFIG",
        "COUNTERSIGN_LISTEN",
        "COUNTERSIGN_STORE_URL",
    ] {
        cmd.env_remove(var);
    }
    countersign_testkit::postgres::store_env(&mut cmd, data);
    cmd.output().unwrap()
}

/// Runs `countersign-server` on `data`, which must succeed and say `said`.
fn succeeds(data: &Path, args: &[&str], said: &str) {
    let o = server(data, args);
    assert!(o.status.success(), "{args:?}: {}", out(&o));
    assert!(out(&o).contains(said), "{args:?}: {}", out(&o));
}

/// Runs `countersign-server` on `data`, which must fail and say `why`.
fn refuses(data: &Path, args: &[&str], why: &str) {
    let o = server(data, args);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(out(&o).contains(why), "{args:?}: {}", out(&o));
}

/// Stops the server; its data folder, to start again on.
async fn stop(mut ts: TestServer) -> tempfile::TempDir {
    ts.running.take().unwrap().shutdown().await;
    std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_master_key_keeps_enrolled_devices_codes_working() {
    let ts = TestServer::start().await;
    let data = ts.dir.path().to_path_buf();
    let on_postgres = ts.config.store.is_postgres();
    ts.add_user("cs0501");
    let dev = ts.enroll("cs0501").await;
    assert!(ts.check_totp("cs0501", &dev.otp().code(now())).await);
    let rotate = || on_store(&data, &["keys", "rotate", "master"]);
    let o = rotate();
    assert!(
        !o.status.success() && out(&o).contains("the server is running"),
        "{}",
        out(&o)
    );
    // On PostgreSQL an instance on another machine (another folder) holds
    // the old key too: the rotation waits for every instance to stop.
    let other = match on_postgres {
        true => Some(ts.second_instance().await),
        false => None,
    };
    let dir = stop(ts).await;
    if let Some(other) = other {
        let o = rotate();
        assert!(
            !o.status.success()
                && out(&o).contains("the server is running on this database")
                && out(&o).contains("(countersign-server, since "),
            "{}",
            out(&o)
        );
        drop(stop(other).await);
    }
    let before = std::fs::read(data.join("master.key")).unwrap();
    let o = rotate();
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("1 TOTP secrets sealed again"),
        "{}",
        out(&o)
    );
    let after = std::fs::read(data.join("master.key")).unwrap();
    assert_ne!(after, before);
    assert!(!data.join("master.key.next").exists());

    // The officer's codes still check: the secret opened under the new key.
    let ts = TestServer::start_on(dir).await;
    assert!(ts.check_totp("cs0501", &dev.otp().code(now() + 30)).await);
    let rows = ts.server.store.audit_entries(&Default::default()).unwrap();
    assert!(rows
        .iter()
        .any(|r| r.action == "keys.rotate_master" && r.outcome == "ok"));
    assert_eq!(ts.server.store.verify_audit().unwrap(), Ok(rows.len()));
    if on_postgres {
        // Another instance takes the new key from the database.
        let other = ts.second_instance().await;
        assert_eq!(
            std::fs::read(other.dir.path().join("master.key")).unwrap(),
            after
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_signing_key_reaches_devices_through_the_old_one_until_it_retires() {
    let ts = TestServer::start().await;
    let data = ts.dir.path().to_path_buf();
    let config = ts.config.clone();
    ts.add_user("cs0504");
    let dev = ts.enroll("cs0504").await;
    let dir = stop(ts).await;
    let o = on_store(&data, &["keys", "rotate", "signing", "--grace-days", "30"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("must be enrolled again"), "{}", out(&o));
    let o = on_store(&data, &["keys", "rotate", "signing"]);
    assert!(
        !o.status.success() && out(&o).contains("retires at"),
        "{}",
        out(&o)
    );
    let retiring_rows = || {
        countersign_testkit::postgres::sql(
            &data,
            "SELECT count(*) FROM sealed_secrets WHERE name = 'server-key-retiring.json'",
            &[],
        )
    };
    if config.store.is_postgres() {
        assert_eq!(retiring_rows(), [["1"]], "the rotation shares the old key");
    }

    // The device enrolled before: the envelope is signed by a key it does
    // not know, vouched for by the one it does; it follows and approves.
    let mut ts = TestServer::start_on(dir).await;
    let (id, number) = ts.push_ok("cs0504").await;
    let got = dev.poll(&ts, 5).await;
    assert!(
        got[0].verify(&dev.server_key).is_err(),
        "signed by the new key"
    );
    let new_key = got[0]
        .verify_trusting(&dev.server_key)
        .expect("vouched for by the old key")
        .expect("a new key to trust");
    assert_ne!(new_key, dev.server_key);
    let (status, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    let other_folder = if config.store.is_postgres() {
        // Another instance, from a folder of its own, signs and vouches
        // alike: both keys came from the database.
        let other = ts.second_instance().await;
        assert_eq!(
            other.server.server_key.public_key(),
            ts.server.server_key.public_key()
        );
        assert!(other.server.key_update.is_some());
        stop(other).await
    } else {
        tempfile::tempdir().unwrap()
    };

    // Once the old key has retired (its date moved to the past here), no
    // voucher comes: a device that slept through it cannot check requests.
    ts.running.take().unwrap().shutdown().await;
    let retiring = data.join("server-key-retiring.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&retiring).unwrap()).unwrap();
    state["retire_at"] = serde_json::json!(now() - 1);
    std::fs::write(&retiring, serde_json::to_vec(&state).unwrap()).unwrap();
    if config.store.is_postgres() {
        // The database's copy is the one instances read.
        let (root, config) = (data.clone(), config.clone());
        std::thread::spawn(move || {
            let store = countersign_server::store::Store::open_url(&config.store.url).unwrap();
            countersign_server::domain::shared_keys::SharedKeys::new(&config.store, &root)
                .unwrap()
                .publish(&store, "server-key-retiring.json", now())
                .unwrap();
        })
        .join()
        .unwrap();
    }
    let dir = std::mem::replace(&mut ts.dir, tempfile::tempdir().unwrap());
    drop(ts);
    let ts = TestServer::start_on(dir).await;
    assert!(!retiring.exists(), "the retired key is gone");
    if config.store.is_postgres() {
        assert_eq!(retiring_rows(), [["0"]], "the database's copy is gone too");
        // The other instance's folder still held the old key: a command
        // run on it (which holds no lock, and so leaves the database's
        // rows alone) drops it rather than putting it back.
        let stale = other_folder.path().join("server-key-retiring.json");
        assert!(stale.exists());
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_countersign-server"))
            .arg("--data")
            .arg(other_folder.path())
            .args(["audit", "verify"])
            .env_remove("COUNTERSIGN_CONFIG")
            .env("COUNTERSIGN_STORE_URL", &config.store.url)
            .env("COUNTERSIGN_KEK", countersign_testkit::postgres::TEST_KEK)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
        assert!(!stale.exists(), "the stale folder's old key is gone");
        assert_eq!(retiring_rows(), [["0"]], "the old key was not put back");
    }
    ts.push_ok("cs0504").await;
    let got = dev.poll_unchecked(&ts, 5).await;
    assert!(got[0].key_update.is_none());
    assert!(got[0].verify_trusting(&dev.server_key).is_err());
    assert!(
        got[0].verify(&new_key).is_ok(),
        "a device that followed still checks it"
    );
    let rows = ts.server.store.audit_entries(&Default::default()).unwrap();
    assert!(rows.iter().any(|r| r.action == "keys.rotate_signing"));
}

/// Whether a TLS client trusting only `pin` reaches the server at `url`.
async fn reaches(url: &str, pin: [u8; 32]) -> bool {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(countersign_core::pin::PinnedVerifier::client_config(pin).unwrap())
        .build()
        .unwrap();
    client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Moves the staged TLS key's switch time to `at` (the plan's other
/// fields kept).
fn switch_tls_at(data: &Path, at: u64) {
    let plan = data.join("tls-next.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    json["switch_at"] = at.into();
    std::fs::write(&plan, json.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_tls_key_is_announced_to_devices_before_the_server_presents_it() {
    let ts = TestServer::start().await;
    let data = ts.dir.path().to_path_buf();
    if ts.config.store.is_postgres() {
        return; // SQLite only, as for the other keys.
    }
    ts.add_user("cs0505");
    let dev = ts.enroll("cs0505").await;
    let old_pin = ts.server.tls_pin.unwrap();
    let dir = stop(ts).await;

    // The same key: a new certificate, the pin holds.
    let cert = std::fs::read(data.join("tls-cert.pem")).unwrap();
    succeeds(
        &data,
        &["keys", "rotate", "tls"],
        "every device's pin holds",
    );
    assert_ne!(std::fs::read(data.join("tls-cert.pem")).unwrap(), cert);

    succeeds(
        &data,
        &["keys", "rotate", "tls", "--new-key", "--grace-days", "30"],
        "must be enrolled again",
    );
    refuses(
        &data,
        &["keys", "rotate", "tls", "--new-key"],
        "already staged",
    );

    // Until the switch the server presents the old key, enrols with its
    // pin, and tells devices the next pin, signed by its signing key.
    let ts = TestServer::start_on(dir).await;
    assert_eq!(ts.server.tls_pin, Some(old_pin));
    assert_eq!(ts.enrollment("cs0505").pin, Some(old_pin));
    ts.push_ok("cs0505").await;
    let got = dev.poll(&ts, 5).await;
    let (from_pin, next_pin) = got[0]
        .pin_update
        .as_ref()
        .expect("the next key is announced")
        .verify(&dev.server_key)
        .expect("signed by the server's key");
    assert_eq!(from_pin, old_pin, "it names the pin it replaces");
    assert_ne!(next_pin, old_pin);
    // A device activated now hears of it in the activation answer.
    let late = ts.enroll("cs0505").await;
    let announced = late.activation.pin_update.as_ref().expect("announced");
    assert_eq!(
        announced.verify(&dev.server_key).unwrap(),
        (old_pin, next_pin)
    );
    assert!(reaches(&ts.url, old_pin).await);
    assert!(!reaches(&ts.url, next_pin).await);

    // A running server switches when the time comes, without a restart.
    let dir = stop(ts).await;
    let switch_at = now() + 5;
    switch_tls_at(&data, switch_at);
    let ts = TestServer::start_on(dir).await;
    assert!(reaches(&ts.url, old_pin).await, "before the switch");
    tokio::time::sleep(std::time::Duration::from_secs(switch_at + 1 - now())).await;
    assert!(reaches(&ts.url, next_pin).await, "after the switch");
    assert!(
        !reaches(&ts.url, old_pin).await,
        "the old key is no longer presented"
    );
    assert_eq!(
        ts.enrollment("cs0505").pin,
        Some(next_pin),
        "new enrolments pin the new key"
    );

    // The next start moves the new key into place and announces nothing.
    let dir = stop(ts).await;
    let ts = TestServer::start_on(dir).await;
    assert_eq!(ts.server.tls_pin, Some(next_pin));
    for name in ["tls-next.json", "tls-next-cert.pem", "tls-next-key.pem"] {
        assert!(!data.join(name).exists(), "{name} is gone");
    }
    ts.push_ok("cs0505").await;
    assert!(dev.poll(&ts, 5).await[0].pin_update.is_none());
    let rows = ts.server.store.audit_entries(&Default::default()).unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r.action == "keys.rotate_tls")
            .count(),
        2
    );
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
    refuses(
        &data,
        &["keys", "rotate", "master"],
        "is in use by a running countersign-server",
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

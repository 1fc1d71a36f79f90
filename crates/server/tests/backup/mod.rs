//! `countersign-server backup` while the server approves pushes, and
//! `restore` into an empty folder: the restored server approves pushes
//! from devices enrolled before the backup, with the same keys and device
//! tokens, and its audit chain verifies.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use countersign_core::protocol::Decision;
use countersign_server::now;
use ring::rand::SecureRandom;

use crate::common::{on_folder as server, TestServer};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A new key file (32 random bytes, base64) in `dir`.
fn key_file(dir: &Path, name: &str) -> String {
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut key).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data_encoding::BASE64.encode(&key)).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_load_restores_to_a_server_that_approves_earlier_devices() {
    let ts = TestServer::start_with(|c| c.push.max_per_window = 1_000_000).await;
    let keys = tempfile::tempdir().unwrap();
    let key = key_file(keys.path(), "backup.key");
    let file = keys.path().join("countersign.backup");
    let file = file.to_str().unwrap();
    let data = ts.dir.path().to_path_buf();
    if ts.config.store.is_postgres() {
        // The PostgreSQL run: the database is backed up with pg_dump.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign-server"));
        cmd.arg("--data")
            .arg(&data)
            .args(["backup", file, "--key-file", &key]);
        countersign_testkit::postgres::store_env(&mut cmd, &data);
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("pg_dump"),
            "{}",
            text(&out.stderr)
        );
        return;
    }
    ts.add_user("cs0301");
    let dev = ts.enroll("cs0301").await;
    ts.add_user("cs0302");
    let busy = ts.enroll("cs0302").await;

    // Pushes approved without a pause, before, during and after the backup.
    let stop = AtomicBool::new(false);
    let approved = AtomicUsize::new(0);
    let load = async {
        while !stop.load(Ordering::Relaxed) {
            let (id, number) = ts.push_ok("cs0302").await;
            let (status, _) = busy
                .answer(&ts, &busy.response(&id, Decision::Approve, Some(number)))
                .await;
            assert_eq!(status, 200);
            approved.fetch_add(1, Ordering::Relaxed);
        }
    };
    let take_backup = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at_start = approved.load(Ordering::Relaxed);
        let (data, file, key) = (data.clone(), file.to_string(), key.clone());
        let out = tokio::task::spawn_blocking(move || {
            server(&data, &["backup", &file, "--key-file", &key])
        })
        .await
        .unwrap();
        let at_end = approved.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        (out, at_start, at_end)
    };
    let ((out, at_start, at_end), ()) = tokio::join!(take_backup, load);
    assert!(out.status.success(), "backup: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("backup written: "),
        "{}",
        text(&out.stdout)
    );
    assert!(at_start > 0, "pushes ran before the backup");
    assert!(
        at_end > at_start,
        "and while it was taken ({at_start} before, {at_end} after)"
    );
    let again = server(&data, &["backup", file, "--key-file", &key]);
    assert!(
        !again.status.success(),
        "an existing backup is never overwritten"
    );
    assert!(text(&again.stderr).contains("exists already"));

    // The machine is lost; a new one restores the backup.
    drop(ts);
    let restored = tempfile::tempdir().unwrap();
    let other_key = key_file(keys.path(), "other.key");
    let wrong = server(
        restored.path(),
        &["restore", file, "--key-file", &other_key],
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("a wrong passphrase or key file"),
        "{}",
        text(&wrong.stderr)
    );
    assert_eq!(
        std::fs::read_dir(restored.path()).unwrap().count(),
        0,
        "nothing written"
    );
    let out = server(restored.path(), &["restore", file, "--key-file", &key]);
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("audit chain verified"),
        "{}",
        text(&out.stdout)
    );
    let twice = server(restored.path(), &["restore", file, "--key-file", &key]);
    assert!(!twice.status.success());
    assert!(
        text(&twice.stderr).contains("is not empty"),
        "{}",
        text(&twice.stderr)
    );

    // The restored server: the same signing key, device token and TOTP
    // secret serve the device enrolled before the backup.
    let ts = TestServer::start_on(restored).await;
    let (id, number) = ts.push_ok("cs0301").await;
    let got = dev.poll(&ts, 5).await;
    assert_eq!(got.len(), 1, "the device's token still opens its channel");
    got[0]
        .verify(&dev.server_key)
        .expect("signed by the same server key");
    let (status, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    assert!(ts.check_totp("cs0301", &dev.otp().code(now())).await);
    let data = ts.dir.path().to_path_buf();
    drop(ts);
    let verify = server(&data, &["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
}

/// A data folder in `dir` with one officer, `username`.
fn with_officer(dir: &std::path::Path, username: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    let out = server(
        &data,
        &["user", "add", username, "--first", "Ada", "--last", "Ng"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    data
}

/// A backup of `data` sealed under a new key file, both in `dir`: the key
/// file's path and the backup's.
fn backed_up(dir: &std::path::Path, data: &std::path::Path) -> (String, String) {
    let key = key_file(dir, "k");
    let file = dir.join("b.backup").to_str().unwrap().to_string();
    let out = server(data, &["backup", &file, "--key-file", &key]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (key, file)
}

#[test]
fn a_passphrase_backup_needs_a_long_passphrase_and_the_same_one_to_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let data = with_officer(tmp.path(), "cs0311");
    let file = tmp.path().join("b.backup");
    let file = file.to_str().unwrap();
    let pass = |name: &str, p: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, format!("{p}\n")).unwrap();
        path.to_str().unwrap().to_string()
    };
    let short = pass("short", "too short");
    let out = server(&data, &["backup", file, "--passphrase-file", &short]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("at least 12 characters"));
    let good = pass("good", "correct horse battery staple");
    let out = server(&data, &["backup", file, "--passphrase-file", &good]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let target = tmp.path().join("restored");
    let wrong = pass("wrong", "incorrect horse battery staple");
    let out = server(&target, &["restore", file, "--passphrase-file", &wrong]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("a wrong passphrase or key file"));
    assert!(!target.exists(), "a refused restore makes nothing");
    let out = server(&target, &["restore", file, "--passphrase-file", &good]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = server(&target, &["user", "list"]);
    assert!(
        text(&list.stdout).contains("cs0311"),
        "{}",
        text(&list.stdout)
    );
}

#[test]
fn a_restore_whose_audit_chain_breaks_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = with_officer(tmp.path(), "cs0321");
    // Someone altered an audit row before the backup was taken.
    let db = rusqlite::Connection::open(data.join("countersign.db")).unwrap();
    let changed = db
        .execute("UPDATE audit SET outcome = 'altered' WHERE seq = 1", [])
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let (key, file) = backed_up(tmp.path(), &data);
    let file = file.as_str();
    let target = tmp.path().join("restored");
    let out = server(&target, &["restore", file, "--key-file", &key]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("audit chain breaks at row 1") && err.contains("nothing was restored"),
        "{err}"
    );
    assert!(
        !target.exists(),
        "the folder the restore made is gone again"
    );
}

/// A restore killed part-way leaves its staging folder (the database and
/// keys in clear) in the data folder: the next restore removes it once
/// it has stood ten minutes, and refuses a folder with a younger one (a
/// restore may be running).
#[test]
fn a_restore_clears_what_a_killed_restore_left() {
    let tmp = tempfile::tempdir().unwrap();
    let data = with_officer(tmp.path(), "cs0331");
    let (key, file) = backed_up(tmp.path(), &data);
    let file = file.as_str();

    let target = tmp.path().join("restored");
    let stage = target.join(".restore-killed");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("countersign.db"), b"SQLite format 3\0").unwrap();
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(601);
    let age = |path: &std::path::Path| {
        std::fs::File::open(path)
            .unwrap()
            .set_modified(then)
            .unwrap()
    };
    // Young, or an old folder with a file just written in it, or an old
    // one beside a young one: a restore may be running; nothing goes.
    let young = target.join(".restore-young");
    std::fs::create_dir(&young).unwrap();
    for step in ["young", "a file just written", "beside a young one"] {
        if step == "a file just written" {
            std::fs::remove_dir(&young).unwrap();
            age(&stage);
        }
        if step == "beside a young one" {
            age(&stage.join("countersign.db"));
            std::fs::create_dir(&young).unwrap();
        }
        let out = server(&target, &["restore", file, "--key-file", &key]);
        assert!(!out.status.success(), "{step}");
        let err = text(&out.stderr);
        assert!(err.contains("is not empty (.restore-"), "{step}: {err}");
        assert!(stage.exists(), "{step}");
    }
    std::fs::remove_dir(&young).unwrap();
    age(&stage);
    let out = server(&target, &["restore", file, "--key-file", &key]);
    assert!(out.status.success(), "restore: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("removed what a restore that did not finish left"));
    assert!(!stage.exists());
    assert!(target.join("countersign.db").exists());
    // A live data folder named by mistake: refused, an old staging folder
    // and a running backup's copy in it left alone.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for name in [".restore-old", ".backup-running"] {
        let dir = data.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let out = server(&data, &["restore", file, "--key-file", &key]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not empty"));
    assert!(data.join(".restore-old").exists() && data.join(".backup-running").exists());
}

//! Moving a deployment from the SQLite default to another store with
//! `countersign-server store copy`: nothing is lost, the audit chain still
//! verifies, and a device enrolled before the move answers a push that was
//! pending during it. (On the PostgreSQL run the target is a database on
//! the test cluster; otherwise another SQLite file.)

use std::path::Path;
use std::process::{Command, Output};

use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::Decision;
use countersign_server::domain::methods::Authority;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::Server;

use super::push::{answer, device, sign_in};
use super::{Domain, T0};

fn copy(from: &Path, to: &str, replace: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_countersign-server"));
    c.args(["store", "copy", "--from"])
        .arg(format!("sqlite:{}", from.display()))
        .args(["--to", to]);
    if replace {
        c.arg("--replace");
    }
    c.env_remove("COUNTERSIGN_STORE_URL").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_deployment_moves_to_another_store_and_its_devices_keep_working() {
    // The deployment: SQLite in its data folder, an officer with security
    // questions and an app, one push answered and one still pending.
    let source = Domain::with_store(Config::default(), "");
    let password = source.officer("cs2201");
    source.questions("cs2201", Authority::Proven);
    let phone = device(&source, "cs2201", "Pixel");
    let answered = sign_in(&source, "cs2201");
    answer(
        &source,
        &answered,
        &phone,
        Decision::Approve,
        Some(answered.number),
    )
    .unwrap();
    let pending = sign_in(&source, "cs2201");
    let folder = source._dir.path().to_path_buf();
    let file = folder.join("countersign.db");

    // The target: a PostgreSQL database, or a SQLite file in a copy of the
    // data folder (the keys live in the folder).
    let moved = tempfile::tempdir().unwrap();
    let target = match countersign_testkit::postgres::database_named("cs_store_copy") {
        Some(url) => url,
        None => format!("sqlite:{}", moved.path().join("countersign.db").display()),
    };
    let out = copy(&file, &target, false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    for line in [
        "users",
        "devices",
        "challenges",
        "security_answers",
        "audit",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(line) && !l.ends_with(" 0 rows")),
            "{line}: {report}"
        );
    }
    assert!(
        report.contains("audit chain verified on the target"),
        "{report}"
    );

    // A second copy into the now full target is refused, unless replacing.
    let again = copy(&file, &target, false);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("not empty"),
        "{}",
        text(&again.stderr)
    );
    let replaced = copy(&file, &target, true);
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    drop(source.s);

    // The server on the copy: the same officer, methods and keys.
    let mut config = Config::default();
    let data = if target.starts_with("sqlite:") {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.starts_with("countersign.db") {
                std::fs::copy(&path, moved.path().join(&name)).unwrap();
            }
        }
        DataDir::open(moved.path()).unwrap()
    } else {
        config.store.url = target.clone();
        config.store.kek_file = Some(countersign_testkit::postgres::kek_file());
        DataDir::open(&folder).unwrap()
    };
    let s = Server::open(config, &data).unwrap();
    assert!(s.store.verify_audit().unwrap().is_ok());
    assert!(s.check_password("cs2201", password, "", T0).is_ok());
    let after = Domain::around(s);
    let status = answer(
        &after,
        &pending,
        &phone,
        Decision::Approve,
        Some(pending.number),
    );
    assert_eq!(status.unwrap(), ChallengeStatus::Approved);
    // Ids go on from the copied ones.
    after.officer("cs2202");
    assert_eq!(
        after.s.user("cs2202").unwrap().id,
        after.s.user("cs2201").unwrap().id + 1
    );
}

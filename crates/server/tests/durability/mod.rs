//! Durability: `countersign-server serve` killed with SIGKILL 50 times
//! while it takes mixed writes (pushes, signed answers, wrong-password
//! sign-ins) and `user add` runs beside it. Afterwards nothing it had
//! acknowledged is lost, SQLite's integrity check and the audit chain
//! pass, and every challenge, answer, user and device has its audit row.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_core::api::ActivateRequest;
use countersign_core::protocol::{Decision, Response};
use countersign_core::SigningKey;
use countersign_server::domain::methods::Authority;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::{now, Server};
use ring::rand::SystemRandom;

const ROUNDS: u64 = 50;
const OFFICER: &str = "cs9000";

/// What the server (or `user add`) said it had done.
#[derive(Default)]
struct Acked {
    /// Challenge id → the verdict acknowledged for it, if answered.
    challenges: HashMap<String, Option<String>>,
    users: Vec<String>,
    wrong_passwords: usize,
}

fn server_cmd(dir: &Path) -> Command {
    let mut c = crate::common::server_command(dir);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// The officer with one device, written through the library; and the
/// server's TLS pin.
fn seed(dir: &Path) -> ((String, SigningKey), [u8; 32]) {
    let mut config = Config::load(Some(&dir.join("server.toml")), None).unwrap();
    config.store.url =
        countersign_testkit::postgres::store_for(&dir.join("data")).unwrap_or_default();
    config.store.kek_file = Some(countersign_testkit::postgres::kek_file());
    let data = DataDir::open(&dir.join("data")).unwrap();
    let mut server = Server::open(config.clone(), &data).unwrap();
    server.tls_pin = countersign_server::infra::tls::setup(&config, &data)
        .unwrap()
        .pin;
    server
        .add_user(OFFICER, "Clark", "Kent", Some("4321"), "test", now())
        .unwrap();
    let (e, _) = server
        .enrollment(OFFICER, "test", Authority::Proven, now())
        .unwrap();
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let req = ActivateRequest {
        code: e.code,
        device_key: key.public_key(),
        receipt_key: None,
        device_name: "phone".into(),
        platform: "cli".into(),
        app_version: "1".into(),
    };
    let a = server.activate(&req, "127.0.0.1", now()).unwrap();
    ((a.device_id, key), server.tls_pin.unwrap())
}

/// Starts the server and waits until it answers.
async fn start(dir: &Path, http: &reqwest::Client, base: &str) -> Child {
    let _ = std::fs::remove_file(dir.join("data/server.json"));
    let child = server_cmd(dir).arg("serve").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = || async {
        let r = http.get(format!("{base}/healthz")).send().await;
        r.is_ok_and(|r| r.status() == 200)
    };
    while !healthy().await {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// Pushes and answers until the server is gone, recording what it acked.
async fn pushes(
    http: reqwest::Client,
    base: String,
    admin: String,
    device: Arc<(String, SigningKey)>,
    acked: Arc<Mutex<Acked>>,
) {
    loop {
        let Ok(r) = http
            .post(format!("{base}/api/v1/admin/push"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"username": OFFICER, "application": "durability"}))
            .send()
            .await
        else {
            return;
        };
        let Ok(created) = r.json::<serde_json::Value>().await else {
            return;
        };
        let (Some(id), Some(number)) =
            (created["challenge_id"].as_str(), created["number"].as_u64())
        else {
            return;
        };
        acked
            .lock()
            .unwrap()
            .challenges
            .insert(id.to_string(), None);
        let (device_id, key) = &*device;
        let response = Response::sign(
            id,
            device_id,
            Decision::Approve,
            Some(number as u8),
            "",
            now(),
            key,
        )
        .unwrap();
        let Ok(r) = http
            .post(format!("{base}/api/v1/challenges/{id}/response"))
            .json(&response)
            .send()
            .await
        else {
            return;
        };
        let Ok(verdict) = r.json::<serde_json::Value>().await else {
            return;
        };
        if let Some(status) = verdict["status"].as_str() {
            acked
                .lock()
                .unwrap()
                .challenges
                .insert(id.to_string(), Some(status.to_string()));
        }
    }
}

/// Wrong-password sign-ins through the pages until the server is gone.
async fn wrong_passwords(http: reqwest::Client, base: String, acked: Arc<Mutex<Acked>>) {
    let token = |html: &str| -> Option<String> {
        let field = "name=\"csrf\" value=\"";
        let start = html.find(field)? + field.len();
        let end = html[start..].find('"')? + start;
        Some(html[start..end].to_string())
    };
    loop {
        let attempt = async {
            let page = http
                .get(format!("{base}/signin"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let r = http
                .post(format!("{base}/signin"))
                .form(&[("csrf", token(&page)?.as_str()), ("email", OFFICER)])
                .send()
                .await
                .ok()?;
            let page = r.text().await.ok()?;
            let r = http
                .post(format!("{base}/signin/password"))
                .form(&[
                    ("csrf", token(&page)?.as_str()),
                    ("password", "Wrong-Password-1"),
                ])
                .send()
                .await
                .ok()?;
            Some(r.status() == 401)
        };
        match attempt.await {
            Some(true) => acked.lock().unwrap().wrong_passwords += 1,
            Some(false) => {}
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_kills_during_mixed_writes_lose_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = countersign_testkit::free_port();
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\n[push]\nmax_per_window = 1000000\n\
             [lockout]\nper_address_failures = 1000000\n\
             [metrics]\nlisten = \"\"\n"
        ),
    )
    .unwrap();
    let (device, pin) = seed(dir);
    let device = Arc::new(device);
    let admin = DataDir::open(&dir.join("data"))
        .unwrap()
        .admin_token()
        .unwrap()
        .to_string();
    let base = format!("https://127.0.0.1:{port}");
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..ROUNDS {
        let tls = countersign_core::pin::PinnedVerifier::client_config(pin).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .cookie_store(true)
            .build()
            .unwrap();
        let mut server = start(dir, &http, &base).await;
        let tasks = [
            tokio::spawn(pushes(
                http.clone(),
                base.clone(),
                admin.clone(),
                device.clone(),
                acked.clone(),
            )),
            tokio::spawn(pushes(
                http.clone(),
                base.clone(),
                admin.clone(),
                device.clone(),
                acked.clone(),
            )),
            tokio::spawn(wrong_passwords(http.clone(), base.clone(), acked.clone())),
        ];
        // A user added from the command line at the same time.
        let username = format!("du{round:03}");
        let add = server_cmd(dir)
            .args([
                "user", "add", &username, "--first", "Lois", "--last", "Lane",
            ])
            .spawn()
            .unwrap();
        // Killed after a different while each round.
        tokio::time::sleep(Duration::from_millis(150 + (round * 37) % 300)).await;
        server.kill().unwrap();
        server.wait().unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        if add.wait_with_output().unwrap().status.success() {
            acked.lock().unwrap().users.push(username);
        }
    }

    // Nothing acknowledged is lost.
    let data = dir.join("data");
    let one = |sql: &str, params: &[&str]| -> Option<String> {
        countersign_testkit::postgres::sql(&data, sql, params)
            .into_iter()
            .next()
            .map(|mut r| r.swap_remove(0))
    };
    let count = |sql: &str, params: &[&str]| -> i64 { one(sql, params).unwrap().parse().unwrap() };
    if !countersign_testkit::postgres::on_postgres() {
        assert_eq!(one("PRAGMA integrity_check", &[]).unwrap(), "ok");
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.challenges.len() > ROUNDS as usize,
        "too little load: {}",
        acked.challenges.len()
    );
    assert_eq!(acked.users.len(), ROUNDS as usize, "every user add ran");
    assert!(acked.wrong_passwords > 0, "sign-ins ran");
    for (id, verdict) in &acked.challenges {
        let status = one("SELECT status FROM challenges WHERE id = ?1", &[id])
            .unwrap_or_else(|| panic!("acknowledged challenge {id} lost"));
        if let Some(v) = verdict {
            assert_eq!(&status, v, "challenge {id}");
        }
    }
    for u in &acked.users {
        let n = count("SELECT COUNT(*) FROM users WHERE username = ?1", &[u]);
        assert_eq!(n, 1, "user {u} lost");
    }
    let refused = count(
        "SELECT COUNT(*) FROM audit WHERE action = 'signin.password' AND target = ?1 AND outcome <> 'ok'",
        &[OFFICER],
    ) as usize;
    assert!(
        refused >= acked.wrong_passwords,
        "{refused} audited, {} acknowledged",
        acked.wrong_passwords
    );

    // Every challenge has its audit row.
    let orphans = count(
        "SELECT COUNT(*) FROM challenges c WHERE NOT EXISTS (SELECT 1 FROM audit a \
         WHERE a.action = 'challenge.create' AND a.outcome = 'ok' AND a.detail LIKE 'challenge ' || c.id || ' %')",
        &[],
    );
    assert_eq!(orphans, 0, "challenges without their audit row");
    // Every answer, user and device too: each change commits with its row.
    for (what, sql) in [
        (
            "answers",
            "SELECT COUNT(*) FROM challenges c WHERE c.answered_at IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM audit a WHERE a.action = 'challenge.answer' AND a.outcome = c.status \
             AND a.detail LIKE 'challenge ' || c.id || ' %')",
        ),
        (
            "users",
            "SELECT COUNT(*) FROM users u WHERE NOT EXISTS \
             (SELECT 1 FROM audit a WHERE a.action = 'user.add' AND a.target = u.username)",
        ),
        (
            "devices",
            "SELECT COUNT(*) FROM devices d WHERE NOT EXISTS (SELECT 1 FROM audit a \
             WHERE a.action = 'device.activate' AND a.outcome = 'ok' AND a.detail LIKE 'device ' || d.id || ' %')",
        ),
    ] {
        let orphans = count(sql, &[]);
        assert_eq!(orphans, 0, "{what} without their audit row");
    }

    // And the audit chain is whole.
    let out = server_cmd(dir)
        .args(["audit", "verify"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "audit verify failed");
    println!(
        "{ROUNDS} kills: {} challenges ({} answered), {} users, {} wrong passwords acknowledged; none lost",
        acked.challenges.len(),
        acked.challenges.values().filter(|v| v.is_some()).count(),
        acked.users.len(),
        acked.wrong_passwords
    );
}

/// The users the database file itself holds by `name`, the log left
/// aside; an error while the server may be copying pages in.
fn named_users_in_file(path: &Path, name: &str) -> rusqlite::Result<i64> {
    let uri = url::Url::from_file_path(path).unwrap();
    let conn = rusqlite::Connection::open_with_flags(
        format!("{uri}?immutable=1"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.query_row(
        "SELECT COUNT(*) FROM users WHERE username = ?1",
        [name],
        |r| r.get(0),
    )
}

/// A serving process writes its log back into the database file by itself,
/// so a commit is on disk soon after it, with no later write to carry it
/// (and no async worker waiting for that sync).
#[tokio::test(flavor = "multi_thread")]
async fn while_serving_a_commit_reaches_the_database_file_with_no_write_after_it() {
    let ts = crate::common::TestServer::start().await;
    if ts.config.store.is_postgres() {
        // PostgreSQL's commits are durable when they return: no log to copy.
        return;
    }
    let db = ts.dir.path().join("countersign.db");
    ts.add_user("cs0401");
    let deadline = Instant::now() + Duration::from_secs(5);
    while named_users_in_file(&db, "cs0401").map_or(true, |n| n == 0) {
        assert!(
            Instant::now() < deadline,
            "the commit stayed in the log for 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

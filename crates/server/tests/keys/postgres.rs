//! Master-key rotations on PostgreSQL: each serving instance holds a
//! shared lock that a rotation takes alone.

use std::sync::Arc;
use std::time::Duration;

use countersign_server::domain::shared_keys::SharedKeys;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::now;
use countersign_server::store::{Presence, Store};

use super::stop;
use crate::common::TestServer;

/// The store a rotation command would open, off the test's runtime.
fn store(config: &Config) -> Arc<Store> {
    let url = config.store.url.clone();
    Arc::new(
        std::thread::spawn(move || Store::open_url(&url).unwrap())
            .join()
            .unwrap(),
    )
}

/// The database to a rotation alone, if no instance serves.
fn alone(store: &Arc<Store>) -> Option<Presence> {
    let store = store.clone();
    std::thread::spawn(move || store.exclude_instances().unwrap())
        .join()
        .unwrap()
}

/// Which key a test rotates.
#[derive(Clone, Copy)]
enum Key {
    Master,
    Signing,
}

/// Rotates a key from another machine's folder, as the command does once
/// it holds the database alone; the new key's file.
fn rotate_from_elsewhere(store: &Arc<Store>, config: &Config, key: Key) -> Vec<u8> {
    use countersign_server::domain::keys::{rotate_master, rotate_signing};
    let (store, config) = (store.clone(), config.clone());
    std::thread::spawn(move || {
        let elsewhere = tempfile::tempdir().unwrap();
        let root = elsewhere.path();
        let dir = DataDir::open(root).unwrap();
        let keys = SharedKeys::new(&config.store, root).unwrap();
        keys.pull(&store).unwrap();
        let file = match key {
            Key::Master => {
                rotate_master(&dir, &store, Some(&keys), "test", now()).unwrap();
                "master.key"
            }
            Key::Signing => {
                rotate_signing(&dir, &store, Some(&keys), "test", 30, now()).unwrap();
                "server.key"
            }
        };
        std::fs::read(root.join(file)).unwrap()
    })
    .join()
    .unwrap()
}

fn skipped() -> bool {
    if countersign_testkit::postgres::on_postgres() {
        return false;
    }
    println!("skipped: needs PostgreSQL (./test.sh runs this on its cluster)");
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_starting_during_a_rotation_waits_and_takes_the_new_key() {
    if skipped() {
        return;
    }
    let ts = TestServer::start().await;
    ts.add_user("cs0507");
    let dev = ts.enroll("cs0507").await;
    let store = store(&ts.config);
    let config = ts.config.clone();
    // A running instance holds the database: no rotation may begin.
    assert!(
        alone(&store).is_none(),
        "a rotation began beside an instance"
    );
    let dir = stop(ts).await;
    let rotation = alone(&store).expect("no instance runs now");

    // An instance starting meanwhile waits until the rotation ends...
    let starting = tokio::spawn(TestServer::start_on(dir));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !starting.is_finished(),
        "an instance started during a rotation"
    );
    // ...which, run from another machine's folder, replaces the key.
    let new_key = rotate_from_elsewhere(&store, &config, Key::Master);
    drop(rotation);
    let ts = tokio::time::timeout(Duration::from_secs(10), starting)
        .await
        .expect("the instance started once the rotation ended")
        .unwrap();
    assert_eq!(
        ts.server.master_key.expose(),
        new_key.as_slice(),
        "the instance holds the rotated key"
    );
    assert!(ts.check_totp("cs0507", &dev.otp().code(now())).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_whose_lock_connection_broke_takes_the_lock_again_or_stops() {
    if skipped() {
        return;
    }
    stops_after_a_rotation_in_the_gap(Key::Master, "the master key was rotated").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_whose_signing_key_was_rotated_in_the_gap_stops() {
    if skipped() {
        return;
    }
    stops_after_a_rotation_in_the_gap(Key::Signing, "the signing key was rotated").await;
}

/// Cuts a running instance's lock connection twice: after the first cut it
/// holds the lock again; into the second gap a rotation of `key` slips,
/// and the instance stops, saying `why`.
async fn stops_after_a_rotation_in_the_gap(key: Key, why: &str) {
    let mut ts = TestServer::start().await;
    let store = store(&ts.config);
    let config = ts.config.clone();
    // The lock's connection is cut (the lock is 0x436f756e_74727369 in
    // pg_locks' two halves) (a database restart, a network break):
    // the instance connects again and holds the lock again.
    let cut = || {
        countersign_testkit::postgres::sql(
            ts.dir.path(),
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'countersign-server' \
             AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' \
             AND classid = 1131378030 AND objid = 1953657705 AND objsubid = 1)",
            &[],
        )
    };
    assert_eq!(cut(), [["1"]], "one connection held the lock");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(alone(&store).is_none(), "the lock was not taken again");

    // Cut again, and a rotation slips in before it reconnects: the instance
    // holds a key the database no longer has, and stops.
    let rotation = loop {
        cut();
        if let Some(r) = alone(&store) {
            break r;
        }
    };
    rotate_from_elsewhere(&store, &config, key);
    drop(rotation);
    let stopped = tokio::time::timeout(Duration::from_secs(15), ts.running.take().unwrap().wait())
        .await
        .expect("the instance stopped");
    let said = stopped.unwrap_err().to_string();
    assert!(said.contains(why), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_names_this_databases_lock_holders_only_and_prints_no_control_character() {
    if skipped() {
        return;
    }
    let ts = TestServer::start().await;
    let data = ts.dir.path().to_path_buf();
    let url = ts.config.store.url.clone();
    let dir = stop(ts).await;
    // Any client may name itself: this one holds the lock as an instance
    // would, under a name meant to clear the operator's screen.
    // (Instances of other tests hold the same lock in their databases.)
    let plain = format!(
        "{}/{}?application_name=evil%1B%5B2J",
        countersign_testkit::postgres::cluster().unwrap(),
        countersign_testkit::postgres::database_of(&url)
    );
    let holder = std::thread::spawn(move || {
        let mut c = ::postgres::Client::connect(&plain, ::postgres::NoTls).unwrap();
        c.execute(
            "SELECT pg_advisory_lock_shared($1)",
            &[&0x436f_756e_7472_7369_i64],
        )
        .unwrap();
        c
    })
    .join()
    .unwrap();
    let o = super::on_store(&data, &["keys", "rotate", "master"]);
    std::thread::spawn(move || drop(holder)).join().unwrap();
    let said = super::out(&o);
    assert!(!o.status.success(), "{said}");
    let connected = said.split("Connected: ").nth(1).unwrap_or_default();
    assert!(
        connected.starts_with("127.0.0.1 (evil?[2J, since "),
        "{said}"
    );
    assert_eq!(connected.matches(" since ").count(), 1, "{said}");
    assert!(!said.contains('\x1b'), "{said:?}");
    drop(dir);
}

//! Two instances of the server on one PostgreSQL database: the page that
//! asks and the device that answers may each be served by either.

mod tls;

use countersign_core::protocol::Decision;

use crate::common::{sse_challenges, TestServer};

/// Two instances, or `None` (with the reason printed) on SQLite, where
/// one file has one server.
async fn two_instances() -> Option<(TestServer, TestServer)> {
    if !countersign_testkit::postgres::on_postgres() {
        println!("skipped: two instances need PostgreSQL (./test.sh runs this on its cluster)");
        return None;
    }
    let a = TestServer::start().await;
    let b = a.second_instance().await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_created_on_one_instance_reaches_a_device_streaming_from_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2101");
    let dev = a.enroll("cs2101").await;

    // The device holds its stream on B...
    let stream = dev.open_stream(&b).await;
    // ...the sign-in (here the admin API) asks on A, which follows it.
    let (id, number) = a.push_ok("cs2101").await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), sse_challenges(stream, 1))
        .await
        .expect("the challenge reached the stream on the other instance within 5 s");
    assert_eq!(got[0].challenge.id, id);
    got[0].verify(&dev.server_key).unwrap();

    // A long-poll on A for the verdict; the answer goes to B.
    let t = std::time::Instant::now();
    let answer = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        dev.answer(&b, &dev.response(&id, Decision::Approve, Some(number)))
            .await
    };
    let (verdict, (status, body)) = tokio::join!(a.status_within(&id, 10), answer);
    let waited = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(verdict, "approved");
    assert!(
        waited < std::time::Duration::from_secs(5),
        "A heard of B's answer only after {waited:?}"
    );
    // Rows from both instances form one chain.
    assert!(a.server.store.verify_audit().unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_on_one_instance_wakes_live_audit_views_on_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2102");
    a.enroll("cs2102").await;
    // What the setup announced has reached B by now.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut views = b.server.audit_changes();
    // A push announces the challenge alone: it stands for its audit row.
    a.push_ok("cs2102").await;
    let t = std::time::Instant::now();
    views.next(std::time::Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < std::time::Duration::from_secs(4),
        "B's live audit views did not wake for A's push"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_push_limit_counts_across_instances() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2102");
    a.enroll("cs2102").await;
    let limit = a.config.push.max_per_window;
    // Alternating instances, the officer gets the limit, not twice it.
    for i in 0..limit {
        let ts = if i % 2 == 0 { &a } else { &b };
        assert_eq!(ts.push("cs2102").await.status(), 200, "push {i}");
    }
    for ts in [&a, &b] {
        assert_eq!(
            crate::common::error_code(ts.push("cs2102").await).await,
            (429, "push_limited".into())
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_from_one_address_count_across_instances() {
    if !countersign_testkit::postgres::on_postgres() {
        println!("skipped: two instances need PostgreSQL (./test.sh runs this on its cluster)");
        return;
    }
    let a = TestServer::start_with(|c| c.lockout.per_address_failures = 4).await;
    let b = a.second_instance().await;
    let temp = a.add_user("cs2103");
    let (ip, now) = ("203.0.113.50", countersign_server::now());
    // Two wrong passwords on each: four from the address in all.
    for ts in [&a, &b, &a, &b] {
        let err = ts
            .server
            .check_password("nobody", "Wrong-password-1", ip, now)
            .unwrap_err();
        assert_eq!(err.code(), "invalid_credentials");
    }
    // Neither instance lets the address try again, right password or not.
    for ts in [&a, &b] {
        let err = ts
            .server
            .check_password("cs2103", &temp, ip, now)
            .unwrap_err();
        assert_eq!(err.code(), "too_many_attempts", "{err}");
    }
    // Another address goes on.
    assert!(b
        .server
        .check_password("cs2103", &temp, "198.51.100.9", now)
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_share_their_keys_through_the_database_sealed_never_in_clear() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    // B started from an empty data folder: its keys are A's.
    assert_ne!(a.dir.path(), b.dir.path());
    assert_eq!(
        a.server.tls_pin, b.server.tls_pin,
        "devices pin one TLS key"
    );
    assert_eq!(
        a.server.server_key.public_key(),
        b.server.server_key.public_key()
    );
    for name in countersign_server::domain::shared_keys::SHARED {
        let mine = std::fs::read(a.dir.path().join(name));
        let theirs = std::fs::read(b.dir.path().join(name));
        if let (Ok(mine), Ok(theirs)) = (&mine, &theirs) {
            assert_eq!(mine, theirs, "{name}");
        }
    }
    // The database holds them sealed: no stored blob contains a key.
    let rows = countersign_testkit::postgres::sql(
        a.dir.path(),
        "SELECT name, sealed FROM sealed_secrets",
        &[],
    );
    assert!(rows.len() >= 5, "{} sealed keys", rows.len());
    for row in &rows {
        let clear = std::fs::read(a.dir.path().join(&row[0])).unwrap();
        let sealed = data_encoding::HEXLOWER.decode(row[1].as_bytes()).unwrap();
        assert!(
            !sealed
                .windows(16)
                .any(|w| clear.windows(16).any(|c| c == w)),
            "{} is stored in clear",
            row[0]
        );
    }
    // An instance with another key-encryption key does not start.
    let wrong = tempfile::tempdir().unwrap();
    let kek = wrong.path().join("kek");
    std::fs::write(&kek, data_encoding::BASE64.encode(&[9u8; 32])).unwrap();
    let mut config = a.config.clone();
    config.store.kek_file = Some(kek);
    let data =
        countersign_server::infra::datadir::DataDir::open(&wrong.path().join("data")).unwrap();
    let err = countersign_server::Server::open(config, &data)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("does not open with this key-encryption key"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_enrolled_on_one_instance_is_verified_by_the_other() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2104");
    let dev = a.enroll("cs2104").await;
    // B signs the challenge with the shared key the device verifies...
    let (id, number) = b.push_ok("cs2104").await;
    let got = dev.poll(&b, 5).await;
    assert_eq!(got[0].challenge.id, id);
    // ...and its TOTP secret, sealed by A's master key, checks on B.
    let code = dev.otp().code(countersign_server::now());
    assert!(b.check_totp("cs2104", &code).await);
    let (status, _) = dev
        .answer(&b, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_database_and_liveness_does_not() {
    if !countersign_testkit::postgres::on_postgres() {
        println!("skipped: needs PostgreSQL (./test.sh runs this on its cluster)");
        return;
    }
    let ts = TestServer::start().await;
    let get = |path: &'static str| {
        let (http, url) = (ts.http.clone(), format!("{}{path}", ts.url));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!((get("/healthz").await, get("/readyz").await), (200, 200));
    // The database goes away (its connections are cut): a balancer stops
    // sending sign-ins here, but the process is alive and is not restarted.
    let db = countersign_testkit::postgres::database_of(&ts.config.store.url);
    countersign_testkit::postgres::drop_database(&db);
    assert_eq!((get("/healthz").await, get("/readyz").await), (200, 503));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_locks_after_its_failures_on_any_instance() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let temp = a.add_user("cs2105");
    let max = a.config.lockout.max_failures;
    let now = countersign_server::now();
    // Wrong passwords alternate between the instances, each from its own
    // address (so only the account's count can stop them).
    for i in 0..max {
        let ts = if i % 2 == 0 { &a } else { &b };
        let ip = format!("198.51.100.{}", 10 + i);
        assert!(ts
            .server
            .check_password("cs2105", "Wrong-password-1", &ip, now)
            .is_err());
    }
    // Locked on both, even for the right password.
    for ts in [&a, &b] {
        let err = ts
            .server
            .check_password("cs2105", &temp, "198.51.100.200", now)
            .unwrap_err();
        assert_eq!(err.code(), "account_locked", "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_rows_written_at_once_by_two_instances_form_one_chain() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    // Where the database's default is REPEATABLE READ, a write's snapshot
    // would be taken before it waited for the write lock, and its read of
    // the chain's tail could be stale: sessions opened from here on (the
    // two stores opened below) get that default.
    countersign_testkit::postgres::sql(
        a.dir.path(),
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation \
         = ''repeatable read''', current_database()); END $$",
        &[],
    );
    let before = a.server.store.verify_audit().unwrap().expect("intact");
    // Four writers at once: both instances and two stores opened now.
    // Each write takes the chain's tail with the write lock; half of them
    // append two rows in one transaction, the second chained to the first
    // without reading the table again.
    let url = a.config.store.url.clone();
    let mut writers = Vec::new();
    for (n, server) in [a.server.clone(), b.server.clone()].into_iter().enumerate() {
        writers.push(std::thread::spawn(move || append(&server.store, n)));
    }
    for n in 2..4 {
        let url = url.clone();
        writers.push(std::thread::spawn(move || {
            append(
                &countersign_server::store::Store::open_url(&url).unwrap(),
                n,
            )
        }));
    }
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(
        a.server.store.verify_audit().unwrap(),
        Ok(before + 4 * 60),
        "every row, from every writer, in one intact chain"
    );
    assert_eq!(b.server.store.verify_audit().unwrap(), Ok(before + 240));
}

/// Appends 60 audit rows in 40 write transactions, as writer `n`.
fn append(store: &countersign_server::store::Store, n: usize) {
    for i in 0..40 {
        let target = format!("writer{n}-{i}");
        let row = countersign_server::store::NewAudit::of("system", "test.row", &target, "")
            .with("ok", "");
        store
            .write(countersign_server::now(), |w| {
                w.audit(&row)?;
                if i % 2 == 0 {
                    w.audit(&row)?;
                }
                Ok(())
            })
            .unwrap();
    }
}

/// Waits up to `secs` for `f` to hold, checking every 100 ms.
async fn within(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_held_by_one_instance_counts_on_the_other_until_it_ends() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2111");
    let dev = a.enroll("cs2111").await;
    let user = a.server.store.user_by_name("cs2111").unwrap().unwrap();
    let streams_on_a = || a.server.streams_of(dev.id()).unwrap();
    assert_eq!(streams_on_a(), 0);

    let stream = dev.open_stream(&b).await;
    assert!(
        within(6, || streams_on_a() == 1).await,
        "A did not count the stream held by B"
    );
    // What the help desk and the admin API on A show.
    assert_eq!(a.server.devices_view(&user).unwrap()[0].streams, 1);
    assert_eq!(a.server.streams_total().unwrap(), 1);
    let seen: serde_json::Value = a
        .http
        .get(format!(
            "{}/api/v1/admin/streams?device={}",
            a.url,
            dev.id()
        ))
        .bearer_auth(&a.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The admin API counts this instance's own (how a balancer spreads).
    assert_eq!(seen["connected"], 0, "{seen}");
    assert_eq!(seen["device"], 0, "{seen}");
    // A push asked on A records the device as connected when asked.
    let (id, _) = a.push_ok("cs2111").await;
    let row = a.server.store.challenge(&id).unwrap().unwrap();
    assert_eq!(row.connected_when_asked, Some(true));

    drop(stream);
    assert!(
        within(6, || streams_on_a() == 0).await,
        "A still counts a stream that ended on B"
    );
    let (id, _) = a.push_ok("cs2111").await;
    let row = a.server.store.challenge(&id).unwrap().unwrap();
    assert_eq!(row.connected_when_asked, Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_of_an_instance_that_stops_no_longer_count() {
    let Some((a, mut b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2112");
    let dev = a.enroll("cs2112").await;
    let streams_on_a = || a.server.streams_of(dev.id()).unwrap();

    // Stopped cleanly: it withdraws its streams as it stops.
    let _stream = dev.open_stream(&b).await;
    assert!(within(6, || streams_on_a() == 1).await);
    b.running.take().unwrap().shutdown().await;
    assert_eq!(
        streams_on_a(),
        0,
        "a stopped instance's stream still counts"
    );

    // Killed (it stops reporting, and withdraws nothing): its streams
    // drop out once it has not reported for INSTANCE_ALIVE_SECONDS.
    let mut c = a.second_instance().await;
    let _stream = dev.open_stream(&c).await;
    assert!(within(6, || streams_on_a() == 1).await);
    let killed = std::time::Instant::now();
    // Dropped without `shutdown`: its reporting task ends unannounced.
    drop(c.running.take());
    let alive = u64::from(countersign_server::store::INSTANCE_ALIVE_SECONDS);
    assert!(
        within(alive + 4, || streams_on_a() == 0).await,
        "a killed instance's stream still counts after {:?}",
        killed.elapsed()
    );
    assert!(
        killed.elapsed() >= std::time::Duration::from_secs(alive - 3),
        "dropped out after {:?}, before it could have been judged gone",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_counts_its_own_streams_once_and_reports_again_when_forgotten() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    a.add_user("cs2113");
    let dev = a.enroll("cs2113").await;
    let streams_on_a = || a.server.streams_of(dev.id()).unwrap();
    // One stream here and two there: A's own rows are not counted again,
    // and B's two count as one.
    let _here = dev.open_stream(&a).await;
    let _there = dev.open_stream(&b).await;
    let _there_too = dev.open_stream(&b).await;
    assert!(
        within(6, || streams_on_a() == 2).await,
        "{}",
        streams_on_a()
    );
    assert_eq!(a.server.streams_total().unwrap(), 2);
    assert_eq!(
        b.server.streams_of(dev.id()).unwrap(),
        3,
        "B's own two and A's one"
    );

    // The database forgets both instances (as the others do with one cut
    // off for a minute): each reports all its streams again.
    let rows = countersign_testkit::postgres::sql(a.dir.path(), "DELETE FROM instances", &[]);
    assert!(rows.is_empty());
    assert_eq!(
        streams_on_a(),
        1,
        "only A's own stream, until B reports again"
    );
    assert!(
        within(6, || streams_on_a() == 2).await,
        "B did not report its streams again"
    );
}

//! Two instances of the server on one PostgreSQL database: the page that
//! asks and the device that answers may each be served by either.

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
    let stream = b
        .http
        .get(dev.challenges_url(&b))
        .bearer_auth(&dev.activation.channel_token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
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

//! `/metrics`: the figures follow what the server did, they are served on
//! their own listener only, and Debian's real Prometheus scrapes them
//! during a load run.

mod prometheus;

use countersign_core::protocol::{Decision, Receipt, ReceiptEvent};
use countersign_server::now;

use crate::common::TestServer;

/// The value of one series in the text format, if present.
pub fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` of `ts`, checked to be Prometheus's text format.
pub async fn scrape(ts: &TestServer) -> String {
    let resp = ts.http.get(ts.metrics_url()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_figures_follow_pushes_codes_and_refusals() {
    let ts = TestServer::start().await;
    ts.add_user("cs0201");
    let dev = ts.enroll("cs0201").await;
    let before = scrape(&ts).await;
    assert_eq!(series(&before, "countersign_pushes_total"), Some(0.0));

    // Two approvals (the first with its delivery receipt), one denial.
    for (i, decision) in [Decision::Approve, Decision::Approve, Decision::Deny]
        .into_iter()
        .enumerate()
    {
        let (id, number) = ts.push_ok("cs0201").await;
        if i == 0 {
            let r = Receipt::sign(&id, dev.id(), ReceiptEvent::Delivered, now(), &dev.key);
            let url = format!("{}/api/v1/challenges/{id}/receipt", ts.url);
            let resp = ts.http.post(url).json(&r).send().await.unwrap();
            assert!(resp.status().is_success(), "receipt: {}", resp.status());
        }
        let (status, _) = dev
            .answer(&ts, &dev.response(&id, decision, Some(number)))
            .await;
        assert_eq!(status, 200);
    }
    // A TOTP code used twice: the second is a replay.
    let code = dev.otp().code(now());
    assert!(ts.check_totp("cs0201", &code).await);
    assert!(!ts.check_totp("cs0201", &code).await);

    let text = scrape(&ts).await;
    let got = |name| series(&text, name);
    assert_eq!(got("countersign_pushes_total"), Some(3.0));
    assert_eq!(
        got("countersign_challenges_total{result=\"approved\"}"),
        Some(2.0)
    );
    assert_eq!(
        got("countersign_challenges_total{result=\"denied\"}"),
        Some(1.0)
    );
    assert_eq!(got("countersign_push_round_trip_seconds_count"), Some(3.0));
    assert_eq!(got("countersign_push_delivery_seconds_count"), Some(1.0));
    assert_eq!(got("countersign_totp_replays_refused_total"), Some(1.0));
    assert_eq!(
        got("countersign_sign_in_steps_total{method=\"totp\",outcome=\"ok\"}"),
        Some(1.0)
    );
    assert!(got("countersign_store_seconds_count{access=\"write\"}").unwrap() >= 6.0);
    assert!(got("countersign_store_seconds_count{access=\"read\"}").unwrap() >= 1.0);
    assert!(text.contains("countersign_build_info{version=\""));

    // Not on the sign-in listener.
    let public = ts
        .http
        .get(format!("{}/metrics", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn connected_streams_and_rate_limit_refusals_are_counted() {
    let ts = TestServer::start_with(|c| c.push.max_per_window = 1).await;
    ts.add_user("cs0202");
    let dev = ts.enroll("cs0202").await;
    let stream = dev.open_stream(&ts).await;
    ts.push_ok("cs0202").await;
    assert_eq!(ts.push("cs0202").await.status(), 429, "the push limit");
    let text = scrape(&ts).await;
    assert_eq!(series(&text, "countersign_device_streams"), Some(1.0));
    assert_eq!(series(&text, "countersign_rate_limited_total"), Some(1.0));
    drop(stream);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_push_counts_once_and_a_lockout_counts_once() {
    let ts = TestServer::start().await;
    ts.add_user("cs0203");
    let dev = ts.enroll("cs0203").await;
    let (id, number) = ts.push_ok("cs0203").await;
    // The sweeper finds it overdue; the device answers late anyway.
    ts.server.expire_overdue(now() + 3600).unwrap();
    let (status, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("expired")));
    // Five wrong codes lock the account.
    let max = ts.config.lockout.max_failures;
    for _ in 0..max {
        assert!(!ts.check_totp("cs0203", "000000").await);
    }
    let text = scrape(&ts).await;
    let got = |name| series(&text, name);
    assert_eq!(
        got("countersign_challenges_total{result=\"expired\"}"),
        Some(1.0)
    );
    assert_eq!(
        got("countersign_challenges_total{result=\"approved\"}"),
        Some(0.0)
    );
    assert_eq!(got("countersign_lockouts_total"), Some(1.0));
    assert_eq!(
        got("countersign_sign_in_steps_total{method=\"totp\",outcome=\"locked\"}"),
        Some(1.0)
    );
}

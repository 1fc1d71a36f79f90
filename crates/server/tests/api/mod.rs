//! The server core against a real server on loopback.

use std::time::Duration;

use crate::common::{error_code, sse_challenges, TestDevice, TestServer};
use countersign_core::password::Violation;
use countersign_core::protocol::Decision;
use countersign_core::SigningKey;
use countersign_server::now;
use ring::rand::SystemRandom;

#[tokio::test(flavor = "multi_thread")]
async fn activation_good_reused_expired_and_wrong_code() {
    let ts = TestServer::start().await;
    ts.add_user("cs0101");

    // Good, then the same code again.
    let e = ts.enrollment("cs0101");
    assert!(e.server.starts_with("https://127.0.0.1:"));
    assert!(e.pin.is_some());
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    assert_eq!(ts.activate(&e.code, &key).await.status(), 200);
    assert_eq!(
        error_code(ts.activate(&e.code, &key).await).await,
        (409, "code_used".into())
    );

    // Expired: ten minutes and a second later.
    let e = ts.enrollment("cs0101");
    let req = countersign_core::api::ActivateRequest {
        code: e.code.clone(),
        device_key: key.public_key(),
        receipt_key: None,
        device_name: "phone".into(),
        platform: "cli".into(),
        app_version: String::new(),
    };
    let err = ts.server.activate(&req, "", now() + 601).unwrap_err();
    assert_eq!(err.code(), "code_expired");

    // Five wrong secrets kill the code, even for the right secret after.
    let e = ts.enrollment("cs0101");
    let (id, _) = e.code.split_once('-').unwrap();
    for _ in 0..5 {
        let wrong = format!("{id}-{}", "x".repeat(26));
        assert_eq!(
            error_code(ts.activate(&wrong, &key).await).await,
            (400, "invalid_code".into())
        );
    }
    assert_eq!(
        error_code(ts.activate(&e.code, &key).await).await,
        (429, "too_many_attempts".into())
    );
    // A code nobody issued.
    assert_eq!(
        error_code(ts.activate("nonsense", &key).await).await,
        (400, "invalid_code".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn challenge_arrives_over_sse_and_long_poll_without_the_number() {
    let ts = TestServer::start().await;
    ts.add_user("cs0102");
    let dev = ts.enroll("cs0102").await;

    let sse = dev.open_stream(&ts).await;
    let (id, _number) = ts.push_ok("cs0102").await;
    let got = sse_challenges(sse, 1).await;
    assert_eq!(got[0].challenge.id, id);
    got[0]
        .verify(&dev.server_key)
        .expect("signed by the server");
    assert_eq!(got[0].challenge.application, "ALEA Portal");
    let json = serde_json::to_string(&got[0]).unwrap();
    assert!(
        !json.contains("number"),
        "the number never goes to the device: {json}"
    );

    // Long poll: waits, then returns the new challenge.
    let poll = long_poll(&ts, &dev);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The first challenge is still pending, so the poll may already have it;
    // answer it first to make the next poll wait for a new one.
    let first = poll.await.unwrap();
    assert_eq!(first[0].challenge.id, id);
    let (status, _) = dev
        .answer(&ts, &dev.response(&id, Decision::Deny, None))
        .await;
    assert_eq!(status, 200);
    let poll = long_poll(&ts, &dev);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id2, _) = ts.push_ok("cs0102").await;
    let second = poll.await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].challenge.id, id2);

    // A wrong channel token is refused.
    let resp = ts
        .http
        .get(dev.challenges_url(&ts))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, (401, "unauthorized".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn challenge_arrives_on_the_upgraded_stream_and_a_closed_one_is_let_go() {
    use tokio::io::AsyncReadExt;
    let ts = TestServer::start().await;
    ts.add_user("cs0103");
    let dev = ts.enroll("cs0103").await;
    let device_id = dev.activation.device_id.clone();

    let resp = ts
        .http
        .get(dev.challenges_url(&ts))
        .bearer_auth(&dev.activation.channel_token)
        .header("connection", "upgrade")
        .header("upgrade", countersign_server::http::events::UPGRADE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["upgrade"], "countersign-events");
    let mut io = resp.upgrade().await.unwrap();
    assert_eq!(ts.server.hub.connected(&device_id), 1);

    let (id, _number) = ts.push_ok("cs0103").await;
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    while !text.windows(2).any(|w| w == b"\n\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut chunk))
            .await
            .expect("an event within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed the stream");
        text.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.starts_with("event: challenge\n"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let envelope: countersign_core::protocol::ChallengeEnvelope =
        serde_json::from_str(data).unwrap();
    assert_eq!(envelope.challenge.id, id);
    envelope
        .verify(&dev.server_key)
        .expect("signed by the server");

    // A device that hangs up is let go at once, not at the next keep-alive.
    drop(io);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ts.server.hub.connected(&device_id) > 0 {
        assert!(std::time::Instant::now() < deadline, "the stream was kept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Without the token there is no stream, upgraded or not.
    let refused = ts
        .http
        .get(dev.challenges_url(&ts))
        .header("connection", "upgrade")
        .header("upgrade", countersign_server::http::events::UPGRADE)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn both_kinds_of_device_stream_carry_keep_alive_comments() {
    use futures_util::StreamExt;
    use tokio::io::AsyncReadExt;
    let ts = TestServer::start().await;
    ts.add_user("cs0104");
    let dev = ts.enroll("cs0104").await;
    let stream = |upgraded: bool| {
        let mut request = ts
            .http
            .get(dev.challenges_url(&ts))
            .bearer_auth(&dev.activation.channel_token)
            .header("accept", "text/event-stream");
        if upgraded {
            request = request
                .header("connection", "upgrade")
                .header("upgrade", countersign_server::http::events::UPGRADE);
        }
        request.send()
    };
    let (upgraded, plain) = (stream(true).await.unwrap(), stream(false).await.unwrap());
    assert_eq!(
        (upgraded.status().as_u16(), plain.status().as_u16()),
        (101, 200)
    );
    let mut upgraded = upgraded.upgrade().await.unwrap();
    let mut plain = plain.bytes_stream();
    // Each stream's first comment comes within one interval, nothing
    // else before it (no challenge is pending).
    let within = countersign_server::http::events::KEEP_ALIVE + Duration::from_secs(2);
    let upgraded = async {
        let mut text = Vec::new();
        let mut chunk = [0u8; 64];
        while !text.ends_with(b"\n\n") {
            let n = upgraded.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the server closed the stream");
            text.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(text).unwrap()
    };
    let plain = async {
        let mut text = Vec::new();
        while !text.ends_with(b"\n\n") {
            text.extend_from_slice(&plain.next().await.expect("open").unwrap());
        }
        String::from_utf8(text).unwrap()
    };
    let both = tokio::time::timeout(within, futures_util::future::join(upgraded, plain));
    let (upgraded, plain) = both.await.expect("a keep-alive on each within 17 s");
    assert_eq!((upgraded.as_str(), plain.as_str()), (":\n\n", ":\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_deny_report_and_wrong_number() {
    let ts = TestServer::start().await;
    ts.add_user("cs0103");
    let dev = ts.enroll("cs0103").await;

    let (id, number) = ts.push_ok("cs0103").await;
    let (status, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
    assert_eq!(ts.status(&id).await, "approved");

    let (id, number) = ts.push_ok("cs0103").await;
    let wrong = if number == 99 { 10 } else { number + 1 };
    let (_, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(wrong)))
        .await;
    assert_eq!(body["status"], "number_mismatch");

    let (id, _) = ts.push_ok("cs0103").await;
    let (_, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Deny, None))
        .await;
    assert_eq!(body["status"], "denied");

    let (id, _) = ts.push_ok("cs0103").await;
    let (_, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Report, None))
        .await;
    assert_eq!(body["status"], "reported");
    // A report blocks further pushes until the help desk resets.
    assert_eq!(
        error_code(ts.push("cs0103").await).await,
        (403, "push_blocked".into())
    );
    ts.server
        .reset_methods("cs0103", "helpdesk", now())
        .unwrap();
    assert_eq!(
        error_code(ts.push("cs0103").await).await,
        (409, "no_device".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_replayed_and_foreign_answers_are_refused() {
    let ts = TestServer::start_with(|c| c.push.ttl_seconds = 1).await;
    ts.add_user("cs0104");
    let dev = ts.enroll("cs0104").await;

    // Expired: the status follows, and a late answer gets "expired".
    let (id, number) = ts.push_ok("cs0104").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(ts.status(&id).await, "expired");
    let (status, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("expired")));

    let ts2 = TestServer::start().await;
    ts2.add_user("cs0105");
    let dev = ts2.enroll("cs0105").await;
    let other = ts2.enroll("cs0105").await;
    let (id, number) = ts2.push_ok("cs0105").await; // goes to the newest device: `other`
                                                    // Signed by a key that is not the device's.
    let thief = countersign_core::protocol::Response::sign(
        &id,
        other.id(),
        Decision::Approve,
        Some(number),
        "",
        now(),
        &SigningKey::generate(&SystemRandom::new()).unwrap(),
    )
    .unwrap();
    let (status, body) = other.answer(&ts2, &thief).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("bad_signature"))
    );
    // Signed by another enrolled device of the same user.
    let (status, body) = dev
        .answer(&ts2, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("wrong_device")));
    // The real answer, then a replay of it.
    let good = other.response(&id, Decision::Approve, Some(number));
    assert_eq!(other.answer(&ts2, &good).await.1["status"], "approved");
    let (status, body) = other.answer(&ts2, &good).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_answered"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_fatigue_limit() {
    let ts = TestServer::start().await;
    ts.add_user("cs0106");
    ts.enroll("cs0106").await;
    for _ in 0..5 {
        ts.push_ok("cs0106").await;
    }
    assert_eq!(
        error_code(ts.push("cs0106").await).await,
        (429, "push_limited".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_accepts_refuses_replay_and_honours_skew() {
    let ts = TestServer::start().await;
    ts.add_user("cs0107");
    let dev = ts.enroll("cs0107").await;
    let otp = dev.otp();
    let t = now();
    // The previous step's code is within the ±1 skew.
    assert!(
        ts.check_totp("cs0107", &otp.code(t - 30)).await,
        "previous step accepted"
    );
    assert!(
        ts.check_totp("cs0107", &otp.code(t)).await,
        "current step accepted"
    );
    assert!(
        !ts.check_totp("cs0107", &otp.code(t)).await,
        "replay refused"
    );
    assert!(
        !ts.check_totp("cs0107", &otp.code(t - 90)).await,
        "three steps old refused"
    );
    assert!(!ts.check_totp("cs0107", "000000").await || otp.code(t) == "000000");
    // A disabled account's code is refused, right or not.
    ts.server.set_disabled("cs0107", true, "admin", t).unwrap();
    let e = ts
        .server
        .verify_totp("cs0107", &otp.code(t + 30), "admin", "", t + 30)
        .unwrap_err();
    assert_eq!(e.code(), "account_disabled");
    // The admin token is required.
    let resp = ts
        .http
        .post(format!("{}/api/v1/totp/verify", ts.url))
        .json(&serde_json::json!({"username": "cs0107", "code": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, (401, "unauthorized".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn password_rules_each_have_their_message() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs0108");
    assert_eq!(temp, "New$Alacop#k4321c");
    let s = &ts.server;
    let t = now();
    let ok = s.check_password("cs0108", &temp, "127.0.0.1", t).unwrap();
    assert!(ok.must_change, "a temporary password must be changed");

    let change = |new: &str, confirm: &str, at: u64| {
        s.change_password("cs0108", &temp, new, confirm, "", at)
            .unwrap()
    };
    assert_eq!(
        change("Short-1a", "Short-1a", t),
        Err(vec![Violation::TooShort(14)])
    );
    assert_eq!(
        change("lower-case-only-1", "lower-case-only-1", t),
        Err(vec![Violation::NoUpper])
    );
    assert_eq!(
        change("UPPER-CASE-ONLY-1", "UPPER-CASE-ONLY-1", t),
        Err(vec![Violation::NoLower])
    );
    assert_eq!(
        change("No-Digits-Here-At-All", "No-Digits-Here-At-All", t),
        Err(vec![Violation::NoDigit])
    );
    assert_eq!(
        change("NoSpecials1234567", "NoSpecials1234567", t),
        Err(vec![Violation::NoSpecial])
    );
    assert_eq!(
        change("Mismatch-12345678", "Mismatch-12345679", t),
        Err(vec![Violation::Mismatch])
    );
    assert_eq!(change(&temp, &temp, t), Err(vec![Violation::Reused(24)]));
    assert_eq!(
        s.change_password(
            "cs0108",
            "not-the-password",
            "Good-Password-123",
            "Good-Password-123",
            "",
            t
        )
        .unwrap(),
        Err(vec![Violation::WrongCurrent])
    );
    // A good change, then a second one within 24 hours, then reuse.
    assert_eq!(change("Good-Password-123", "Good-Password-123", t), Ok(()));
    let again =
        |cur: &str, new: &str, at: u64| s.change_password("cs0108", cur, new, new, "", at).unwrap();
    assert_eq!(
        again("Good-Password-123", "Other-Password-456", t + 3600),
        Err(vec![Violation::TooSoon(24)])
    );
    assert_eq!(
        again("Good-Password-123", "Good-Password-123", t + 25 * 3600),
        Err(vec![Violation::Reused(24)])
    );
    assert_eq!(
        again("Good-Password-123", "Other-Password-456", t + 25 * 3600),
        Ok(())
    );
    // An administrator reset is exempt from the minimum age and forces a change.
    let reset = s
        .reset_password("cs0108", "admin", t + 25 * 3600 + 1)
        .unwrap();
    assert!(
        s.check_password("cs0108", &reset, "", t + 25 * 3600 + 2)
            .unwrap()
            .must_change
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lockout_after_five_failures_and_unlock() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs0109");
    let s = &ts.server;
    let t = now();
    for i in 0..4 {
        assert_eq!(
            s.check_password("cs0109", "wrong", "", t)
                .unwrap_err()
                .code(),
            "invalid_credentials",
            "failure {i}"
        );
    }
    // The fifth locks the account, but answers like any wrong password: a
    // lock must not tell that the account exists.
    assert_eq!(
        s.check_password("cs0109", "wrong", "", t)
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    assert!(s.user("cs0109").unwrap().locked_until > t);
    // Locked: even the right password is refused, for ten minutes.
    assert_eq!(
        s.check_password("cs0109", &temp, "", t + 60)
            .unwrap_err()
            .code(),
        "account_locked"
    );
    assert!(
        s.check_password("cs0109", &temp, "", t + 601).is_ok(),
        "the lock ends after 10 minutes"
    );
    for _ in 0..5 {
        let _ = s.check_password("cs0109", "wrong", "", t + 700);
    }
    assert_eq!(
        s.check_password("cs0109", &temp, "", t + 701)
            .unwrap_err()
            .code(),
        "account_locked"
    );
    s.unlock("cs0109", "helpdesk", t + 702).unwrap();
    assert!(s.check_password("cs0109", &temp, "", t + 703).is_ok());
    // Unknown user and wrong password look the same.
    assert_eq!(
        s.check_password("nobody", "x", "", t)
            .unwrap_err()
            .to_string(),
        s.check_password("cs0109", "x", "", t + 704)
            .unwrap_err()
            .to_string()
    );
}

/// Median time of `f` over `n` runs.
fn median_time(n: usize, mut f: impl FnMut()) -> std::time::Duration {
    let mut times: Vec<_> = (0..n)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_and_disabled_accounts_answer_a_wrong_password_like_an_unknown_user() {
    let ts = TestServer::start_with(|c| c.lockout.per_address_failures = 10_000).await;
    let s = &ts.server;
    let t = now();
    let locked_temp = ts.add_user("cs0131");
    let disabled_temp = ts.add_user("cs0132");
    for _ in 0..5 {
        let _ = s.check_password("cs0131", "wrong", "", t);
    }
    assert!(s.user("cs0131").unwrap().locked_until > t);
    s.set_disabled("cs0132", true, "admin", t).unwrap();

    // Status, code and message alike.
    let answer = |user: &str| {
        let e = s.check_password(user, "wrong", "", t).unwrap_err();
        let status = match &e {
            countersign_server::Error::Refused { code, .. } => {
                Some(countersign_server::http::error::status(*code))
            }
            _ => None,
        };
        (status, e.code(), e.to_string())
    };
    let unknown = answer("nobody");
    assert_eq!(unknown.1, "invalid_credentials");
    assert_eq!(answer("cs0131"), unknown, "locked");
    assert_eq!(answer("cs0132"), unknown, "disabled");
    // And cost alike: each verifies a password hash. The refusal used to
    // come before it, about a thousand times faster (microseconds against
    // milliseconds); a tenth leaves room for a busy machine.
    let base = median_time(7, || drop(s.check_password("nobody", "wrong", "", t)));
    for user in ["cs0131", "cs0132"] {
        let took = median_time(7, || drop(s.check_password(user, "wrong", "", t)));
        assert!(took * 10 > base, "{user}: {took:?} against {base:?}");
    }

    // The right password may learn why: that helps the officer.
    let e = s.check_password("cs0131", &locked_temp, "", t).unwrap_err();
    assert_eq!(e.code(), "account_locked");
    let e = s
        .check_password("cs0132", &disabled_temp, "", t)
        .unwrap_err();
    assert_eq!(e.code(), "account_disabled");
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_passwords_expire_and_the_help_desk_issues_new_ones() {
    let ts = TestServer::start_with(|c| c.users.temporary_password_days = 2).await;
    let s = &ts.server;
    let t = now();
    let temp = ts.add_user("cs0133");
    let days = 2 * 86_400;
    assert!(s.check_password("cs0133", &temp, "", t + days - 60).is_ok());
    let e = s
        .check_password("cs0133", &temp, "", t + days + 1)
        .unwrap_err();
    assert_eq!(e.code(), "temporary_password_expired");
    assert!(e.to_string().contains("Contact the help desk"), "{e}");
    // A wrong password after expiry learns nothing.
    let e = s
        .check_password("cs0133", "wrong", "", t + days + 1)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_credentials");
    // A reset issues a new one, valid for its own two days.
    let fresh = s
        .reset_password("cs0133", "helpdesk", t + days + 2)
        .unwrap();
    assert!(s.check_password("cs0133", &fresh, "", t + 2 * days).is_ok());
    let e = s
        .check_password("cs0133", &fresh, "", t + 2 * days + 3)
        .unwrap_err();
    assert_eq!(e.code(), "temporary_password_expired");
    // An officer's own password does not expire.
    let fresh = s
        .reset_password("cs0133", "helpdesk", t + 3 * days)
        .unwrap();
    let own = "Correct-Horse-9-Battery";
    s.change_password("cs0133", &fresh, own, own, "", t + 3 * days)
        .unwrap()
        .unwrap();
    assert!(s.check_password("cs0133", own, "", t + 300 * days).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_challenge_survives_a_restart() {
    let ts = TestServer::start().await;
    ts.add_user("cs0110");
    let dev = ts.enroll("cs0110").await;
    let (id, number) = ts.push_ok("cs0110").await;
    let ts = ts.restart().await;
    let pending = dev.poll(&ts, 0).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].challenge.id, id);
    let (_, body) = dev
        .answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    assert_eq!(body["status"], "approved");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_clear_errors_and_change_nothing() {
    let ts = TestServer::start().await;
    let post = |path: &str, body: Vec<u8>| {
        ts.http
            .post(format!("{}{path}", ts.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, code) = error_code(
        post("/api/v1/devices/activate", b"{not json".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let (status, code) = error_code(
        post("/api/v1/devices/activate", br#"{"code": 5}"#.to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let (status, code) = error_code(
        post("/api/v1/devices/activate", vec![b' '; 20_000])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (413, "body_too_large"));
    let (status, code) = error_code(
        post("/api/v1/challenges/x/response", b"[]".to_vec())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let resp = ts
        .http
        .get(format!("{}/api/v1/challenges/unknown", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, (404, "not_found".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_chain_records_every_step_and_verifies() {
    let ts = TestServer::start().await;
    ts.add_user("cs0111");
    let dev = ts.enroll("cs0111").await;
    let (id, number) = ts.push_ok("cs0111").await;
    dev.answer(&ts, &dev.response(&id, Decision::Approve, Some(number)))
        .await;
    let rows = ts.server.store.audit_entries(&Default::default()).unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    for want in [
        "user.add",
        "device.enroll_link",
        "device.activate",
        "challenge.create",
        "challenge.answer",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    let answer = rows
        .iter()
        .find(|r| r.action == "challenge.answer")
        .unwrap();
    assert_eq!(answer.outcome, "approved");
    assert!(
        answer.detail.contains("signature"),
        "the device signature is kept"
    );
    assert_eq!(ts.server.store.verify_audit().unwrap(), Ok(rows.len()));
    // No secret reaches the log: not the temporary password, the channel
    // token or the TOTP secret.
    let all = serde_json::to_string(&rows).unwrap();
    assert!(
        !all.contains("New$Alacop")
            && !all.contains(&dev.activation.channel_token)
            && !all.contains(&dev.activation.totp.secret)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_are_recorded_only_from_the_addressed_device() {
    use countersign_core::protocol::{Receipt, ReceiptEvent};
    let ts = TestServer::start().await;
    ts.add_user("cs0112");
    let dev = ts.enroll("cs0112").await;
    let (id, _) = ts.push_ok("cs0112").await;
    let post = |r: Receipt| {
        let (http, url) = (
            ts.http.clone(),
            format!("{}/api/v1/challenges/{id}/receipt", ts.url),
        );
        async move { http.post(url).json(&r).send().await.unwrap() }
    };
    let forged = Receipt::sign(
        &id,
        dev.id(),
        ReceiptEvent::Delivered,
        now(),
        &SigningKey::generate(&SystemRandom::new()).unwrap(),
    );
    assert_eq!(
        error_code(post(forged).await).await,
        (401, "bad_signature".into())
    );
    let other = Receipt::sign(
        &id,
        "another-device",
        ReceiptEvent::Delivered,
        now(),
        &dev.key,
    );
    assert_eq!(
        error_code(post(other).await).await,
        (403, "wrong_device".into())
    );
    let shown = Receipt::sign(&id, dev.id(), ReceiptEvent::Shown, now(), &dev.key);
    assert_eq!(post(shown).await.status(), 204);
    let row = ts.server.store.challenge(&id).unwrap().unwrap();
    assert!(
        row.shown_at.is_some() && row.delivered_at.is_some(),
        "shown implies delivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_the_proxy_the_client_is_the_address_it_appended() {
    use axum::extract::{ConnectInfo, FromRequestParts};
    use countersign_server::http::extract::ClientIp;
    use countersign_server::infra::config::{Config, TlsMode};
    use countersign_server::infra::datadir::DataDir;
    use std::net::SocketAddr;
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::open(tmp.path()).unwrap();
    let address = |mode: TlsMode| {
        let mut config = Config::default();
        config.tls.mode = mode;
        config.store.url = countersign_testkit::postgres::store_for(tmp.path()).unwrap_or_default();
        config.store.kek_file = Some(countersign_testkit::postgres::kek_file());
        let server = Arc::new(countersign_server::Server::open(config, &data).unwrap());
        async move {
            let (mut parts, ()) = axum::http::Request::builder()
                .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
                .body(())
                .unwrap()
                .into_parts();
            parts
                .extensions
                .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 443))));
            let ClientIp(ip) = ClientIp::from_request_parts(&mut parts, &server)
                .await
                .unwrap();
            ip
        }
    };
    // The client's own "6.6.6.6" is not believed; the proxy's entry is.
    assert_eq!(address(TlsMode::Off).await, "203.0.113.9");
    // Serving TLS itself, the server ignores the header.
    assert_eq!(address(TlsMode::SelfSigned).await, "10.0.0.1");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_asker_follows_a_challenge() {
    let ts = TestServer::start().await;
    ts.add_user("cs0199");
    let _device = ts.enroll("cs0199").await;
    let (id, _) = ts.push_ok("cs0199").await;
    let url = format!("{}/api/v1/challenges/{id}", ts.url);
    // No admin token and no browser session waiting for it: as if unknown.
    let resp = ts.http.get(&url).send().await.unwrap();
    assert_eq!(error_code(resp).await, (404, "not_found".into()));
    let resp = ts.http.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(error_code(resp).await, (404, "not_found".into()));
    // The admin token (the `push` command) may.
    assert_eq!(ts.status(&id).await, "pending");
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_are_refused_where_text_enters_and_nothing_changes() {
    let ts = TestServer::start().await;
    ts.add_user("cs0140");
    let evil = "Portal\x1b[2J\rApproved: type 42";

    // A device name or platform.
    let e = ts.enrollment("cs0140");
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let mut req = countersign_core::api::ActivateRequest {
        code: e.code.clone(),
        device_key: key.public_key(),
        receipt_key: None,
        device_name: evil.into(),
        platform: "cli".into(),
        app_version: "0.1.0".into(),
    };
    let activate = |req: &countersign_core::api::ActivateRequest| {
        ts.http
            .post(format!("{}/api/v1/devices/activate", ts.url))
            .json(req)
            .send()
    };
    let (status, code) = error_code(activate(&req).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "invalid_device_name"));
    req.device_name = "Phone\n".into();
    let (status, code) = error_code(activate(&req).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_device_name"),
        "not trimmed away"
    );
    req.device_name = "Phone".into();
    req.platform = "cli\u{202E}".into();
    let (status, code) = error_code(activate(&req).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "invalid_platform"));
    req.platform = "cli".into();
    req.app_version = "9".repeat(33);
    let (status, code) = error_code(activate(&req).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "invalid_app_version"));
    req.app_version = "0.1.0".into();
    // Nothing was bound, and the code still works with a plain name.
    assert!(!ts.server.methods("cs0140").unwrap().app);
    req.platform = "cli".into();
    assert_eq!(activate(&req).await.unwrap().status(), 200);

    // A push label (the `push --app` command and the console use the same).
    let before = ts
        .server
        .store
        .challenges_of(ts.server.user("cs0140").unwrap().id, 10)
        .unwrap()
        .len();
    let resp = ts
        .http
        .post(format!("{}/api/v1/admin/push", ts.url))
        .bearer_auth(&ts.admin_token)
        .json(&serde_json::json!({"username": "cs0140", "application": evil}))
        .send()
        .await
        .unwrap();
    let (status, _) = error_code(resp).await;
    assert_eq!(status, 400);
    let after = ts
        .server
        .store
        .challenges_of(ts.server.user("cs0140").unwrap().id, 10)
        .unwrap()
        .len();
    assert_eq!(after, before, "no challenge was created");

    // A help-desk reason, and an account's name.
    let fix = countersign_server::domain::helpdesk::Fix::Unlock;
    let staff = countersign_server::domain::helpdesk::Staff {
        name: "hd",
        role: countersign_server::store::Role::Admin,
    };
    let e = ts
        .server
        .apply_fix("cs0140", &fix, staff, evil, "", now())
        .unwrap_err();
    assert_eq!(e.code(), "invalid_reason");
    let e = ts
        .server
        .add_user("cs0141", evil, "Doe", None, "admin", now())
        .unwrap_err();
    assert_eq!(e.code(), "invalid_name");
    assert!(ts.server.store.user_by_name("cs0141").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn https_responses_carry_hsts() {
    let ts = TestServer::start().await;
    for path in ["/signin", "/api/v1/time", "/healthz", "/nothing-here"] {
        let r = ts
            .http
            .get(format!("{}{path}", ts.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

/// A device's long poll for its open challenges (`?wait=20`), running.
fn long_poll(
    ts: &TestServer,
    dev: &TestDevice,
) -> tokio::task::JoinHandle<Vec<countersign_core::protocol::ChallengeEnvelope>> {
    let (url, token, http) = (
        dev.challenges_url(ts),
        dev.activation.channel_token.clone(),
        ts.http.clone(),
    );
    tokio::spawn(async move {
        let body = http
            .get(format!("{url}?wait=20"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&body).unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_activation_codes_counts_against_the_address() {
    let ts = TestServer::start().await;
    ts.add_user("cs0141");
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let request = |code: &str| countersign_core::api::ActivateRequest {
        code: code.into(),
        device_key: key.public_key(),
        receipt_key: None,
        device_name: "Phone".into(),
        platform: "cli".into(),
        app_version: String::new(),
    };
    let (ip, t) = ("203.0.113.9", now());
    let limit = ts.config.lockout.per_address_failures;
    for i in 0..limit {
        let e = ts
            .server
            .activate(&request(&format!("guess{i:05}-secret")), ip, t)
            .unwrap_err();
        assert_eq!(e.code(), "invalid_code");
    }
    // Past the limit even a right code is refused from that address...
    let good = ts.enrollment("cs0141");
    let e = ts.server.activate(&request(&good.code), ip, t).unwrap_err();
    assert_eq!(e.code(), "too_many_attempts");
    // ...and works from another.
    assert!(ts
        .server
        .activate(&request(&good.code), "198.51.100.4", t)
        .is_ok());
}

/// What axum refuses before a handler runs (a query, a path, a form that
/// does not parse, a body over the limit) is said in the caller's form:
/// JSON on the API and to applications, the site's page to a browser.
#[tokio::test(flavor = "multi_thread")]
async fn requests_that_do_not_parse_are_refused_in_the_callers_form() {
    let ts = TestServer::start().await;
    let get = |path: &str| {
        ts.http
            .get(format!("{}{path}", ts.url))
            .bearer_auth(&ts.admin_token)
            .send()
    };
    for (path, names) in [
        ("/api/v1/challenges/x?wait=abc", "wait"),
        ("/api/v1/challenges/x?wait=-1", "wait"),
        ("/api/v1/challenges/%ff", "UTF-8"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_request", "{path}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(names), "{path}: {message}");
        // In the API's words, not the parser's.
        assert!(
            message.contains("is not valid (") && !message.contains("Failed to"),
            "{path}: {message}"
        );
    }
    // An address nothing is at: said in the caller's form too.
    for (path, key, code) in [
        ("/api/v1/nothing", "code", "not_found"),
        ("/.well-known/nothing", "error", "invalid_request"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body[key], code, "{path}: {body}");
    }
    let resp = get("/static/nothing").await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(resp.text().await.unwrap().contains("<h1>Not found</h1>"));
    // A body that is not the JSON asked for: in the API's words.
    let resp = ts
        .http
        .post(format!("{}/api/v1/devices/activate", ts.url))
        .header("content-type", "application/json")
        .body(r#"{"code": 1}"#)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_json", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("The JSON body does not hold what this request takes (")
            && message.contains("code"),
        "{message}"
    );
    // A method a route does not take: said in the caller's form, with
    // what it takes.
    for (path, key, words) in [
        ("/api/v1/devices/activate", "code", "message"),
        ("/oidc/token", "error", "error_description"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), 405, "{path}");
        assert!(resp.headers()["allow"].to_str().unwrap().contains("POST"));
        assert_eq!(resp.headers()["content-type"], "application/json", "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body[key], "invalid_request", "{path}: {body}");
        let message = body[words].as_str().unwrap();
        assert!(
            message.contains("This address does not take GET."),
            "{path}: {body}"
        );
    }
    // An application's token request over the limit: OAuth's form.
    let resp = ts
        .http
        .post(format!("{}/oidc/token", ts.url))
        .header("content-type", "application/x-www-form-urlencoded")
        // Just over the limit: a body the client is still sending when the
        // answer comes can end in a broken pipe instead of the answer.
        .body(vec![b'a'; 17_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    // A sign-in or recovery form with a field twice: a page that says so.
    let browser = ts.client_builder().cookie_store(true).build().unwrap();
    let page = browser
        .get(format!("{}/signin", ts.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::common::between(&page, "name=\"csrf\" value=\"", "\"");
    let twice = "A field of the form is not valid (duplicate field";
    for (path, fields) in [
        ("/signin", "email=cs0001&email=cs0002"),
        ("/recover", "email=cs0001&captcha=a&captcha=b"),
    ] {
        let resp = browser
            .post(format!("{}{path}", ts.url))
            .body(format!("csrf={csrf}&{fields}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let page = resp.text().await.unwrap();
        assert!(page.contains(twice), "{path}: {page}");
        assert!(page.contains("<h1>Request refused</h1>"), "{path}: {page}");
    }
    // A page's address asked with a method it does not take: a page.
    let resp = browser
        .get(format!("{}/helpdesk/users/cs0001/fix", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let page = resp.text().await.unwrap();
    assert!(page.contains("This address does not take GET."), "{page}");
    // The forms of the later steps say the same, and a form too large
    // says that it is.
    let post = |body: String| {
        browser
            .post(format!("{}/recover/password", ts.url))
            .body(body)
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
    };
    let resp = post(format!("csrf={csrf}&new=a&new=b")).await.unwrap();
    assert_eq!(resp.status(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains(twice), "{page}");
    let long = "x".repeat(12_000);
    let resp = post(format!("csrf={csrf}&new={long}&confirm={long}"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("more than a form may hold (16 KiB)"),
        "{page}"
    );
    // A single sign-on page in a browser is a page; our own plain answers
    // stay as they are.
    let resp = browser
        .get(format!("{}/oidc/continue?request=a&request=b", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let resp = browser
        .get(format!("{}/help/img/none.png", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text().await.unwrap(), "no such picture");
}

/// The help-desk console's answers carry the site's headers: never
/// framed, never cached.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_never_framed_or_cached() {
    let ts = TestServer::start().await;
    let client = ts
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/helpdesk", "/helpdesk/audit", "/helpdesk/users/cs0001"] {
        let resp = client
            .get(format!("{}{path}", ts.url))
            .send()
            .await
            .unwrap();
        let h = resp.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
}

/// A test push that names both an officer and a device goes to that
/// device only if it is the officer's: another officer's device is
/// refused as no device, and nothing is created for either.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_naming_an_officer_and_another_officers_device_is_refused() {
    let ts = TestServer::start().await;
    ts.add_user("cs0150");
    ts.add_user("cs0151");
    let own = ts.enroll("cs0150").await;
    let other = ts.enroll("cs0151").await;
    let push = |device: &str| {
        ts.http
            .post(format!("{}/api/v1/admin/push", ts.url))
            .bearer_auth(&ts.admin_token)
            .json(&serde_json::json!({"username": "cs0150", "device_id": device, "application": "LETS"}))
            .send()
    };
    let pending = |username: &str| {
        let user = ts.server.user(username).unwrap();
        ts.server.store.challenges_of(user.id, 10).unwrap().len()
    };
    let (status, code) = error_code(push(other.id()).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (409, "no_device"));
    assert_eq!((pending("cs0150"), pending("cs0151")), (0, 0));
    let resp = push(own.id()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["device_id"].as_str(), Some(own.id()));
    assert_eq!((pending("cs0150"), pending("cs0151")), (1, 0));
}

//! The direct MFA API: an application that keeps its own passwords asks
//! for a number-matched push (a sign-in challenge naming it, whose number
//! it shows) or checks a code from the officer's app, authenticated as a
//! registered confidential client.

use super::*;
use countersign_core::protocol::ChallengeKind;

#[tokio::test(flavor = "multi_thread")]
async fn an_application_runs_the_second_factor_and_reads_the_verdict() {
    let sso = Sso::start().await;
    let ts = &sso.ts;
    let (_, dev) = sso.officer("cs0761").await;
    let other_secret = ts
        .server
        .add_client(
            client("artic", "ARTIC", "https://artic.example/cb"),
            "test",
            1,
        )
        .unwrap()
        .unwrap()
        .to_string();
    let api = |path: &str, who: (&str, &str)| {
        ts.http
            .post(format!("{}{path}", ts.url))
            .basic_auth(who.0, Some(who.1.to_string()))
    };
    let lets = ("lets", sso.lets_secret.as_str());

    // A push naming LETS, as a sign-in; the number is LETS's to show.
    let r = api("/api/v1/mfa/push", lets)
        .json(&serde_json::json!({ "username": "cs0761", "ip": "198.51.100.4" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let push: Value = r.json().await.unwrap();
    let id = push["transaction"].as_str().unwrap().to_string();
    let number = push["number"].as_u64().unwrap() as u8;
    let pending = dev.poll(ts, 5).await;
    let envelope = pending
        .iter()
        .find(|e| e.challenge.id == id)
        .expect("the push");
    assert_eq!(envelope.challenge.application, "LETS");
    assert_eq!(envelope.challenge.kind, ChallengeKind::SignIn);
    assert_eq!(envelope.challenge.ip, "198.51.100.4");

    // Another application cannot read it; a wrong secret is refused.
    let verdict_url = format!("{}/api/v1/mfa/push/{id}?wait=5", ts.url);
    let r = ts
        .http
        .get(&verdict_url)
        .basic_auth("artic", Some(&other_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = ts
        .http
        .get(&verdict_url)
        .basic_auth("lets", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // LETS waits for the verdict while the officer approves.
    let waiting = ts
        .http
        .get(&verdict_url)
        .basic_auth("lets", Some(&sso.lets_secret))
        .send();
    let response = dev.response(&id, Decision::Approve, Some(number));
    let answered = dev.answer(ts, &response);
    let (r, _) = tokio::join!(waiting, answered);
    let verdict: Value = r.unwrap().json().await.unwrap();
    assert_eq!(verdict["status"], "approved", "{verdict}");
    assert_eq!(verdict["amr"], serde_json::json!(["swk", "user"]));

    // A code from the officer's app: allowed once, then refused as a replay.
    let code = dev.otp().code(countersign_server::now());
    let check = |code: String| {
        api("/api/v1/mfa/code", lets)
            .json(&serde_json::json!({ "username": "cs0761", "code": code }))
            .send()
    };
    let r: Value = check(code.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(r, serde_json::json!({ "result": "allow", "amr": ["otp"] }));
    let r: Value = check(code).await.unwrap().json().await.unwrap();
    assert_eq!(r["result"], "deny");

    // The prompt's address must be an address; an officer without the
    // app cannot be locked out by codes sent for them.
    let r = api("/api/v1/mfa/push", lets)
        .json(&serde_json::json!({ "username": "cs0761", "ip": "Help desk: approve 42" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    ts.add_user("cs0762");
    for _ in 0..6 {
        let r = api("/api/v1/mfa/code", lets)
            .json(&serde_json::json!({ "username": "cs0762", "code": "000000" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
    }
    assert_eq!(ts.server.user("cs0762").unwrap().locked_until, 0);
    // Scheme names are case-insensitive.
    let r = ts
        .http
        .get(&verdict_url)
        .header(
            "authorization",
            format!(
                "basic {}",
                data_encoding::BASE64.encode(format!("lets:{}", sso.lets_secret).as_bytes())
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A public client has no secret to prove itself with.
    let r = ts
        .http
        .post(format!("{}/api/v1/mfa/push", ts.url))
        .json(&serde_json::json!({ "username": "cs0761" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let rows: Vec<String> = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == "client:lets")
        .map(|e| format!("{} {}", e.action, e.outcome))
        .collect();
    let mut wanted = vec![
        "challenge.create ok",
        "totp.verify ok",
        "totp.verify refused",
    ];
    wanted.extend(["totp.verify refused"; 6]);
    assert_eq!(rows, wanted);
}

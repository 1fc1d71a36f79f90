//! Anonymous traffic: page loads by visitors who never sign in store
//! nothing, and a flood of refused `return_to` links writes one audit row
//! a minute per address, not one per request.

use futures_util::future::join_all;

use crate::common::TestServer;

fn session_rows(ts: &TestServer) -> i64 {
    countersign_testkit::postgres::sql(ts.dir.path(), "SELECT COUNT(*) FROM web_sessions", &[])[0]
        [0]
    .parse()
    .unwrap()
}

fn audit_rows(ts: &TestServer) -> usize {
    ts.server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn five_thousand_anonymous_page_loads_add_no_more_than_a_handful_of_rows() {
    let ts = TestServer::start_with(|c| {
        c.web.return_to_allow = vec!["https://app.example".into()];
    })
    .await;
    let (sessions, audit) = (session_rows(&ts), audit_rows(&ts));
    let paths = [
        "/signin",
        "/signin?return_to=https://evil.example/",
        "/signin?return_to=https://app.example.evil.example/",
        "/register",
        "/recover",
    ];
    for batch in 0..100 {
        let loads = (0..50).map(|i| {
            let url = format!("{}{}", ts.url, paths[(batch * 50 + i) % paths.len()]);
            let http = ts.http.clone();
            async move { http.get(url).send().await.unwrap().status().as_u16() }
        });
        for status in join_all(loads).await {
            assert_eq!(status, 200);
        }
    }
    let added_sessions = session_rows(&ts) - sessions;
    let added_audit = audit_rows(&ts) - audit;
    assert_eq!(added_sessions, 0, "session rows added");
    assert!(added_audit <= 3, "{added_audit} audit rows added");
}

#[tokio::test(flavor = "multi_thread")]
async fn ended_sessions_are_dropped_by_the_server() {
    let ts = TestServer::start().await;
    let mut ended = countersign_server::store::WebSession {
        id_hash: vec![1; 32],
        csrf: "x".into(),
        username: "cs0001".into(),
        stage: countersign_server::store::Stage::Done(None),
        sid: String::new(),
        authenticated_at: 0,
        return_to: String::new(),
        persistent: false,
        created_at: 1,
        expires_at: 2,
    };
    ts.server
        .store
        .write(0, |w| w.insert_session(&ended))
        .unwrap();
    ended.id_hash = vec![2; 32];
    ended.expires_at = countersign_server::now() + 3600;
    ts.server
        .store
        .write(0, |w| w.insert_session(&ended))
        .unwrap();
    // The sweeper's first run (at start) may already have dropped the
    // ended one; the live one is there either way.
    let before = session_rows(&ts);
    assert!((1..=2).contains(&before), "{before} sessions stored");
    // The sweeper drops them at start and every minute after.
    let ts = ts.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while session_rows(&ts) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(session_rows(&ts), 1, "only the live one is left");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_cookies_are_secure_http_only_lax_and_change_at_each_privilege_gain() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs1501");
    // A browser that shows every step (cookies are set on redirects).
    let pin = ts.server.tls_pin.unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(countersign_core::pin::PinnedVerifier::client_config(pin).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut step = |r: &reqwest::Response, jar: &mut Vec<String>| {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap().to_string();
            for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
                assert!(c.contains(flag), "{flag} in {c}");
            }
            let pair = c.split(';').next().unwrap().to_string();
            let name = pair.split('=').next().unwrap().to_string();
            jar.retain(|p| !p.starts_with(&format!("{name}=")));
            if name == "__Host-cs_session" {
                seen.push(pair.clone());
            }
            jar.push(pair);
        }
    };
    let token = |html: &str| super::between(html, "name=\"csrf\" value=\"", "\"").to_string();
    let get = |path: &str, jar: &Vec<String>| {
        http.get(format!("{}{path}", ts.url))
            .header("cookie", jar.join("; "))
            .send()
    };
    let r = get("/signin", &jar).await.unwrap();
    step(&r, &mut jar);
    assert!(jar.iter().any(|c| c.starts_with("__Host-cs_pre=")));
    let page = r.text().await.unwrap();
    let r = http
        .post(format!("{}/signin", ts.url))
        .header("cookie", jar.join("; "))
        .form(&[("csrf", token(&page).as_str()), ("email", "cs1501")])
        .send()
        .await
        .unwrap();
    step(&r, &mut jar);
    let page = get("/signin/password", &jar)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = http
        .post(format!("{}/signin/password", ts.url))
        .header("cookie", jar.join("; "))
        .form(&[("csrf", token(&page).as_str()), ("password", temp.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/signin/update-password");
    step(&r, &mut jar);
    // A session from the email step, a new one once the password was right.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(seen[0], seen[1]);
    // The old one no longer works.
    let old = vec![seen[0].clone()];
    let r = get("/signin/update-password", &old).await.unwrap();
    assert_eq!(r.headers()["location"], "/signin");
}

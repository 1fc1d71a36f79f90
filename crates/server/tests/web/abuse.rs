//! Anonymous traffic: page loads by visitors who never sign in store
//! nothing, and a flood of refused `return_to` links writes one audit row
//! a minute per address, not one per request.

use futures_util::future::join_all;

use crate::common::TestServer;

fn session_rows(ts: &TestServer) -> i64 {
    rusqlite::Connection::open(ts.dir.path().join("countersign.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM web_sessions", [], |r| r.get(0))
        .unwrap()
}

fn audit_rows(ts: &TestServer) -> usize {
    ts.server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .len()
}

#[tokio::test]
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

#[tokio::test]
async fn ended_sessions_are_dropped_by_the_server() {
    let ts = TestServer::start().await;
    let mut ended = countersign_server::store::WebSession {
        id_hash: vec![1; 32],
        csrf: "x".into(),
        username: "cs0001".into(),
        stage: "done".into(),
        pending: Default::default(),
        factor: None,
        challenge_id: String::new(),
        return_to: String::new(),
        persistent: false,
        created_at: 1,
        expires_at: 2,
    };
    ts.server.store.save_session(&ended).unwrap();
    ended.id_hash = vec![2; 32];
    ended.expires_at = countersign_server::now() + 3600;
    ts.server.store.save_session(&ended).unwrap();
    assert_eq!(session_rows(&ts), 2);
    // The sweeper drops them at start and every minute after.
    let ts = ts.restart().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while session_rows(&ts) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(session_rows(&ts), 1, "only the live one is left");
}

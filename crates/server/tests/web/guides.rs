//! The guides' steps that once led an officer astray (issue 16): a test
//! push nobody answers shows the error and "Resend notification" and sends
//! a new push only when asked; a refusal (the push limit) is a page, never
//! a JSON body.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_test_push_offers_resend_and_a_limit_is_a_page() {
    let ts = TestServer::start_with(|c| {
        c.push.ttl_seconds = 1;
        c.push.max_per_window = 2;
    })
    .await;
    let temp = ts.add_user("cs0341");
    let b = Browser::new(&ts);
    let (path, page) = b.change_temporary("cs0341", &temp).await;
    assert_eq!(path, "/signin/register");
    let enrollment = countersign_core::Enrollment::parse(
        &between(&page, "<p class=\"payload\" id=\"payload\">", "<").replace("&amp;", "&"),
    )
    .unwrap();
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    assert_eq!(ts.activate(&enrollment.code, &key).await.status(), 200);

    // The test push; nobody enters the number, and it expires.
    let (_, path, page) = b.get("/signin/register/test").await;
    assert_eq!(path, "/signin/register/test");
    let first = between(&page, "data-id=\"", "\"").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Where the page goes when the push ends: the error and the way on,
    // as often as it is loaded, with no new push.
    for _ in 0..2 {
        let (status, path, page) = b.get("/signin/register/done?status=expired").await;
        assert_eq!((status, path.as_str()), (200, "/signin/register/done"));
        assert!(page.contains("The notification expired"), "{page}");
        assert!(page.contains("Resend notification"), "{page}");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let pushes = |ts: &TestServer| {
        ts.server
            .store
            .audit_entries(&Default::default())
            .unwrap()
            .iter()
            .filter(|e| e.action == "challenge.create" && e.outcome == "ok")
            .count()
    };
    assert_eq!(pushes(&ts), 1, "no push was sent unasked");

    // "Resend notification": a new push, with a new number.
    let (_, _, page) = b.get("/signin/register/done").await;
    let (_, path, page) = b.post("/signin/register/resend", &page, &[]).await;
    assert_eq!(path, "/signin/register/test");
    assert_ne!(between(&page, "data-id=\"", "\""), first);
    assert_eq!(pushes(&ts), 2);

    // Past the push limit, the page says so (as a page, with the way on).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, _, page) = b.get("/signin/register/done").await;
    let r = b
        .http
        .post(format!("{}/signin/register/resend", ts.url))
        .form(&[("csrf", between(&page, "name=\"csrf\" value=\"", "\""))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(!page.trim_start().starts_with('{'), "{page}");
    assert!(page.contains("Resend notification"), "the way on: {page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_officer_changes_the_password_once_in_24_hours_from_my_sign_ins() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs0351");
    let b = Browser::new(&ts);
    let (_, page) = b.change_temporary("cs0351", &temp).await;
    b.skip_setup(&page).await;
    // The forced change was two days ago.
    let user = ts.server.user("cs0351").unwrap();
    let hash = countersign_server::domain::accounts::hash_password(NEW).unwrap();
    let t = countersign_server::now();
    ts.server
        .store
        .write(t, |w| w.set_password(user.id, &hash, None, t - 2 * 86_400))
        .unwrap();
    // Another browser is signed in with the old password.
    let other = Browser::new(&ts);
    let (_, path, _) = other.sign_in("cs0351", NEW).await;
    assert_eq!(
        path, "/signin/stay",
        "setup was skipped: not asked again yet"
    );

    let (_, _, my) = b.get("/my").await;
    assert!(my.contains("Change password"), "{my}");
    let (_, path, page) = b.get("/my/password").await;
    assert_eq!(path, "/my/password");
    let second = "Another-Horse-8-Battery";
    let (status, _, refused) = b
        .post(
            "/my/password",
            &page,
            &[("current", "not-it"), ("new", second), ("confirm", second)],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        refused.contains("The current password is not correct."),
        "{refused}"
    );
    let (status, _, done) = b
        .post(
            "/my/password",
            &page,
            &[("current", NEW), ("new", second), ("confirm", second)],
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("Your password was changed."), "{done}");
    // The other browser is signed out; this one is not.
    let (_, path, _) = other.get("/signin/stay").await;
    assert_eq!(path, "/signin");
    let (_, path, page) = b.get("/my/password").await;
    assert_eq!(path, "/my/password");
    // Again the same day, and back to an earlier password: both rules.
    let (status, _, refused) = b
        .post(
            "/my/password",
            &page,
            &[("current", second), ("new", NEW), ("confirm", NEW)],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        refused.contains("You cannot change your password more than once in 24 hours."),
        "{refused}"
    );
    assert!(refused.contains("must differ from your last"), "{refused}");
    assert!(ts
        .server
        .check_password("cs0351", second, "192.0.2.1", t)
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_starts_with_more_information() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs0361");
    let b = Browser::new(&ts);
    let (_, _, page) = b.sign_in("cs0361", &temp).await;
    // Posted as a browser does, without the helper that passes the page.
    let r = b
        .http
        .post(format!("{}/signin/update-password", ts.url))
        .form(&[
            ("csrf", between(&page, "name=\"csrf\" value=\"", "\"")),
            ("current", &temp),
            ("new", NEW),
            ("confirm", NEW),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/signin/register/intro");
    let page = r.text().await.unwrap();
    for words in [
        "More information required",
        "Your organization needs more information to keep your account secure.",
        "Use a different account",
        "Next",
    ] {
        assert!(page.contains(words), "{words}: {page}");
    }
    let (_, path, page) = b
        .get(between(&page, "class=\"button\" href=\"", "\""))
        .await;
    assert_eq!(path, "/signin/register");
    assert!(page.contains("Keep your account secure"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_organisations_logo_heads_every_page() {
    // Countersign's own by default.
    let ts = TestServer::start().await;
    let b = Browser::new(&ts);
    let (_, _, page) = b.get("/signin").await;
    assert!(
        page.contains("src=\"/static/logo\" alt=\"ALEA logo\""),
        "{page}"
    );
    let r = b
        .http
        .get(format!("{}/static/logo", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().starts_with("<svg"));

    // The agency's own, from the configuration.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("agency.png");
    let bytes = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    std::fs::write(&png, &bytes).unwrap();
    let logo = png.clone();
    let ts = TestServer::start_with(move |c| c.web.logo = Some(logo)).await;
    let r = Browser::new(&ts)
        .http
        .get(format!("{}/static/logo", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);

    // A file that is not a picture, or is not there, is refused at start.
    let mut config = countersign_server::infra::config::Config::default();
    config.web.logo = Some(dir.path().join("agency.txt"));
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("web.logo") && e.contains(".png"), "{e}");
    config.web.logo = Some(dir.path().join("missing.png"));
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("not a readable file"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_help_center_holds_the_three_guides_in_this_deployments_terms() {
    let ts = TestServer::start_with(|c| {
        c.org_name = "Metro PD".into();
        c.email_domain = "metro.example".into();
        c.password.min_length = 16;
        c.users.skip_setup_hours = 12;
    })
    .await;
    let b = Browser::new(&ts);
    let (status, _, index) = b.get("/help").await;
    assert_eq!(status, 200);
    for (slug, title) in [
        ("sign-in-page", "The sign-in page"),
        ("first-sign-in", "Your first sign-in"),
        ("everyday-sign-in", "Signing in with Countersign"),
    ] {
        assert!(index.contains(&format!("href=\"/help/{slug}\"")), "{index}");
        let (status, _, page) = b.get(&format!("/help/{slug}")).await;
        assert_eq!(status, 200, "{slug}");
        assert!(page.contains(title), "{slug}");
        // The deployment's own words, no placeholder left over.
        assert!(
            page.contains("Metro PD") && !page.contains("{org}"),
            "{slug}"
        );
        assert!(
            !page.contains("{domain}") && !page.contains("{rules}"),
            "{slug}"
        );
    }
    let (_, _, first) = b.get("/help/first-sign-in").await;
    assert!(first.contains("At least 16 characters"), "{first}");
    assert!(first.contains("@metro.example"), "{first}");
    assert!(first.contains("again in 12 hours"), "{first}");
    // The default template, explained and worked through for Clark Kent.
    assert!(first.contains("<code>New$Alacop#k4321c</code>"), "{first}");
    assert!(first.contains("your last initial, lower case"), "{first}");

    // A picture a guide shows is served; unknown ones and guides are not.
    let r = b
        .http
        .get(format!("{}/help/img/signin.png", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    for path in [
        "/help/img/nothing.png",
        "/help/img/signin.txt",
        "/help/nothing",
    ] {
        let r = b
            .http
            .get(format!("{}{path}", ts.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

//! Account takeover with the password alone: a session that reached
//! registration before the account had a method must prove one of the
//! methods registered since before it can change methods or finish signing
//! in (issue: "A session that reached registration with the password alone
//! keeps that power").

use countersign_core::api::ActivateResponse;
use countersign_core::protocol::Decision;
use countersign_core::SigningKey;
use countersign_server::domain::methods::Authority;
use countersign_server::now;
use ring::rand::SystemRandom;

use super::methods::first_sign_in;
use super::{answers, approve_from_page, as_refs, assert_audited, between, Browser, NEW};
use crate::common::{TestDevice, TestServer};

/// The enrollment payload on a registration page.
fn payload(page: &str) -> countersign_core::Enrollment {
    let uri = between(page, "<p class=\"payload\" id=\"payload\">", "<").replace("&amp;", "&");
    countersign_core::Enrollment::parse(&uri).unwrap()
}

/// Activates an app with the QR code on `page`.
async fn activate_from(ts: &TestServer, page: &str) -> (u16, Option<TestDevice>) {
    let enrollment = payload(page);
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let resp = ts.activate(&enrollment.code, &key).await;
    let status = resp.status().as_u16();
    if status != 200 {
        return (status, None);
    }
    let activation: ActivateResponse = resp.json().await.unwrap();
    let dev = TestDevice {
        key,
        activation,
        server_key: enrollment.server_key,
    };
    (status, Some(dev))
}

/// The officer's answers use questions 0, 2, 4, 6, 8; an attacker's 1, 3, …
fn other_answers() -> Vec<(String, &'static str)> {
    let mut f = answers();
    for (i, q) in ["1", "3", "5", "7", "9"].into_iter().enumerate() {
        f[2 * i].1 = q;
    }
    f
}

/// The officer registers the app (from the page's QR code, with the test
/// push) and the security questions, and signs in.
async fn officer_registers(ts: &TestServer, b: &Browser, page: &str) -> TestDevice {
    // A reload shows a new QR code; the one scanned is the first.
    let (_, path, _) = b.get("/signin/register").await;
    assert_eq!(path, "/signin/register");
    let (status, dev) = activate_from(ts, page).await;
    assert_eq!(status, 200);
    let dev = dev.unwrap();
    let (_, path, page) = b.get("/signin/register/test").await;
    assert_eq!(path, "/signin/register/test", "{page}");
    approve_from_page(ts, &dev, &page, Decision::Approve).await;
    let (_, _, page) = b.get("/signin/register/done").await;
    let (_, path, _) = b.post("/signin/register/finish", &page, &[]).await;
    assert_eq!(path, "/signin/register");
    let (_, _, page) = b.get("/signin/register?method=questions").await;
    let (_, path, page) = b
        .post("/signin/register/questions", &page, &as_refs(&answers()))
        .await;
    assert_eq!(path, "/signin/register/complete");
    let (_, path, page) = b.post("/signin/register/complete", &page, &[]).await;
    assert_eq!(path, "/signin/stay");
    let (_, path, _) = b.post("/signin/stay", &page, &[("stay", "no")]).await;
    assert_eq!(path, "/my");
    dev
}

fn questions_of(ts: &TestServer, user: &str) -> Vec<usize> {
    ts.server.methods(user).unwrap().questions
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_only_session_cannot_change_methods_or_finish_once_the_officer_registered() {
    let ts = TestServer::start().await;
    let officer = Browser::new(&ts);
    let officer_page = first_sign_in(&ts, &officer, "cs0901").await;

    // The attacker knows the password and reaches registration too.
    let attacker = Browser::new(&ts);
    let (_, path, attacker_page) = attacker.sign_in("cs0901", NEW).await;
    assert_eq!(path, "/signin/register");

    let _dev = officer_registers(&ts, &officer, &officer_page).await;
    assert_eq!(questions_of(&ts, "cs0901"), [0, 2, 4, 6, 8]);

    // Each of the attacker's old powers now leads to proving a factor, and
    // changes nothing: replacing the answers, the phone, finishing,
    // "Stay signed in", "My sign-ins".
    let (_, path, _) = attacker
        .post(
            "/signin/register/questions",
            &attacker_page,
            &as_refs(&other_answers()),
        )
        .await;
    assert_eq!(path, "/signin/mfa");
    assert_eq!(questions_of(&ts, "cs0901"), [0, 2, 4, 6, 8]);
    let (_, path, _) = attacker
        .post(
            "/signin/register/phone",
            &attacker_page,
            &[("phone", "(205) 555-0199"), ("channel", "sms")],
        )
        .await;
    assert_eq!(path, "/signin/mfa");
    assert!(
        !ts.dir.path().join("outbox").exists()
            || std::fs::read_dir(ts.dir.path().join("outbox"))
                .unwrap()
                .next()
                .is_none(),
        "no code was sent"
    );
    for (action, fields) in [
        ("/signin/register/complete", vec![]),
        ("/signin/register/skip", vec![]),
        ("/signin/stay", vec![("stay", "yes")]),
    ] {
        let (_, path, _) = attacker.post(action, &attacker_page, &fields).await;
        assert_eq!(path, "/signin/mfa", "{action}");
    }
    for page in ["/my", "/signin/register", "/signin/register/complete"] {
        let (_, path, _) = attacker.get(page).await;
        assert_eq!(path, "/signin/mfa", "{page}");
    }
    assert!(ts.server.methods("cs0901").unwrap().phone.is_none());

    // The QR code the attacker was shown no longer binds a device.
    let (status, _) = activate_from(&ts, &attacker_page).await;
    assert_eq!(status, 409);
    let officer_id = ts.server.user("cs0901").unwrap().id;
    assert_eq!(ts.server.store.devices_of(officer_id).unwrap().len(), 1);

    // The way on is the officer's app: the attacker's session waits for it.
    let (_, _, page) = attacker.get("/signin/mfa").await;
    assert!(page.contains("data-id=\""), "{page}");
    let (_, path, _) = attacker.get("/signin/mfa/done").await;
    assert_eq!(path, "/signin/mfa");
    assert_audited(&ts, &[("device.activate", "refused")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_signed_in_by_skipping_setup_must_prove_a_method_registered_since() {
    let ts = TestServer::start().await;
    let attacker = Browser::new(&ts);
    let page = first_sign_in(&ts, &attacker, "cs0902").await;
    let (_, path, _) = attacker.post("/signin/register/skip", &page, &[]).await;
    assert_eq!(path, "/signin/stay");
    let (_, _, page) = attacker.get("/signin/stay").await;
    let (_, path, _) = attacker
        .post("/signin/stay", &page, &[("stay", "yes")])
        .await;
    assert_eq!(path, "/my");

    // The officer registers from another browser once the grace is over…
    let id = ts.server.user("cs0902").unwrap().id;
    let t = countersign_server::now();
    ts.server
        .store
        .write(t, |w| w.set_skip_setup_until(id, t - 1))
        .unwrap();
    let officer = Browser::new(&ts);
    let (_, path, page) = officer.sign_in("cs0902", NEW).await;
    assert_eq!(path, "/signin/register");
    officer_registers(&ts, &officer, &page).await;

    // …and the attacker's 30-day session is no longer signed in.
    let (_, path, _) = attacker.get("/my").await;
    assert_eq!(path, "/signin/mfa");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_method_is_refused_once_another_browser_registered_one() {
    let ts = TestServer::start().await;
    let a = Browser::new(&ts);
    let page_a = first_sign_in(&ts, &a, "cs0903").await;
    let b = Browser::new(&ts);
    let (_, path, _) = b.sign_in("cs0903", NEW).await;
    assert_eq!(path, "/signin/register");
    let (_, _, page_b) = b.get("/signin/register?method=questions").await;

    // Browser A registers the questions first; B's page was already open.
    let (_, _, qa) = a.get("/signin/register?method=questions").await;
    let (_, path, _) = a
        .post("/signin/register/questions", &qa, &as_refs(&answers()))
        .await;
    assert_eq!(path, "/signin/register");
    let (_, path, _) = b
        .post(
            "/signin/register/questions",
            &page_b,
            &as_refs(&other_answers()),
        )
        .await;
    // Questions only: proving them is the way on.
    assert_eq!(path, "/signin/mfa/other");
    assert_eq!(questions_of(&ts, "cs0903"), [0, 2, 4, 6, 8]);
    drop(page_a);

    // In the domain, whatever the page: a password-only change of an
    // account that has a method is refused and audited.
    let chosen: Vec<(usize, String)> = other_answers()
        .chunks(2)
        .map(|p| (p[0].1.parse().unwrap(), p[1].1.to_string()))
        .collect();
    let refused = ts
        .server
        .register_answers("cs0903", &chosen, Authority::FirstMethod, "", now())
        .unwrap_err();
    assert_eq!(refused.code(), "methods_changed");
    assert!(ts
        .server
        .register_phone("cs0903", "+12055550199", Authority::FirstMethod, "", now())
        .is_err());
    assert_eq!(questions_of(&ts, "cs0903"), [0, 2, 4, 6, 8]);
    assert!(ts.server.methods("cs0903").unwrap().phone.is_none());
    assert_audited(
        &ts,
        &[
            ("method.questions.register", "refused"),
            ("method.phone.register", "refused"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn voided_activation_codes_do_not_count_as_the_app_being_activated() {
    let ts = TestServer::start().await;
    let attacker = Browser::new(&ts);
    // The attacker's page shows a QR code (its activation is remembered).
    let page = first_sign_in(&ts, &attacker, "cs0904").await;
    assert!(page.contains("data:image/png;base64,"));
    // The officer registers questions elsewhere, then removing the app (of
    // which there is none yet) voids every unused activation code.
    let officer = Browser::new(&ts);
    let (_, path, _) = officer.sign_in("cs0904", NEW).await;
    assert_eq!(path, "/signin/register");
    let (_, _, qa) = officer.get("/signin/register?method=questions").await;
    let (_, path, _) = officer
        .post("/signin/register/questions", &qa, &as_refs(&answers()))
        .await;
    assert_eq!(path, "/signin/register");
    ts.server
        .remove_method(
            "cs0904",
            countersign_server::domain::methods::MethodKind::App,
            "cs0904",
            "",
            now(),
        )
        .unwrap();
    // A voided code is not an activation: the attacker proves nothing.
    let (_, path, _) = attacker.get("/signin/register").await;
    assert!(path.starts_with("/signin/mfa"), "{path}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_factor_gained_by_registering_the_first_method_does_not_open_the_console() {
    let ts = TestServer::start().await;
    let b = Browser::new(&ts);
    let _ = first_sign_in(&ts, &b, "hd0905").await;
    ts.server
        .set_role(
            "hd0905",
            countersign_server::store::Role::Helpdesk,
            "admin",
            now(),
        )
        .unwrap();
    // Security questions chosen on the password alone, then Skip setup.
    let (_, _, qa) = b.get("/signin/register?method=questions").await;
    let (_, path, page) = b
        .post("/signin/register/questions", &qa, &as_refs(&answers()))
        .await;
    assert_eq!(path, "/signin/register");
    b.skip_setup(&page).await;
    b.console_needs_a_factor().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_methods_needs_a_recent_proof() {
    let ts = TestServer::start().await;
    let b = Browser::new(&ts);
    let dev = super::helpdesk::signed_in(&ts, &b, "cs0911").await;
    // The proof is an hour old now (a stolen stay-signed-in cookie, say).
    countersign_testkit::postgres::sql(
        ts.dir.path(),
        "UPDATE web_sessions SET factor_at = factor_at - 3600",
        &[],
    );
    let (_, _, my) = b.get("/my").await;
    let (_, path, page) = b
        .post("/my/methods/remove", &my, &[("method", "questions")])
        .await;
    assert_eq!(
        path, "/signin/mfa",
        "removing a method proves one again first"
    );
    let (_, path, my) = b.post("/my/back", &page, &[]).await;
    assert_eq!(path, "/my");
    assert_eq!(ts.server.methods("cs0911").unwrap().questions.len(), 5);
    let (_, path, page) = b.post("/my/methods/add", &my, &[]).await;
    assert_eq!(
        path, "/signin/mfa",
        "adding a method proves one again first"
    );
    assert!(page.contains("Verify your identity"), "{page}");
    let (_, path, _) = b.get("/my").await;
    assert_eq!(path, "/signin/mfa", "nothing else until it is proven");
    // "Cancel" goes back, still stale: the next change asks again.
    let (_, path, my) = b.post("/my/back", &page, &[]).await;
    assert_eq!(path, "/my");
    let (_, path, page) = b.post("/my/methods/add", &my, &[]).await;
    assert_eq!(path, "/signin/mfa");
    approve_from_page(&ts, &dev, &page, Decision::Approve).await;
    let (_, path, my) = b.get("/signin/mfa/done").await;
    assert_eq!(path, "/my", "proven, back to My sign-ins");
    // Now fresh: adding goes on; "Cancel" there is back to My sign-ins.
    let (_, path, _) = b.post("/my/methods/add", &my, &[]).await;
    assert_eq!(path, "/signin/register/choose");
    let (_, _, register) = b.get("/signin/register").await;
    let (_, path, _) = b.post("/my/back", &register, &[]).await;
    assert_eq!(path, "/my");
}

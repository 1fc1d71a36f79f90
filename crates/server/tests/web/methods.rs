//! The methods besides the app through the pages: a phone (codes by text
//! and call through the outbox gateway), security questions, recovery with
//! the CAPTCHA, and adding and removing methods on "My sign-ins".

use super::{answers, as_refs, assert_audited, between, Browser, NEW};
use crate::common::TestServer;

/// The newest message in the outbox: (channel, the six-digit code).
pub fn last_message(ts: &TestServer) -> (String, String) {
    countersign_testkit::outbox::newest(&ts.dir.path().join("outbox"))
}

/// Signs in with the temporary password and sets [`NEW`]; returns the
/// registration page.
pub(super) async fn first_sign_in(ts: &TestServer, b: &Browser, user: &str) -> String {
    let temp = ts.add_user(user);
    let (path, page) = b.change_temporary(user, &temp).await;
    assert_eq!(path, "/signin/register");
    page
}

/// "Can't access your account?" for `email`, reading the CAPTCHA; a
/// misread picture is tried again with the next one, as a person would.
async fn start_recovery(b: &Browser, email: &str) -> (u16, String, String) {
    let (_, _, mut page) = b.get("/recover").await;
    for _ in 0..3 {
        let answer = read_captcha(&page);
        let (status, path, next) = b
            .post("/recover", &page, &[("email", email), ("captcha", &answer)])
            .await;
        if !(status == 401 && next.contains("didn't match the picture")) {
            return (status, path, next);
        }
        page = next;
    }
    panic!("the CAPTCHA was misread three times");
}

/// An officer signed in once, with security questions: one who may
/// recover the account online.
async fn recoverable(ts: &TestServer, username: &str) {
    let _ = first_sign_in(ts, &Browser::new(ts), username).await;
    let chosen: Vec<(usize, String)> = answers()
        .chunks(2)
        .map(|p| (p[0].1.parse().unwrap(), p[1].1.to_string()))
        .collect();
    ts.server
        .register_answers(
            username,
            &chosen,
            countersign_server::domain::methods::Authority::Proven,
            "",
            countersign_server::now(),
        )
        .unwrap()
        .unwrap();
}

/// The CAPTCHA on `page`, as read by the test suite's reader.
fn read_captcha(page: &str) -> String {
    countersign_testkit::captcha::solve(
        &captcha_png(page),
        &countersign_server::domain::captcha::font(),
        countersign_server::domain::captcha::CELL,
        countersign_server::domain::captcha::LENGTH,
    )
}

fn captcha_png(page: &str) -> Vec<u8> {
    let b64 = between(page, "id=\"captcha\" src=\"data:image/png;base64,", "\"");
    data_encoding::BASE64.decode(b64.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn phone_registration_then_sign_in_by_text_and_call() {
    let ts = TestServer::start_with(|c| c.telephony.max_per_window = 3).await;
    let b = Browser::new(&ts);
    let _ = first_sign_in(&ts, &b, "cs0701").await;

    // No app: "I want to set up a different method" → Phone.
    let (_, _, page) = b.get("/signin/register?method=phone").await;
    assert!(page.contains("Method 1 of 2: Phone"), "{page}");
    let (status, _, page) = b
        .post(
            "/signin/register/phone",
            &page,
            &[("phone", "555-0123"), ("channel", "sms")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        page.contains("That phone number can't be used: enter a 10-digit number"),
        "{page}"
    );
    let (_, path, page) = b
        .post(
            "/signin/register/phone",
            &page,
            &[("phone", "(205) 555-0123"), ("channel", "sms")],
        )
        .await;
    assert_eq!(path, "/signin/register/phone/verify");
    assert!(
        page.contains("We just sent a 6 digit code to +XXXXXXXXX23"),
        "{page}"
    );
    let (channel, code) = last_message(&ts);
    assert_eq!(channel, "sms");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, _, page) = b
        .post("/signin/register/phone/verify", &page, &[("code", wrong)])
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("That code didn't work."));
    let (_, _, page) = b
        .post("/signin/register/phone/verify", &page, &[("code", &code)])
        .await;
    assert!(
        page.contains("Verification complete. Your phone has been registered."),
        "{page}"
    );
    assert_eq!(
        ts.server.methods("cs0701").unwrap().phone.as_deref(),
        Some("+12055550123")
    );

    // Second method: questions; then the confirmation and "Stay signed in?".
    let (_, _, page) = b.get("/signin/register").await;
    assert!(page.contains("Method 2 of 2: Countersign app"), "{page}");
    let (_, _, page) = b.get("/signin/register?method=questions").await;
    let (_, path, page) = b
        .post("/signin/register/questions", &page, &as_refs(&answers()))
        .await;
    assert_eq!(path, "/signin/register/complete");
    assert!(page.contains("Phone +XXXXXXXXX23"), "{page}");
    let (_, path, _) = b.post("/signin/register/complete", &page, &[]).await;
    assert_eq!(path, "/signin/stay");

    // Next sign-in: no app, so the other methods are offered; a call.
    let b = Browser::new(&ts);
    let (_, path, page) = b.sign_in("cs0701", NEW).await;
    assert_eq!(path, "/signin/mfa/other");
    assert!(
        page.contains("Text +XXXXXXXXX23") && page.contains("Call +XXXXXXXXX23"),
        "{page}"
    );
    assert!(
        !page.contains("security questions"),
        "questions are not a sign-in method here"
    );
    let (_, path, page) = b
        .post("/signin/mfa/phone/send", &page, &[("channel", "voice")])
        .await;
    assert_eq!(path, "/signin/mfa/phone");
    assert!(page.contains("We're calling +XXXXXXXXX23 now."), "{page}");
    let (channel, code) = last_message(&ts);
    assert_eq!(channel, "voice");
    let (_, path, page) = b.post("/signin/mfa/phone", &page, &[("code", &code)]).await;
    assert_eq!(path, "/signin/stay");
    let _ = page;

    // Another message's code is refused; and sending is limited per account.
    let b = Browser::new(&ts);
    let (_, _, page) = b.sign_in("cs0701", NEW).await;
    let (_, _, page) = b
        .post("/signin/mfa/phone/send", &page, &[("channel", "sms")])
        .await;
    let (status, _, _) = b.post("/signin/mfa/phone", &page, &[("code", &code)]).await;
    assert_eq!(status, 401, "the call's code does not work for this text");
    let (_, _, page) = b.get("/signin/mfa/other").await;
    let (status, _, page) = b
        .post("/signin/mfa/phone/send", &page, &[("channel", "sms")])
        .await;
    assert_eq!(status, 429, "three codes in the window");
    assert!(
        page.contains("Too many codes were sent to this account."),
        "{page}"
    );

    assert_audited(
        &ts,
        &[
            ("method.phone.send", "register"),
            ("method.phone.check", "refused"),
            ("method.phone.register", "ok"),
            ("method.questions.register", "ok"),
            ("method.phone.send", "signin"),
            ("method.phone.check", "ok"),
        ],
    );
    let log = std::fs::read_to_string(
        ts.dir
            .path()
            .join("outbox")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let in_audit = format!(
        "{:?}",
        ts.server.store.audit_entries(&Default::default()).unwrap()
    );
    assert!(
        !in_audit.contains(&countersign_testkit::outbox::code_in(&log)),
        "no code in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_test_solver_reads_the_captcha() {
    // The recovery tests depend on this; it also measures how weak the
    // CAPTCHA is against a simple script.
    let rng = ring::rand::SystemRandom::new();
    let mut read = 0;
    for _ in 0..50 {
        let c = countersign_server::domain::captcha::generate(&rng).unwrap();
        let got = countersign_testkit::captcha::solve(
            &c.png,
            &countersign_server::domain::captcha::font(),
            countersign_server::domain::captcha::CELL,
            countersign_server::domain::captcha::LENGTH,
        );
        if got == c.answer {
            read += 1;
        } else {
            eprintln!("{} read as {got}", c.answer);
            std::fs::write(format!("/tmp/captcha-{}.png", c.answer), &c.png).unwrap();
        }
    }
    assert!(read >= 48, "read {read} of 50");
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_needs_the_captcha_a_method_and_a_password_under_the_rules() {
    let ts = TestServer::start().await;
    let earlier = Browser::new(&ts);
    let _ = first_sign_in(&ts, &earlier, "cs0801").await;
    // App and questions.
    let _dev = ts.enroll("cs0801").await;
    ts.server
        .register_answers(
            "cs0801",
            &answers()
                .chunks(2)
                .map(|p| (p[0].1.parse().unwrap(), p[1].1.to_string()))
                .collect::<Vec<_>>(),
            countersign_server::domain::methods::Authority::Proven,
            "",
            countersign_server::now(),
        )
        .unwrap()
        .unwrap();
    // Someone who never finished the first sign-in can't recover.
    ts.add_user("cs0802");

    let b = Browser::new(&ts);
    let (_, _, page) = b.get("/recover").await;
    assert!(page.contains("Email or Username"));
    let (status, _, page) = b
        .post(
            "/recover",
            &page,
            &[("email", "cs0801"), ("captcha", "XXXXX")],
        )
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("didn't match the picture"), "{page}");
    for unknown in ["cs0802@alacop.gov", "nobody"] {
        let (_, _, page) = start_recovery(&Browser::new(&ts), unknown).await;
        assert!(
            page.contains("We can't reset this account's password online."),
            "{unknown}: {page}"
        );
    }

    let (_, path, page) = start_recovery(&b, "CS0801@alacop.gov").await;
    assert_eq!(
        path, "/signin/mfa",
        "the app's request is the default proof"
    );
    assert!(page.contains("Verify your identity"), "{page}");
    // The phone's prompt says it is a recovery, not a sign-in.
    let user = ts.server.store.user_by_name("cs0801").unwrap().unwrap();
    let asked = ts.server.store.challenges_of(user.id, 1).unwrap();
    assert_eq!(
        asked[0].challenge.application,
        "Account recovery (password reset)"
    );
    let (_, _, page) = b.get("/signin/mfa/other").await;
    assert!(page.contains("Answer my security questions"), "{page}");
    let (_, _, page) = b.get("/signin/mfa/questions").await;
    let asked: Vec<String> = page
        .split("<label for=\"a")
        .skip(1)
        .map(|l| between(l, "\">", "<").replace("&#39;", "'"))
        .collect();
    assert_eq!(asked.len(), 3, "{page}");
    let all = answers();
    let answer_to = |q: &str| {
        let n = countersign_core::methods::SECURITY_QUESTIONS
            .iter()
            .position(|x| *x == q)
            .unwrap()
            .to_string();
        let i = all.iter().position(|(_, v)| *v == n).unwrap();
        all[i + 1].1.to_lowercase()
    };
    let fields = ["a0", "a1", "a2"];
    let wrong: Vec<(&str, &str)> = fields.iter().map(|f| (*f, "not it")).collect();
    let (status, _, page) = b.post("/signin/mfa/questions", &page, &wrong).await;
    assert_eq!(status, 401);
    assert!(page.contains("One or more answers didn't match."));
    let answers: Vec<String> = asked.iter().map(|q| answer_to(q)).collect();
    let right: Vec<(&str, &str)> = fields
        .into_iter()
        .zip(answers.iter().map(String::as_str))
        .collect();
    let (_, path, page) = b.post("/signin/mfa/questions", &page, &right).await;
    assert_eq!(path, "/recover/password");

    let (status, _, page) = b
        .post(
            "/recover/password",
            &page,
            &[("new", "short"), ("confirm", "short")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("at least 14 characters"), "{page}");
    let (status, _, page) = b
        .post(
            "/recover/password",
            &page,
            &[("new", NEW), ("confirm", NEW)],
        )
        .await;
    assert_eq!(status, 422, "one of the last 24");
    assert!(
        page.contains("must differ from your last 24 passwords"),
        "{page}"
    );
    let newer = "Another-Long-Pass-42";
    let (_, _, page) = b
        .post(
            "/recover/password",
            &page,
            &[("new", newer), ("confirm", newer)],
        )
        .await;
    assert!(page.contains("Your password has been reset"), "{page}");
    assert_eq!(
        b.get("/recover/password").await.1,
        "/signin",
        "the recovery session ended"
    );
    assert_eq!(
        earlier.get("/my").await.1,
        "/signin",
        "a session from before the recovery ended too"
    );

    let (_, path, _) = Browser::new(&ts).sign_in("cs0801", newer).await;
    assert_eq!(path, "/signin/mfa");
    assert_audited(
        &ts,
        &[
            ("recover.start", "refused"),
            ("recover.start", "ok"),
            ("method.questions.check", "refused"),
            ("method.questions.check", "ok"),
            ("password.recover", "refused"),
            ("password.recover", "ok"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn methods_are_added_and_removed_on_my_sign_ins() {
    let ts = TestServer::start().await;
    let b = Browser::new(&ts);
    let _ = first_sign_in(&ts, &b, "cs0901").await;
    let (_, _, page) = b.get("/signin/register?method=questions").await;
    let (_, _, page) = b
        .post("/signin/register/questions", &page, &as_refs(&answers()))
        .await;
    assert!(page.contains("Method 2 of 2"), "{page}");
    let (_, path, page) = b.post("/signin/register/skip", &page, &[]).await;
    assert_eq!(path, "/signin/stay");
    let (_, path, page) = b.post("/signin/stay", &page, &[("stay", "no")]).await;
    assert_eq!(path, "/my");
    assert!(
        page.contains("Your organization requires two sign-in methods."),
        "{page}"
    );

    // The only method can't go.
    let (_, _, only) = b.get("/my/methods/remove?method=questions").await;
    assert!(only.contains("This is your only sign-in method"), "{only}");

    // Add a phone from "My sign-ins".
    let (_, path, page) = b.post("/my/methods/add", &page, &[]).await;
    assert_eq!(path, "/signin/register/choose");
    assert!(
        page.contains(">Phone<") && !page.contains(">Security questions<"),
        "{page}"
    );
    let (_, _, page) = b.get("/signin/register?method=phone").await;
    let (_, _, page) = b
        .post(
            "/signin/register/phone",
            &page,
            &[("phone", "+1 205 555 0199"), ("channel", "sms")],
        )
        .await;
    let (_, code) = last_message(&ts);
    let (_, _, page) = b
        .post("/signin/register/phone/verify", &page, &[("code", &code)])
        .await;
    let next = between(&page, "<a class=\"button\" href=\"", "\"").to_string();
    assert_eq!(next, "/my?added=1");
    let (_, _, page) = b.get(&next).await;
    assert!(
        page.contains("The sign-in method was added.") && page.contains("Phone: +XXXXXXXXX99"),
        "{page}"
    );

    // Remove the questions, after the confirmation.
    let (_, _, page) = b.get("/my/methods/remove?method=questions").await;
    assert!(page.contains("Remove your security questions?"), "{page}");
    let (_, path, page) = b
        .post("/my/methods/remove", &page, &[("method", "questions")])
        .await;
    assert_eq!(path, "/my");
    assert!(
        page.contains("The sign-in method was removed.") && !page.contains("Security questions ("),
        "{page}"
    );
    assert!(ts.server.methods("cs0901").unwrap().questions.is_empty());
    let removed = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .any(|e| e.action == "method.remove" && e.detail == "questions" && e.outcome == "ok");
    assert!(removed);
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_is_limited_per_account() {
    let ts = TestServer::start().await;
    recoverable(&ts, "cs0811").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let b = Browser::new(&ts);
        let (status, path, page) = start_recovery(&b, "cs0811").await;
        statuses.push((status, path.clone()));
        if status == 429 {
            assert!(
                page.contains("Too many attempts to recover this account"),
                "{page}"
            );
        }
    }
    let ok = statuses
        .iter()
        .filter(|(_, p)| p.starts_with("/signin/mfa"))
        .count();
    assert_eq!(ok, 5, "{statuses:?}");
    assert_eq!(statuses[5].0, 429, "{statuses:?}");
}

/// Recoveries started at once get the limit and no more: the count and
/// the row that counts each are one write.
#[tokio::test(flavor = "multi_thread")]
async fn recoveries_started_at_once_get_the_limit_and_no_more() {
    let ts = TestServer::start().await;
    recoverable(&ts, "cs0812").await;
    // Every picture read first, then every form sent at once.
    let mut forms = Vec::new();
    while forms.len() < 12 {
        let b = Browser::new(&ts);
        let (_, _, page) = b.get("/recover").await;
        let answer = read_captcha(&page);
        forms.push((b, page, answer));
    }
    let fields: Vec<[(&str, &str); 2]> = forms
        .iter()
        .map(|(_, _, answer)| [("email", "cs0812"), ("captcha", answer.as_str())])
        .collect();
    let posts = forms.iter().zip(&fields);
    let results = futures_util::future::join_all(
        posts.map(|((b, page, _), fields)| b.post("/recover", page, fields)),
    )
    .await;
    let count = |status: u16| results.iter().filter(|r| r.0 == status).count();
    let started = results
        .iter()
        .filter(|r| r.1.starts_with("/signin/mfa"))
        .count();
    let seen: Vec<_> = results.iter().map(|r| (r.0, &r.1)).collect();
    // A misread picture (401) is refused before the account is counted.
    assert_eq!(started, 5, "{seen:?}");
    assert_eq!(count(429) + count(401), 7, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn phone_codes_are_single_use_bound_to_their_purpose_and_tried_five_times() {
    use countersign_core::methods::PhoneNumber;
    use countersign_server::domain::methods::Purpose;
    use countersign_server::infra::telephony::Channel;
    let ts = TestServer::start_with(|c| c.lockout.max_failures = 50).await;
    ts.add_user("cs0721");
    let phone = PhoneNumber::parse("205 555 0100").unwrap();
    let t = countersign_server::now();
    let send = |at: u64| {
        let server = ts.server.clone();
        let phone = phone.clone();
        async move {
            server
                .send_phone_code(
                    "cs0721",
                    Some(&phone),
                    Channel::Sms,
                    Purpose::SignIn,
                    "",
                    at,
                )
                .await
                .unwrap()
        }
    };
    let check = |id: &str, code: &str, purpose: Purpose| {
        ts.server
            .check_phone_code("cs0721", id, code, purpose, "", t)
    };

    // Right code, wrong purpose: refused; right purpose: once.
    let id = send(t).await;
    let (_, code) = last_message(&ts);
    assert_eq!(
        check(&id, &code, Purpose::Recover).unwrap_err().code(),
        "no_code"
    );
    assert_eq!(
        check(&id, &code, Purpose::SignIn).unwrap().as_deref(),
        Some("+12055550100")
    );
    assert_eq!(
        check(&id, &code, Purpose::SignIn).unwrap_err().code(),
        "code_expired"
    );

    // Five wrong tries end a code, even for the right one after them.
    let id = send(t).await;
    let (_, code) = last_message(&ts);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(check(&id, wrong, Purpose::SignIn).unwrap(), None);
    }
    assert_eq!(
        check(&id, &code, Purpose::SignIn).unwrap_err().code(),
        "code_expired"
    );

    // Guesses sent at once share the same five tries, no more.
    let id = send(t).await;
    let (_, code) = last_message(&ts);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let judged = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..24)
            .map(|_| scope.spawn(|| check(&id, wrong, Purpose::SignIn)))
            .collect();
        guesses
            .into_iter()
            .map(|g| g.join().unwrap())
            .filter(|g| matches!(g, Ok(None)))
            .count()
    });
    assert_eq!(judged, 5, "wrong guesses judged out of 24 sent at once");

    // A code past its minutes is refused. (Its file sorts first by time:
    // clear the outbox so it is the one read.)
    std::fs::remove_dir_all(ts.dir.path().join("outbox")).unwrap();
    let id = send(t - 10 * 60).await;
    let (_, code) = last_message(&ts);
    assert_eq!(
        check(&id, &code, Purpose::SignIn).unwrap_err().code(),
        "code_expired"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_removals_at_once_never_leave_an_account_without_a_method() {
    use countersign_server::domain::methods::{Authority, MethodKind};
    let ts = TestServer::start().await;
    ts.add_user("cs0723");
    let t = countersign_server::now();
    ts.server
        .register_phone("cs0723", "+12055550100", Authority::FirstMethod, "", t)
        .unwrap();
    ts.enroll("cs0723").await;
    assert_eq!(ts.server.methods("cs0723").unwrap().count(), 2);
    let outcomes: Vec<_> = std::thread::scope(|scope| {
        [MethodKind::App, MethodKind::Phone]
            .map(|kind| {
                let server = &ts.server;
                scope.spawn(move || server.remove_method("cs0723", kind, "cs0723", "", t))
            })
            .into_iter()
            .map(|h| h.join().unwrap().map_err(|e| e.code()))
            .collect()
    });
    assert!(outcomes.contains(&Ok(true)), "{outcomes:?}");
    assert!(outcomes.contains(&Err("last_method")), "{outcomes:?}");
    assert_eq!(ts.server.methods("cs0723").unwrap().count(), 1);
}

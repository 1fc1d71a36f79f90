//! The sign-in pages over HTTPS on loopback, driven like a browser without
//! JavaScript (cookies, forms, redirects).

mod abuse;
mod fixes;
mod guides;
mod helpdesk;
mod methods;
mod takeover;

use crate::common::{between, TestDevice, TestServer};
use countersign_core::api::ActivateResponse;
use countersign_core::pin::PinnedVerifier;
use countersign_core::protocol::Decision;
use countersign_core::SigningKey;
use ring::rand::SystemRandom;

/// The password the tests' officers choose at their first sign-in.
const NEW: &str = "Correct-Horse-9-Battery";

pub struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(ts: &TestServer) -> Self {
        Self::at(&ts.url, ts.server.tls_pin.unwrap())
    }

    /// A browser for the server at `base` whose certificate has `pin`.
    pub fn at(base: &str, pin: [u8; 32]) -> Self {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(PinnedVerifier::client_config(pin).unwrap())
            .cookie_store(true)
            .build()
            .unwrap();
        Browser {
            http,
            base: base.to_string(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.url().path().to_string(),
            r.text().await.unwrap(),
        )
    }

    /// Posts a form with the CSRF token from `page`.
    /// "More information required", the page before registration, is
    /// passed with its "Next" (`guides::registration_starts_with_more_information`
    /// checks the page itself).
    async fn post(&self, path: &str, page: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let csrf = between(page, "name=\"csrf\" value=\"", "\"").to_string();
        let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        form.extend_from_slice(fields);
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let answer = (
            r.status().as_u16(),
            r.url().path().to_string(),
            r.text().await.unwrap(),
        );
        if answer.1 == "/signin/register/intro" {
            assert!(
                answer.2.contains("More information required"),
                "{}",
                answer.2
            );
            return self.get("/signin/register").await;
        }
        answer
    }

    /// Signs in with the temporary password `temp` and sets [`NEW`]: where
    /// that lands (path) and the page.
    pub async fn change_temporary(&self, user: &str, temp: &str) -> (String, String) {
        let (_, _, page) = self.sign_in(user, temp).await;
        let (_, path, page) = self
            .post(
                "/signin/update-password",
                &page,
                &[("current", temp), ("new", NEW), ("confirm", NEW)],
            )
            .await;
        (path, page)
    }

    /// "Skip setup" on the registration `page`, then "Stay signed in?" no:
    /// signed in without a second method.
    pub async fn skip_setup(&self, page: &str) {
        let (_, path, page) = self.post("/signin/register/skip", page, &[]).await;
        assert_eq!(path, "/signin/stay");
        let (_, path, _) = self.post("/signin/stay", &page, &[("stay", "no")]).await;
        assert_eq!(path, "/my");
    }

    /// The help-desk console refuses this browser for want of a proven
    /// second factor.
    async fn console_needs_a_factor(&self) {
        let (status, _, page) = self.get("/helpdesk").await;
        assert_eq!(status, 403);
        assert!(
            page.contains("needs a sign-in with a second method"),
            "{page}"
        );
    }

    async fn sign_in(&self, email: &str, password: &str) -> (u16, String, String) {
        let (_, _, page) = self.get("/signin").await;
        let (_, path, page) = self.post("/signin", &page, &[("email", email)]).await;
        assert_eq!(path, "/signin/password");
        self.post("/signin/password", &page, &[("password", password)])
            .await
    }
}

/// The actions in the audit log, oldest first.
fn audit_actions(ts: &TestServer) -> Vec<String> {
    ts.server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// A valid security-question form: questions 0, 2, 4, 6, 8.
pub fn answers() -> Vec<(String, &'static str)> {
    let mut f = Vec::new();
    for (i, (q, a)) in [
        ("0", "Mobile"),
        ("2", "Ford Falcon"),
        ("4", "Lincoln Elementary"),
        ("6", "Tuscaloosa"),
        ("8", "Skynyrd"),
    ]
    .into_iter()
    .enumerate()
    {
        f.push((format!("q{}", i + 1), q));
        f.push((format!("a{}", i + 1), a));
    }
    f
}

/// Borrows a form's fields.
pub fn as_refs<'a>(fields: &'a [(String, &'static str)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

/// (action, outcome) of every audit row, oldest first.
pub fn audit_outcomes(ts: &TestServer) -> Vec<(String, String)> {
    ts.server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

/// Asserts that each (action, outcome) is in the audit log.
pub fn assert_audited(ts: &TestServer, wanted: &[(&str, &str)]) {
    let rows = audit_outcomes(ts);
    for (a, o) in wanted {
        assert!(
            rows.iter().any(|(x, y)| x == a && y == o),
            "{a} {o} in {rows:?}"
        );
    }
}

async fn approve_from_page(ts: &TestServer, dev: &TestDevice, page: &str, decision: Decision) {
    let id = between(page, "data-id=\"", "\"");
    let number: u8 = between(page, "aria-live=\"polite\">", "<")
        .trim()
        .parse()
        .unwrap();
    let pending = dev.poll(ts, 5).await;
    assert!(
        pending.iter().any(|e| e.challenge.id == id),
        "the device got the page's challenge"
    );
    let n = if decision == Decision::Approve {
        Some(number)
    } else {
        None
    };
    dev.answer(ts, &dev.response(id, decision, n)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn first_sign_in_registration_push_code_and_sign_out() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs0301");
    let b = Browser::new(&ts);

    // Pages carry the banner, the links and a strict CSP.
    let r = b
        .http
        .get(format!("{}/signin", ts.url))
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    for text in [
        "<strong>WARNING</strong> This site is intended strictly for official law enforcement and criminal justice use only.",
        "placeholder=\"someone@alacop.gov\"",
        "New User Registration",
        "ALEA Help Center",
        "Sign-in options",
    ] {
        assert!(page.contains(text), "{text}");
    }
    // Every page, not only the sign-in form, carries them.
    for path in ["/signout/done", "/help", "/recover"] {
        let (_, _, page) = Browser::new(&ts).get(path).await;
        for text in [
            "<strong>WARNING</strong> This site is intended strictly for official law enforcement",
            "ALEA",
            "href=\"/register\"",
            "href=\"/help\"",
        ] {
            assert!(page.contains(text), "{text} on {path}");
        }
    }

    // Wrong password: one message for every cause.
    let (status, _, page) = b.sign_in("cs0301@alacop.gov", "wrong").await;
    assert_eq!(status, 401);
    assert!(page.contains("Your account or password is incorrect."));
    let (status, _, page) = Browser::new(&ts).sign_in("nobody", "wrong").await;
    assert_eq!(status, 401);
    assert!(page.contains("Your account or password is incorrect."));

    // A bare username is completed; the temporary password must be changed.
    let (_, path, page) = b.sign_in("cs0301", &temp).await;
    assert_eq!(path, "/signin/update-password");
    let (status, _, page) = b
        .post(
            "/signin/update-password",
            &page,
            &[
                ("current", &temp),
                ("new", "Short-1a"),
                ("confirm", "Short-1a"),
            ],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("The password must be at least 14 characters long."));
    let (_, _, page) = b
        .post(
            "/signin/update-password",
            &page,
            &[("current", &temp), ("new", &temp), ("confirm", &temp)],
        )
        .await;
    assert!(page.contains("The password must differ from your last 24 passwords."));
    let new = "Correct-Horse-9-Battery";
    let (_, path, page) = b
        .post(
            "/signin/update-password",
            &page,
            &[("current", &temp), ("new", new), ("confirm", new)],
        )
        .await;

    // No method yet: register the app from the page's enrollment payload.
    assert_eq!(path, "/signin/register");
    assert!(page.contains("Keep your account secure") && page.contains("data:image/png;base64,"));
    let payload = between(&page, "<p class=\"payload\" id=\"payload\">", "<").replace("&amp;", "&");
    let enrollment = countersign_core::Enrollment::parse(&payload).unwrap();
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let activation: ActivateResponse = ts
        .activate(&enrollment.code, &key)
        .await
        .json()
        .await
        .unwrap();
    let dev = TestDevice {
        key,
        activation,
        server_key: enrollment.server_key,
    };
    assert!(b
        .get("/signin/register/status")
        .await
        .2
        .contains("\"activated\":true"));
    let (_, _, page) = b.get("/signin/register/test").await;
    approve_from_page(&ts, &dev, &page, Decision::Approve).await;
    let (_, _, page) = b.get("/signin/register/done").await;
    assert!(page.contains("Notification approved"));
    let (_, path, page) = b.post("/signin/register/finish", &page, &[]).await;
    assert_eq!(path, "/signin/register");
    assert!(page.contains("Method 2 of 2: Phone"), "{page}");

    // The second method: security questions, after a refused first try.
    let (_, _, page) = b.get("/signin/register/choose").await;
    assert!(page.contains("Security Questions") && !page.contains(">Countersign app<"));
    let (_, _, page) = b.get("/signin/register?method=questions").await;
    let mut fields = answers();
    fields[2].1 = "0"; // q2: the first question again
    fields[7].1 = "ab"; // a4
    let (status, _, page) = b
        .post("/signin/register/questions", &page, &as_refs(&fields))
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("Choose five different questions."), "{page}");
    assert!(page.contains("is too short"), "{page}");
    let fields = answers();
    let (_, path, page) = b
        .post("/signin/register/questions", &page, &as_refs(&fields))
        .await;
    assert_eq!(path, "/signin/register/complete");
    assert!(
        page.contains("Success!")
            && page.contains("Countersign app")
            && page.contains("Security Questions")
    );
    let (_, path, page) = b.post("/signin/register/complete", &page, &[]).await;
    assert_eq!(path, "/signin/stay");
    let (_, path, page) = b.post("/signin/stay", &page, &[("stay", "yes")]).await;
    assert_eq!(path, "/my");
    assert!(
        page.contains("My sign-ins") && page.contains("Countersign app: Test phone"),
        "{page}"
    );

    // Sign out through the three pages.
    let (_, _, page) = b.get("/signout").await;
    assert!(page.contains("Pick an account to sign out"));
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
    let r = b
        .http
        .post(format!("{}/signout", ts.url))
        .form(&[("csrf", csrf.as_str()), ("account", "cs0301@alacop.gov")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/signout/wait");
    assert_eq!(r.headers()["refresh"], "1; url=/signout/done");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Please wait while we sign you out"));
    let (_, _, page) = b.get("/signout/done").await;
    assert!(
        page.contains("You signed out of your account") && page.contains("Click here to log in")
    );
    assert_eq!(
        b.get("/my").await.1,
        "/signin",
        "signed out: no way back without signing in"
    );

    // Sign in again: number matching, denied once, then approved.
    let (_, path, page) = b.sign_in("cs0301@alacop.gov", new).await;
    assert_eq!(path, "/signin/mfa");
    assert!(page.contains("Approve sign in request"));
    let denied = between(&page, "data-id=\"", "\"").to_string();
    approve_from_page(&ts, &dev, &page, Decision::Deny).await;
    let (_, _, page) = b.get("/signin/mfa/done").await;
    assert!(page.contains("The request was denied in the app."));
    let (_, path, page) = b.post("/signin/mfa/resend", &page, &[]).await;
    assert_eq!(path, "/signin/mfa");
    // The page's own session follows its challenge; another browser, and
    // this one for the previous challenge, are told it does not exist.
    let id = between(&page, "data-id=\"", "\"");
    let status = format!("/api/v1/challenges/{id}");
    assert_eq!(b.get(&status).await.0, 200);
    assert_eq!(Browser::new(&ts).get(&status).await.0, 404);
    assert_eq!(b.get(&format!("/api/v1/challenges/{denied}")).await.0, 404);
    approve_from_page(&ts, &dev, &page, Decision::Approve).await;
    let (_, path, page) = b.get("/signin/mfa/done").await;
    assert_eq!(path, "/signin/stay");
    let (_, path, _) = b.post("/signin/stay", &page, &[("stay", "no")]).await;
    assert_eq!(path, "/my");

    // "I can't use my app": a code from the app.
    let other = Browser::new(&ts);
    let (_, _, _) = other.sign_in("cs0301", new).await;
    let (_, _, page) = other.get("/signin/mfa/code").await;
    let (status, _, page) = other
        .post("/signin/mfa/code", &page, &[("code", "000000")])
        .await;
    if status == 401 {
        assert!(page.contains("That code didn't work."));
    }
    let (_, _, page) = other.get("/signin/mfa/code").await;
    let code = dev.otp().code(countersign_server::now());
    let (_, path, _) = other
        .post("/signin/mfa/code", &page, &[("code", &code)])
        .await;
    assert_eq!(path, "/signin/stay");

    // Every step is in the audit log.
    let actions = audit_actions(&ts);
    for a in [
        "signin.password",
        "password.change",
        "signin.register",
        "signin.complete",
        "signout",
        "totp.verify",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_without_the_token_and_skipped_steps_are_refused() {
    let ts = TestServer::start().await;
    ts.add_user("cs0302");
    let b = Browser::new(&ts);
    let _ = b.get("/signin").await;
    let r = b
        .http
        .post(format!("{}/signin", ts.url))
        .form(&[("email", "cs0302"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .http
        .post(format!("{}/signin", ts.url))
        .form(&[("email", "cs0302")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Jumping ahead lands back on the current step.
    assert_eq!(b.get("/signin/mfa").await.1, "/signin");
    assert_eq!(b.get("/signin/stay").await.1, "/signin");
    assert_eq!(Browser::new(&ts).get("/my").await.1, "/signin");
    // An open redirect through return_to is refused and logged.
    let (_, _, page) = b.get("/signin?return_to=https://evil.example/").await;
    assert!(page.contains("Sign in"));
    let refused = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .any(|e| e.action == "signin.return_to" && e.outcome == "refused");
    assert!(refused);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_user_registration_is_queued_then_approved_from_the_command_line() {
    let ts = TestServer::start().await;
    let b = Browser::new(&ts);
    let (_, _, page) = b.get("/signin").await;
    assert!(page.contains("href=\"/register\""));

    // Problems: each its own message, and what was typed stays.
    let (status, _, form) = b.get("/register").await;
    assert_eq!(status, 200);
    let (status, _, page) = b
        .post(
            "/register",
            &form,
            &[("first_name", "Lois"), ("email", "lois@nowhere")],
        )
        .await;
    assert_eq!(status, 422);
    for want in [
        "Enter your last name.",
        "Enter your agency or department.",
        "Say why you need an account.",
        "Enter a valid work email address, such as name@agency.gov.",
    ] {
        assert!(page.contains(want), "{want}");
    }
    assert!(page.contains("value=\"Lois\""), "the first name is kept");
    assert!(ts.server.store.registrations(true).unwrap().is_empty());

    // Without the form's token nothing is queued.
    let r = b
        .http
        .post(format!("{}/register", ts.url))
        .form(&[("first_name", "Eve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let good = [
        ("first_name", "Lois"),
        ("last_name", "Lane"),
        ("email", "Lois.Lane@metropolis.gov"),
        ("agency", "Metropolis PD"),
        ("phone", ""),
        ("reason", "Records access for the fraud unit"),
    ];
    let (status, _, sent) = b.post("/register", &page, &good).await;
    assert_eq!(status, 200);
    assert!(sent.contains("Request sent") && sent.contains("lois.lane@metropolis.gov"));
    let queued = ts.server.store.registrations(false).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (
            queued[0].form.first_name.as_str(),
            queued[0].status.as_str()
        ),
        ("Lois", "pending")
    );

    // The administrator lists and approves it; the new officer signs in
    // with the temporary password and must change it.
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_countersign-server"));
        c.arg("--data")
            .arg(ts.dir.path())
            .args(args)
            .env_remove("COUNTERSIGN_CONFIG");
        countersign_testkit::postgres::store_env(&mut c, ts.dir.path());
        c.output().unwrap()
    };
    let list = cli(&["user", "requests"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("#1") && listed.contains("Lois Lane"),
        "{listed}"
    );
    let id = queued[0].id.to_string();
    let approved = cli(&[
        "user",
        "requests",
        "approve",
        &id,
        "cs0401",
        "--ssn-last4",
        "1234",
    ]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let temp = String::from_utf8_lossy(&approved.stdout).trim().to_string();
    assert_eq!(temp, "New$Alacop#l1234l");
    let again = cli(&["user", "requests", "reject", &id, "--reason", "late"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("approved already"));
    let (_, path, _) = Browser::new(&ts).sign_in("cs0401", &temp).await;
    assert_eq!(path, "/signin/update-password");

    let actions = audit_actions(&ts);
    for a in ["registration.request", "registration.approve", "user.add"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_requests_are_limited_per_address() {
    let ts = TestServer::start().await;
    let b = Browser::new(&ts);
    let mut last = (0, String::new());
    for i in 0..=countersign_server::domain::registration::MAX_PER_IP_PER_HOUR {
        let (_, _, form) = b.get("/register").await;
        let email = format!("officer{i}@agency.gov");
        let fields = [
            ("first_name", "Jimmy"),
            ("last_name", "Olsen"),
            ("email", email.as_str()),
            ("agency", "Daily Planet PD"),
            ("reason", "Photo archive"),
        ];
        let (status, _, page) = b.post("/register", &form, &fields).await;
        last = (status, page);
    }
    assert_eq!(last.0, 429);
    assert!(last
        .1
        .contains("Too many requests were sent from this network."));
    assert_eq!(
        ts.server.store.registrations(false).unwrap().len() as u64,
        countersign_server::domain::registration::MAX_PER_IP_PER_HOUR
    );
    // A different administrator decision: rejection needs a reason.
    let err = ts
        .server
        .reject_registration(1, " ", "admin-cli", countersign_server::now())
        .unwrap_err();
    assert_eq!(err.code(), "reason_needed");
    ts.server
        .reject_registration(
            1,
            "not an agency we serve",
            "admin-cli",
            countersign_server::now(),
        )
        .unwrap();
    assert_eq!(
        ts.server.store.registration(1).unwrap().unwrap().status,
        "rejected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_failing_across_accounts_is_slowed_down() {
    let ts = TestServer::start_with(|c| c.lockout.per_address_failures = 3).await;
    let temp = ts.add_user("cs0501");
    ts.add_user("cs0502");
    // Three wrong passwords for three accounts (one of them unknown).
    for user in ["cs0501", "cs0502", "nobody"] {
        let (status, _, page) = Browser::new(&ts).sign_in(user, "Wrong-password-1").await;
        assert_eq!(status, 401);
        assert!(page.contains("Your account or password is incorrect."));
    }
    // Now even the right password is refused from this address, with a
    // message that says why and for how long; no account got locked.
    let (status, path, page) = Browser::new(&ts).sign_in("cs0501", &temp).await;
    assert_eq!((status, path.as_str()), (429, "/signin/password"));
    assert!(
        page.contains("Too many failed attempts from this network. Try again in 15 minute(s)."),
        "{page}"
    );
    assert_eq!(ts.server.user("cs0501").unwrap().locked_until, 0);
    assert!(ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .iter()
        .any(|e| e.detail == "too many failures from this address"));
    // The server's own commands are never limited.
    assert!(ts
        .server
        .check_password("cs0501", &temp, "", countersign_server::now())
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_setup_postpones_registration_once() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("cs0601");
    let new = "Correct-Horse-9-Battery";
    let b = Browser::new(&ts);
    let (_, _, page) = b.sign_in("cs0601", &temp).await;
    let (_, path, page) = b
        .post(
            "/signin/update-password",
            &page,
            &[("current", &temp), ("new", new), ("confirm", new)],
        )
        .await;
    assert_eq!(path, "/signin/register");
    assert!(
        page.contains("If you skip setup, you will be prompted again in 24 hours, at "),
        "{page}"
    );
    let (_, path, _) = b.post("/signin/register/skip", &page, &[]).await;
    assert_eq!(path, "/signin/stay", "signed in on the password alone");
    let until = ts.server.user("cs0601").unwrap().skip_setup_until;
    let t = countersign_server::now();
    assert!((t + 23 * 3600..=t + 24 * 3600).contains(&until), "{until}");

    // While the grace runs, sign-ins go past registration ("you will be
    // prompted again in 24 hours"); it is not renewed.
    let id = ts.server.user("cs0601").unwrap().id;
    ts.server
        .store
        .write(t, |w| w.set_skip_setup_until(id, t + 3 * 3600))
        .unwrap();
    let b = Browser::new(&ts);
    let (_, path, _) = b.sign_in("cs0601", new).await;
    assert_eq!(
        path, "/signin/stay",
        "not asked again before the grace ends"
    );
    assert_eq!(
        ts.server.user("cs0601").unwrap().skip_setup_until,
        t + 3 * 3600
    );

    // Once it has run out, setup is required.
    let id = ts.server.user("cs0601").unwrap().id;
    ts.server
        .store
        .write(t, |w| w.set_skip_setup_until(id, t - 1))
        .unwrap();
    let b = Browser::new(&ts);
    let (_, path, page) = b.sign_in("cs0601", new).await;
    assert_eq!(path, "/signin/register");
    assert!(
        !page.contains("Skip setup"),
        "no button once the grace is over"
    );
    let err = ts
        .server
        .skip_setup("cs0601", "", countersign_server::now())
        .unwrap_err();
    assert_eq!(err.code(), "setup_required");
    assert!(err
        .to_string()
        .contains("Setup can no longer be postponed."));
    let skips: Vec<String> = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "signin.register.skip")
        .map(|e| e.outcome)
        .collect();
    assert_eq!(skips, ["ok", "refused"]);
}

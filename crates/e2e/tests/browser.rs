//! The officer's journeys through the sign-in pages in headless Debian
//! chromium (chromedriver), with the real server, the `countersign` CLI as
//! the authenticator and the server's telephony outbox as the phone.
//!
//! First: sign-in with the temporary password, the forced change (too
//! short and reused passwords refused), registering the authenticator from
//! a screenshot of the page's QR code, the test push answered with the
//! number read off the page, security questions as the second method,
//! sign-out through its three pages, number matching denied then approved,
//! "I can't use my app" with a code from the app, an open redirect and a
//! form posted from another site refused.
//!
//! Second: a phone and security questions instead of the app, then "Can't
//! access your account?" (CAPTCHA, security questions, a new password) and
//! a sign-in with a texted code.
//!
//! Screenshots of each page go to `target/screenshots/web/`, and axe-core
//! checks each of those pages for accessibility problems.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_e2e::{Pages, Stack};
use countersign_testkit::Session;
use serde_json::json;

#[test]
fn officer_signs_in_registers_the_app_and_approves_with_the_number() {
    let stack = Stack::start("cs0301");
    let temp = stack.temporary_password.clone();
    let s = Session::chromium(1280, 900);
    let mut p = Pages::new(&s, "app");

    p.step("Sign in with the temporary password");
    // Sign in with the temporary password: a bare username is completed.
    s.goto(&stack.url("/signin"));
    p.says("New User Registration");
    // The guides' notice, on every page: without it, the site is not ours.
    p.says("WARNING This site is intended strictly for official law enforcement and criminal justice use only.");
    p.help("signin");
    s.click("a[href='/register']");
    p.at("/register");
    p.says("Ask for an account.");
    p.help("new-user-registration");
    s.goto(&stack.url("/signin"));
    s.click("a[href='/signin/options']");
    p.says("This feature is not supported by ALEA.");
    p.help("sign-in-options");

    s.goto(&stack.url("/signin"));
    s.type_into("#email", "cs0301");
    p.submit("/signin");
    p.at("/signin/password");
    p.says("Enter password");
    p.help("password");
    s.type_into("#password", &temp);
    p.submit("/signin/password");

    p.step("The forced change");
    // The forced change: each broken rule gets its message.
    p.at("/signin/update-password");
    p.change_password(&temp, "Short-1a");
    p.says("The password must be at least 14 characters long.");
    p.help("update-password-too-short");
    p.change_password(&temp, &temp);
    p.says("The password must differ from your last 24 passwords.");
    let new = "Correct-Horse-9-Battery";
    p.change_password(&temp, new);

    p.step("More information required");
    p.more_information(true);

    p.step("Register the app");
    // Register the app: the CLI enrolls from a screenshot of the page.
    p.at("/signin/register");
    p.says("Keep your account secure");
    p.help("register-app");
    let screenshot = stack.file("register-page.png");
    s.screenshot(&screenshot);
    stack.cli(&["init"]);
    let added = stack.cli(&["add", "--qr", screenshot.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&added.stderr);
    assert!(said.contains("cs0301@alacop.gov"), "{said}");

    p.step("The page moves on by itself to the test push");
    // The page moves on by itself to the test push; answer it.
    p.at("/signin/register/test");
    let number = p.number();
    p.help("register-test-push");
    stack.approve_with(&number);
    p.at("/signin/register/done");
    p.says("Notification approved");
    p.help("register-done");
    p.submit("/signin/register/finish");

    p.step("The second method");
    // The second method: security questions.
    p.at("/signin/register");
    p.says("Method 2 of 2");
    p.other_method("questions");
    p.register_questions(true);
    p.at("/signin/register/complete");
    p.says("Security Questions");
    p.help("register-complete");
    p.submit("/signin/register/complete");
    p.at("/signin/stay");
    p.help("stay-signed-in");
    s.click("button[name=stay][value=yes]");
    p.at("/my");
    p.says("My sign-ins");
    p.help("my-sign-ins");

    p.step("Sign out through the three pages");
    // Sign out through the three pages.
    p.sign_out(true);

    p.step("Number matching");
    // Number matching: denied in the app, then approved.
    p.sign_in("cs0301@alacop.gov", new);
    p.at("/signin/mfa");
    p.number();
    p.help("mfa-number");
    let request = stack.pending_request();
    stack.cli(&["answer", request["id"].as_str().unwrap(), "--deny"]);
    p.says("The request was denied in the app.");
    p.help("mfa-denied");
    p.submit("/signin/mfa/resend");
    p.at("/signin/mfa");
    let number = p.number();
    stack.approve_with(&number);
    p.at("/signin/stay");
    s.click("button[name=stay][value=no]");
    p.at("/my");

    p.step("\"I can't use my app right now\"");
    // "I can't use my app right now": a code from the app instead. The
    // link followed to sign in would send the officer to another site
    // afterwards (an open redirect): the sign-in ends on the portal.
    p.sign_out(false);
    s.goto(&stack.url("/signin?return_to=https://evil.example/"));
    p.sign_in("cs0301", new);
    p.at("/signin/mfa");
    s.click("a[href='/signin/mfa/other']");
    p.at("/signin/mfa/other");
    p.says("Use a verification code from my Countersign app");
    p.help("mfa-other-ways");
    s.click("a[href='/signin/mfa/code']");
    p.at("/signin/mfa/code");
    s.type_into("#code", "000000");
    p.submit("/signin/mfa/code");
    p.says("That code didn't work.");
    p.help("code-refused");
    let code = String::from_utf8_lossy(&stack.cli(&["code", "cs0301"]).stdout)
        .split_whitespace()
        .find(|w| w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()))
        .expect("the CLI prints a six-digit code")
        .to_string();
    s.type_into("#code", &code);
    p.submit("/signin/mfa/code");
    p.at("/signin/stay");
    s.click("button[name=stay][value=yes]");
    p.at("/my");
    assert!(s.url().starts_with(&stack.url("/")), "{}", s.url());
    p.sign_out(false);

    p.step("A page on another site posts the sign-in form");
    // A page on another site posts the sign-in form (it cannot know the
    // form's token, and the browser keeps the SameSite session cookie to
    // itself): the officer's sign-in does not move on.
    p.at("/signin");
    let forged = format!(
        "<form method=post action='{}'><input name=email value=cs0301></form>\
         <script>document.forms[0].submit()</script>",
        stack.url("/signin")
    );
    s.goto(&format!(
        "data:text/html;base64,{}",
        data_encoding::BASE64.encode(forged.as_bytes())
    ));
    p.at("/signin");
    assert!(s.url().starts_with(&stack.url("/")), "{}", s.url());
    s.goto(&stack.url("/signin/password"));
    p.at("/signin");

    p.step("The Help Center: the three guides, each picture a real screenshot");
    s.goto(&stack.url("/signin"));
    s.click("a[href='/help']");
    p.at("/help");
    p.shot("help-center");
    for (slug, title, words) in [
        (
            "sign-in-page",
            "The sign-in page",
            "Can't access your account?",
        ),
        ("first-sign-in", "Your first sign-in", "Resend notification"),
        (
            "everyday-sign-in",
            "Signing in with Countersign",
            "Send another request to my Countersign app",
        ),
    ] {
        s.goto(&stack.url("/help"));
        s.click(&format!("a[href='/help/{slug}']"));
        p.at(&format!("/help/{slug}"));
        p.says(title);
        p.says(words);
        s.wait_for(
            "[...document.images].every(i => i.complete)",
            "the guide's pictures",
        );
        let missing = s.script(
            "return [...document.querySelectorAll('article img')].filter(i => i.naturalWidth == 0).map(i => i.src)",
            json!([]),
        );
        assert_eq!(
            missing,
            json!([]),
            "pictures missing from {slug} (a new one is taken by this run: run the tests again)"
        );
        p.shot(&format!("help-{slug}"));
    }

    p.step("Every step is in the audit log");
    // Every step is in the audit log.
    let audit = stack.server(&["audit", "--user", "cs0301", "--format", "json"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    for action in [
        "signin.password",
        "password.change",
        "signin.register",
        "method.questions.register",
        "signin.register.complete",
        "signin.complete",
        "signout",
        "totp.verify",
    ] {
        assert!(audit.contains(action), "{action} is not in the audit log");
    }
    p.step("The refused redirect too");
    // The refused redirect too (before the account was known).
    let audit = stack.server(&["audit", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).unwrap();
    assert!(
        rows.iter().any(|r| r["action"] == "signin.return_to"
            && r["outcome"] == "refused"
            && r["ip"] == "127.0.0.1"),
        "no refused redirect in {rows:?}"
    );
}

#[test]
fn officer_uses_a_phone_and_questions_and_recovers_the_account() {
    let stack = Stack::start("cs0302");
    let temp = stack.temporary_password.clone();
    let s = Session::chromium(1280, 900);
    let mut p = Pages::new(&s, "phone");
    let new = "Correct-Horse-9-Battery";

    s.goto(&stack.url("/signin"));
    p.sign_in("cs0302", &temp);
    p.at("/signin/update-password");
    p.change_password(&temp, new);
    p.more_information(false);

    p.step("No app");
    // No app: a phone, with the code texted to it.
    p.at("/signin/register");
    p.other_method("phone");
    p.says("Cell phone number");
    s.type_into("#phone", "205-555");
    p.submit("/signin/register/phone");
    p.says("That phone number can't be used");
    p.help("register-phone-refused");
    s.type_into("#phone", "(205) 555-0142");
    p.submit("/signin/register/phone");
    p.at("/signin/register/phone/verify");
    p.says("We just sent a 6 digit code to +XXXXXXXXX42");
    p.help("register-phone-code");
    let (channel, code) = stack.phone_message();
    assert_eq!(channel, "sms");
    s.type_into("#code", &code);
    p.submit("/signin/register/phone/verify");
    p.says("Your phone has been registered.");
    p.help("register-phone-done");
    s.click("a.button");

    p.step("Then the questions, and done");
    // Then the questions, and done.
    p.at("/signin/register");
    p.other_method("questions");
    p.register_questions(false);
    p.at("/signin/register/complete");
    p.submit("/signin/register/complete");
    p.at("/signin/stay");
    s.click("button[name=stay][value=no]");
    p.at("/my");
    p.says("Phone: +XXXXXXXXX42");
    p.shot("my-sign-ins-phone");
    p.sign_out(false);

    p.step("\"Can't access your account?\"");
    // "Can't access your account?": the CAPTCHA, read from the page.
    p.at("/signin");
    s.click("a[href='/recover']");
    p.at("/recover");
    p.help("recover");
    let font = countersign_server::domain::captcha::font();
    let mut tries = 0;
    loop {
        let src = s.script("return document.getElementById('captcha').src;", json!([]));
        let b64 = src.as_str().unwrap().split_once("base64,").unwrap().1;
        let png = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
        let answer = countersign_testkit::captcha::solve(
            &png,
            &font,
            countersign_server::domain::captcha::CELL,
            countersign_server::domain::captcha::LENGTH,
        );
        s.type_into("#email", "cs0302@alacop.gov");
        s.type_into("#captcha-answer", &answer);
        p.submit("/recover");
        // A wrong reading gets a new picture, as for a person.
        s.wait_for(
            "location.pathname != '/recover' || document.body.innerText.includes(\"didn't match\")",
            "the CAPTCHA's verdict",
        );
        if s.url().contains("/signin/mfa") {
            break;
        }
        tries += 1;
        assert!(tries < 3, "the CAPTCHA was misread three times");
    }
    p.at("/signin/mfa/other");
    p.says("Answer my security questions");
    p.help("recover-verify");
    s.click("a[href='/signin/mfa/questions']");
    p.at("/signin/mfa/questions");
    p.help_varying("recover-questions", "form label");
    p.answer_questions();
    p.at("/recover/password");
    s.type_into("#new", new);
    s.type_into("#confirm", new);
    p.submit("/recover/password");
    p.says("The password must differ from your last 24 passwords.");
    p.shot("recover-password-reused");
    let newer = "Daily-Planet-Reporter-38";
    s.type_into("#new", newer);
    s.type_into("#confirm", newer);
    p.submit("/recover/password");
    p.says("Your password has been reset");
    p.help("recover-done");
    s.click("a[href='/signin']");

    p.step("The new password, and a texted code as the second step");
    // The new password, and a texted code as the second step.
    p.sign_in("cs0302", newer);
    p.at("/signin/mfa/other");
    s.click("form[action='/signin/mfa/phone/send'] button[value=sms]");
    p.at("/signin/mfa/phone");
    p.help("mfa-phone-code");
    let (_, code) = stack.phone_message();
    s.type_into("#code", &code);
    p.submit("/signin/mfa/phone");
    p.at("/signin/stay");

    let audit = stack.server(&["audit", "--user", "cs0302", "--format", "json"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    for action in [
        "method.phone.register",
        "method.questions.register",
        "recover.start",
        "method.questions.check",
        "password.recover",
        "method.phone.check",
    ] {
        assert!(audit.contains(action), "{action} is not in the audit log");
    }
}

/// Guide 001's and 000's steps where time runs out or a rule holds: a test
/// push nobody answers (the error and "Resend notification", no new push
/// until asked), "Skip setup" (not asked again at the next sign-in),
/// "Change password" refused by the 24-hour rule, and a sign-in request
/// that expires ("Send another request to my Countersign app").
#[test]
fn officer_lets_requests_expire_skips_setup_and_meets_the_24_hour_rule() {
    let stack = Stack::start_with("cs0303", "[push]\nttl_seconds = 3\n");
    let temp = stack.temporary_password.clone();
    let s = Session::chromium(1280, 900);
    let mut p = Pages::new(&s, "guides");
    let new = "Correct-Horse-9-Battery";

    p.step("First sign-in, up to the app's test push");
    s.goto(&stack.url("/signin"));
    p.sign_in("cs0303", &temp);
    p.at("/signin/update-password");
    p.change_password(&temp, new);
    p.more_information(false);
    p.at("/signin/register");
    let screenshot = stack.file("register-page.png");
    s.screenshot(&screenshot);
    stack.cli(&["init"]);
    stack.cli(&["add", "--qr", screenshot.to_str().unwrap()]);
    p.at("/signin/register/test");
    p.number();

    p.step("Nobody enters the number: the error, then \"Resend notification\"");
    p.says("We didn't receive a response. The notification expired before the number was entered.");
    p.help("register-test-expired");
    // Two more expiry periods: the page stays as it is, sends nothing new,
    // and never shows a JSON body.
    std::thread::sleep(std::time::Duration::from_secs(7));
    p.says("Resend notification");
    let body = s.text("body");
    assert!(!body.trim_start().starts_with('{'), "{body}");
    let pushes = || {
        let audit = stack.server(&["audit", "--user", "cs0303", "--format", "json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).unwrap();
        rows.iter()
            .filter(|r| r["action"] == "challenge.create" && r["outcome"] == "ok")
            .count()
    };
    assert_eq!(pushes(), 1, "no push is sent until asked");
    p.submit("/signin/register/resend");
    p.at("/signin/register/test");
    let number = p.number();
    stack.approve_with(&number);
    p.at("/signin/register/done");
    p.says("Notification approved");
    p.submit("/signin/register/finish");

    p.step("\"Skip setup\" for the second method");
    p.at("/signin/register");
    p.says("Method 2 of 2");
    p.says("If you skip setup, you will be prompted again in 24 hours");
    p.submit("/signin/register/skip");
    p.at("/signin/stay");
    s.click("button[name=stay][value=no]");
    p.at("/my");

    p.step("\"Change password\" the same day: the 24-hour rule");
    s.click("a[href='/my/password']");
    p.at("/my/password");
    p.change_password_to("/my/password", new, "Another-Horse-8-Battery");
    p.says("You cannot change your password more than once in 24 hours.");
    p.help("my-change-password-refused");
    s.click("a[href='/my']");
    p.at("/my");
    p.sign_out(false);

    p.step("Signed in again within the day: not asked to set up again");
    p.sign_in("cs0303", new);
    p.at("/signin/mfa");
    p.number();

    p.step("The request expires: \"Send another request to my Countersign app\"");
    p.says("We didn't hear from you. We sent a sign-in request to your app, but you didn't respond in time.");
    p.help("mfa-expired");
    p.submit("/signin/mfa/resend");
    p.at("/signin/mfa");
    let number = p.number();
    stack.approve_with(&number);
    p.at("/signin/stay");
}

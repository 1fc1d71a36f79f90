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
    p.shot("signin");
    s.click("a[href='/register']");
    p.at("/register");
    p.says("Ask for an account.");
    p.shot("new-user-registration");
    s.goto(&stack.url("/signin"));
    p.sign_in("cs0301", &temp);

    p.step("The forced change");
    // The forced change: each broken rule gets its message.
    p.at("/signin/update-password");
    p.change_password(&temp, "Short-1a");
    p.says("The password must be at least 14 characters long.");
    p.shot("update-password-too-short");
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
    p.shot("register-app");
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
    p.shot("register-test-push");
    stack.approve_with(&number);
    p.at("/signin/register/done");
    p.says("Notification approved");
    p.shot("register-done");
    p.submit("/signin/register/finish");

    p.step("The second method");
    // The second method: security questions.
    p.at("/signin/register");
    p.says("Method 2 of 2");
    p.other_method("questions");
    p.register_questions();
    p.at("/signin/register/complete");
    p.says("Security questions");
    p.shot("register-complete");
    p.submit("/signin/register/complete");
    p.at("/signin/stay");
    p.shot("stay-signed-in");
    s.click("button[name=stay][value=yes]");
    p.at("/my");
    p.says("My sign-ins");
    p.shot("my-sign-ins");

    p.step("Sign out through the three pages");
    // Sign out through the three pages.
    p.sign_out(true);

    p.step("Number matching");
    // Number matching: denied in the app, then approved.
    p.sign_in("cs0301@alacop.gov", new);
    p.at("/signin/mfa");
    p.number();
    p.shot("mfa-number");
    let request = stack.pending_request();
    stack.cli(&["answer", request["id"].as_str().unwrap(), "--deny"]);
    p.says("The request was denied in the app.");
    p.shot("mfa-denied");
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
    p.shot("mfa-other-ways");
    s.click("a[href='/signin/mfa/code']");
    p.at("/signin/mfa/code");
    s.type_into("#code", "000000");
    p.submit("/signin/mfa/code");
    p.says("That code didn't work.");
    p.shot("code-refused");
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
    p.says("Mobile phone number");
    s.type_into("#phone", "205-555");
    p.submit("/signin/register/phone");
    p.says("That phone number can't be used");
    p.shot("register-phone-refused");
    s.type_into("#phone", "(205) 555-0142");
    p.submit("/signin/register/phone");
    p.at("/signin/register/phone/verify");
    p.says("We just sent a 6 digit code to +XXXXXXXXX42");
    p.shot("register-phone-code");
    let (channel, code) = stack.phone_message();
    assert_eq!(channel, "sms");
    s.type_into("#code", &code);
    p.submit("/signin/register/phone/verify");
    p.says("Your phone has been registered.");
    p.shot("register-phone-done");
    s.click("a.button");

    p.step("Then the questions, and done");
    // Then the questions, and done.
    p.at("/signin/register");
    p.other_method("questions");
    p.register_questions();
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
    p.shot("recover");
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
    p.shot("recover-verify");
    s.click("a[href='/signin/mfa/questions']");
    p.at("/signin/mfa/questions");
    p.shot("recover-questions");
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
    p.shot("recover-done");
    s.click("a[href='/signin']");

    p.step("The new password, and a texted code as the second step");
    // The new password, and a texted code as the second step.
    p.sign_in("cs0302", newer);
    p.at("/signin/mfa/other");
    s.click("form[action='/signin/mfa/phone/send'] button[value=sms]");
    p.at("/signin/mfa/phone");
    p.shot("mfa-phone-code");
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

//! The officer's journeys through the sign-in pages in headless Debian
//! chromium (chromedriver), with the real server, the `countersign` CLI as
//! the authenticator and the server's telephony outbox as the phone.
//!
//! First: sign-in with the temporary password, the forced change (too
//! short and reused passwords refused), registering the authenticator from
//! a screenshot of the page's QR code, the test push answered with the
//! number read off the page, security questions as the second method,
//! sign-out through its three pages, number matching denied then approved,
//! and "I can't use my app" with a code from the app.
//!
//! Second: a phone and security questions instead of the app, then "Can't
//! access your account?" (CAPTCHA, security questions, a new password) and
//! a sign-in with a texted code.
//!
//! Screenshots of each page go to `target/screenshots/web/`, and axe-core
//! checks each of those pages for accessibility problems.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use countersign_e2e::Stack;
use countersign_testkit::Session;
use serde_json::json;

/// Five security questions (as the page words them, with their place in
/// the list) and the officer's answers.
const ANSWERS: [(&str, &str, &str); 5] = [
    ("0", "In what city were you born?", "Smallville"),
    ("1", "What was the name of your first pet?", "Krypto"),
    (
        "3",
        "What is the name of the street you grew up on?",
        "Hickory Lane",
    ),
    (
        "5",
        "What is your oldest sibling's middle name?",
        "Kara Zor",
    ),
    (
        "9",
        "What is the name of your favorite childhood friend?",
        "Lana Lang",
    ),
];

struct Pages<'a> {
    s: &'a Session,
    shots: PathBuf,
    /// Screenshots' name prefix (one per journey).
    journey: &'static str,
    n: u32,
    /// axe-core's script, injected into each page checked.
    axe: String,
}

impl<'a> Pages<'a> {
    fn new(s: &'a Session, journey: &'static str) -> Self {
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots/web");
        std::fs::create_dir_all(&shots).unwrap();
        let axe =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
        let axe = std::fs::read_to_string(&axe).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install it with `npm ci` in crates/e2e (./test.sh does)",
                axe.display()
            )
        });
        Pages {
            s,
            shots,
            journey,
            n: 0,
            axe,
        }
    }

    fn at(&self, path: &str) {
        self.s.wait_for(
            &format!("location.pathname == {}", json!(path)),
            &format!("the page {path} (now {})", self.s.url()),
        );
    }

    fn says(&self, text: &str) {
        self.s.wait_for(
            &format!("document.body.innerText.includes({})", json!(text)),
            &format!("\"{text}\" on {}", self.s.url()),
        );
    }

    /// A screenshot of the page, and its accessibility check.
    fn shot(&mut self, name: &str) {
        self.n += 1;
        self.s.screenshot(
            &self
                .shots
                .join(format!("{}-{:02}-{name}.png", self.journey, self.n)),
        );
        self.accessible(name);
    }

    /// axe-core (WCAG 2 A and AA rules) finds no serious or critical
    /// problem on the page.
    fn accessible(&self, name: &str) {
        self.s.script(&self.axe, json!([]));
        let found = self.s.script_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'best-practice'] })
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                   + v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            json!([]),
        );
        assert_eq!(found, json!([]), "accessibility problems on {name}");
    }

    fn submit(&self, form_action: &str) {
        self.s
            .click(&format!("form[action='{form_action}'] button[type=submit]"));
    }

    /// Sets a `<select>`.
    fn choose(&self, css: &str, value: &str) {
        self.s.script(
            "const e = document.querySelector(arguments[0]);
             e.value = arguments[1];
             e.dispatchEvent(new Event('change', { bubbles: true }));",
            json!([css, value]),
        );
    }

    /// "I want to set up a different method" → `method`.
    fn other_method(&self, method: &str) {
        self.s.click("a[href='/signin/register/choose']");
        self.at("/signin/register/choose");
        self.choose("#method", method);
        self.submit("/signin/register");
        self.at("/signin/register");
    }

    /// Fills in and sends the five security questions.
    fn register_questions(&mut self) {
        self.says("Security question 1");
        for (i, (q, _, a)) in ANSWERS.iter().enumerate() {
            self.choose(&format!("#q{}", i + 1), q);
            self.s.type_into(&format!("#a{}", i + 1), a);
        }
        self.shot("register-questions");
        self.submit("/signin/register/questions");
    }

    /// Answers the questions the page asks.
    fn answer_questions(&self) {
        self.says("Answer your security questions");
        let asked = self.s.script(
            "return [...document.querySelectorAll('form label')].map(l => [l.htmlFor, l.innerText]);",
            json!([]),
        );
        for pair in asked.as_array().unwrap() {
            let (field, question) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            let (_, _, answer) = ANSWERS
                .iter()
                .find(|(_, q, _)| *q == question.trim())
                .unwrap_or_else(|| panic!("asked {question:?}, which was not registered"));
            self.s
                .type_into(&format!("#{field}"), &answer.to_uppercase());
        }
        self.submit("/signin/mfa/questions");
    }

    /// Signs out through the three pages.
    fn sign_out(&mut self, shoot: bool) {
        self.submit("/signout/pick");
        self.says("Pick an account to sign out");
        if shoot {
            self.shot("signout-pick");
        }
        self.s.click("button[name=account]");
        self.says("You signed out of your account");
        if shoot {
            self.shot("signed-out");
        }
        self.s.click("a[href='/signin']");
    }

    /// The email page, then the password page (screenshots of both the
    /// first time).
    fn sign_in(&mut self, email: &str, password: &str) {
        self.at("/signin");
        self.s.type_into("#email", email);
        self.submit("/signin");
        self.at("/signin/password");
        self.says("@alacop.gov");
        if self.n < 3 {
            self.shot("password");
        }
        self.s.type_into("#password", password);
        self.submit("/signin/password");
    }

    fn change_password(&self, current: &str, new: &str) {
        self.s.type_into("#current", current);
        self.s.type_into("#new", new);
        self.s.type_into("#confirm", new);
        self.submit("/signin/update-password");
    }

    /// The number the page asks the officer to enter.
    fn number(&self) -> String {
        self.s.wait_for(
            "document.getElementById('challenge') !== null",
            "the number",
        );
        self.s.text("#challenge").trim().to_string()
    }
}

#[test]
fn officer_signs_in_registers_the_app_and_approves_with_the_number() {
    let stack = Stack::start("cs0301");
    let temp = stack.temporary_password.clone();
    let s = Session::chromium(1280, 900);
    let mut p = Pages::new(&s, "app");

    // Sign in with the temporary password: a bare username is completed.
    s.goto(&stack.url("/signin"));
    p.says("New User Registration");
    p.shot("signin");
    s.click("a[href='/register']");
    p.at("/register");
    p.says("Ask for an account.");
    p.shot("new-user-registration");
    s.goto(&stack.url("/signin"));
    p.sign_in("cs0301", &temp);

    // The forced change: each broken rule gets its message.
    p.at("/signin/update-password");
    p.change_password(&temp, "Short-1a");
    p.says("The password must be at least 14 characters long.");
    p.shot("update-password-too-short");
    p.change_password(&temp, &temp);
    p.says("The password must differ from your last 24 passwords.");
    let new = "Correct-Horse-9-Battery";
    p.change_password(&temp, new);

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

    // The page moves on by itself to the test push; answer it.
    p.at("/signin/register/test");
    let number = p.number();
    p.shot("register-test-push");
    let request = stack.pending_request();
    stack.cli(&[
        "answer",
        request["id"].as_str().unwrap(),
        "--approve",
        "--number",
        &number,
    ]);
    p.at("/signin/register/done");
    p.says("Notification approved");
    p.shot("register-done");
    p.submit("/signin/register/finish");

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

    // Sign out through the three pages.
    p.sign_out(true);

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
    let request = stack.pending_request();
    stack.cli(&[
        "answer",
        request["id"].as_str().unwrap(),
        "--approve",
        "--number",
        &number,
    ]);
    p.at("/signin/stay");
    s.click("button[name=stay][value=no]");
    p.at("/my");

    // "I can't use my app right now": a code from the app instead.
    p.sign_out(false);
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
    p.sign_out(false);

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

    // "Can't access your account?": the CAPTCHA, read from the page.
    p.at("/signin");
    s.click("a[href='/recover']");
    p.at("/recover");
    p.shot("recover");
    let font: Vec<(char, [u8; 7])> = countersign_server::captcha::ALPHABET
        .iter()
        .map(|&c| {
            (
                char::from(c),
                countersign_server::captcha::glyph(c).unwrap(),
            )
        })
        .collect();
    let mut tries = 0;
    loop {
        let src = s.script("return document.getElementById('captcha').src;", json!([]));
        let b64 = src.as_str().unwrap().split_once("base64,").unwrap().1;
        let png = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
        let answer = countersign_testkit::captcha::solve(
            &png,
            &font,
            countersign_server::captcha::CELL,
            countersign_server::captcha::LENGTH,
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

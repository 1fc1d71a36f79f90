//! The officer's journey through the sign-in pages in headless Debian
//! chromium (chromedriver), with the real server and the `countersign` CLI
//! as the authenticator: first sign-in with the temporary password, the
//! forced change (too short and reused passwords refused), registering the
//! authenticator from a screenshot of the page's QR code, the test push
//! answered with the number read off the page, sign-out through its three
//! pages, number matching denied then approved, and a code from the app.
//! Screenshots of each page go to `target/screenshots/web/`, and axe-core
//! checks each of those pages for accessibility problems.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use countersign_e2e::Stack;
use countersign_testkit::Session;
use serde_json::json;

struct Pages<'a> {
    s: &'a Session,
    shots: PathBuf,
    n: u32,
    /// axe-core's script, injected into each page checked.
    axe: String,
}

impl Pages<'_> {
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
        self.s
            .screenshot(&self.shots.join(format!("{:02}-{name}.png", self.n)));
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

    /// The email page, then the password page (screenshots of both the
    /// first time).
    fn sign_in(&mut self, email: &str, password: &str) {
        self.at("/signin");
        self.s.type_into("#email", email);
        self.submit("/signin");
        self.at("/signin/password");
        self.says("cs0301@alacop.gov");
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
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots/web");
    std::fs::create_dir_all(&shots).unwrap();
    let axe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&axe).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; install it with `npm ci` in crates/e2e (./test.sh does)",
            axe.display()
        )
    });
    let mut p = Pages {
        s: &s,
        shots,
        n: 0,
        axe,
    };

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
    p.at("/signin/stay");
    p.shot("stay-signed-in");
    s.click("button[name=stay][value=yes]");
    p.at("/my");
    p.says("My sign-ins");
    p.shot("my-sign-ins");

    // Sign out through the three pages.
    p.submit("/signout/pick");
    p.says("Pick an account to sign out");
    p.shot("signout-pick");
    s.click("button[name=account]");
    p.says("You signed out of your account");
    p.shot("signed-out");
    s.click("a[href='/signin']");

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
    p.submit("/signout/pick");
    s.click("button[name=account]");
    p.says("You signed out of your account");
    s.click("a[href='/signin']");
    p.sign_in("cs0301", new);
    p.at("/signin/mfa");
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

    // Every step is in the audit log.
    let audit = stack.server(&["audit", "--user", "cs0301", "--format", "json"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    for action in [
        "signin.password",
        "password.change",
        "signin.register",
        "signin.complete",
        "signout",
        "totp.verify",
    ] {
        assert!(audit.contains(action), "{action} is not in the audit log");
    }
}

//! A browser on the sign-in pages, for the journeys: waits for a page or
//! a text, screenshots each page into `target/screenshots/web/` and checks
//! it with axe-core, and fills in the common forms.

use std::path::PathBuf;
use std::sync::{Mutex, Once};

use countersign_testkit::Session;
use serde_json::json;

/// Five security questions (as the page words them, with their place in
/// the list) and the officer's answers.
pub const ANSWERS: [(&str, &str, &str); 5] = [
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

/// The journey's current step, named in any failure (see [`Pages::step`]).
static STEP: Mutex<String> = Mutex::new(String::new());

/// Installs, once, a panic hook that names the step a journey failed in.
fn name_failed_steps() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let step = STEP.lock().map(|s| s.clone()).unwrap_or_default();
            if !step.is_empty() {
                eprintln!("journey failed in the step: {step}");
            }
            default(info);
        }));
    });
}

/// A browser session on the pages of one journey.
pub struct Pages<'a> {
    /// The browser.
    pub s: &'a Session,
    shots: PathBuf,
    /// Screenshots' name prefix (one per journey).
    journey: &'static str,
    n: u32,
    /// axe-core's script, injected into each page checked.
    axe: String,
}

impl<'a> Pages<'a> {
    /// Pages seen through `s`; screenshots are named after `journey`.
    pub fn new(s: &'a Session, journey: &'static str) -> Self {
        // target/<profile>/deps/<test> → target/screenshots/web
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let shots = target.join("screenshots/web");
        std::fs::create_dir_all(&shots).unwrap();
        let axe =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
        let axe = std::fs::read_to_string(&axe).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install it with `npm ci` in crates/e2e (./test.sh does)",
                axe.display()
            )
        });
        name_failed_steps();
        Pages {
            s,
            shots,
            journey,
            n: 0,
            axe,
        }
    }

    /// Starts step `name` of the journey: a failure from here on (a page
    /// that does not come, an assertion) says which step it was in.
    pub fn step(&self, name: &str) {
        eprintln!("{}: {name}", self.journey);
        if let Ok(mut step) = STEP.lock() {
            *step = format!("{} — {name}", self.journey);
        }
    }

    /// Waits until the browser is at `path`.
    pub fn at(&self, path: &str) {
        self.s.wait_for(
            &format!("location.pathname == {}", json!(path)),
            &format!("the page {path} (now {})", self.s.url()),
        );
    }

    /// Waits until the page shows `text`.
    pub fn says(&self, text: &str) {
        self.s.wait_for(
            &format!("document.body.innerText.includes({})", json!(text)),
            &format!("\"{text}\" on {}", self.s.url()),
        );
    }

    /// A screenshot of the page, and its accessibility check.
    pub fn shot(&mut self, name: &str) {
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
    pub fn accessible(&self, name: &str) {
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

    /// Submits the form that holds the element `css` (for pages with
    /// several forms to the same address).
    pub fn submit_form_with(&self, css: &str) {
        self.s.script(
            "document.querySelector(arguments[0]).closest('form').querySelector('button[type=submit]').click();",
            json!([css]),
        );
    }

    /// Submits the form posting to `form_action`.
    pub fn submit(&self, form_action: &str) {
        self.s
            .click(&format!("form[action='{form_action}'] button[type=submit]"));
    }

    /// Sets a `<select>`.
    pub fn choose(&self, css: &str, value: &str) {
        self.s.script(
            "const e = document.querySelector(arguments[0]);
             e.value = arguments[1];
             e.dispatchEvent(new Event('change', { bubbles: true }));",
            json!([css, value]),
        );
    }

    /// "I want to set up a different method" → `method`.
    pub fn other_method(&self, method: &str) {
        self.s.click("a[href='/signin/register/choose']");
        self.at("/signin/register/choose");
        self.choose("#method", method);
        self.submit("/signin/register");
        self.at("/signin/register");
    }

    /// Fills in and sends the five security questions.
    pub fn register_questions(&mut self) {
        self.says("Security question 1");
        for (i, (q, _, a)) in ANSWERS.iter().enumerate() {
            self.choose(&format!("#q{}", i + 1), q);
            self.s.type_into(&format!("#a{}", i + 1), a);
        }
        self.shot("register-questions");
        self.submit("/signin/register/questions");
    }

    /// Answers the questions the page asks.
    pub fn answer_questions(&self) {
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
    pub fn sign_out(&mut self, shoot: bool) {
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
    pub fn sign_in(&mut self, email: &str, password: &str) {
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

    /// "More information required" (guide 001, step 5), then "Next".
    pub fn more_information(&mut self, shoot: bool) {
        self.at("/signin/register/intro");
        self.says("More information required");
        self.says("Your organization needs more information to keep your account secure.");
        if shoot {
            self.shot("more-information-required");
        }
        self.s.click("a.button[href='/signin/register']");
    }

    /// The forced password change.
    pub fn change_password(&self, current: &str, new: &str) {
        self.s.type_into("#current", current);
        self.s.type_into("#new", new);
        self.s.type_into("#confirm", new);
        self.submit("/signin/update-password");
    }

    /// The number the page asks the officer to enter.
    pub fn number(&self) -> String {
        self.s.wait_for(
            "document.getElementById('challenge') !== null",
            "the number",
        );
        self.s.text("#challenge").trim().to_string()
    }
}

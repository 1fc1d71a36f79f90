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

/// axe-core's script (`npm ci` in crates/e2e installs it).
pub fn axe_script() -> String {
    let axe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&axe).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; install it with `npm ci` in crates/e2e (./test.sh does)",
            axe.display()
        )
    })
}

/// axe-core (`axe`, from [`axe_script`]; its default rule set, which
/// holds the WCAG 2.0–2.2 A and AA rules and best practices, and the
/// visible-label rule besides) finds no serious or critical problem on
/// what `s` shows.
pub fn assert_accessible(s: &Session, axe: &str, name: &str) {
    s.script(axe, json!([]));
    let found = s.script_async(
        "const done = arguments[arguments.length - 1];
         axe.run(document, { rules: { 'label-content-name-mismatch': { enabled: true } } })
           .then(r => done(r.violations
             .filter(v => v.impact === 'serious' || v.impact === 'critical')
             .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
               + v.nodes.map(n => n.target.join(' ')).join(', '))))
           .catch(e => done(['axe failed: ' + e]));",
        json!([]),
    );
    assert_eq!(found, json!([]), "accessibility problems on {name}");
}

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
        let axe = axe_script();
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

    /// [`Pages::shot`], and the Help Center's picture `name` kept true to
    /// this page (`countersign_testkit::help`).
    pub fn help(&mut self, name: &str) {
        self.help_varying(name, "");
    }

    /// [`Pages::help`] for a page whose elements `varies` (CSS) show what
    /// is drawn at random: their words do not count as a change.
    pub fn help_varying(&mut self, name: &str, varies: &str) {
        self.shot(name);
        countersign_testkit::help::keep(self.s, name, varies, |png| self.s.screenshot(png));
    }

    /// axe-core (WCAG 2 A and AA rules) finds no serious or critical
    /// problem on the page.
    pub fn accessible(&self, name: &str) {
        assert_accessible(self.s, &self.axe, name);
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
    pub fn other_method(&mut self, method: &str) {
        self.s.click("a[href='/signin/register/choose']");
        self.at("/signin/register/choose");
        if method == "phone" {
            self.help("register-choose");
        }
        self.choose("#method", method);
        self.submit("/signin/register");
        self.at("/signin/register");
    }

    /// Fills in and sends the five security questions (the Help Center's
    /// picture of them if `help`).
    pub fn register_questions(&mut self, help: bool) {
        self.says("Security question 1");
        for (i, (q, _, a)) in ANSWERS.iter().enumerate() {
            self.choose(&format!("#q{}", i + 1), q);
            self.s.type_into(&format!("#a{}", i + 1), a);
        }
        if help {
            self.help("register-questions");
        } else {
            self.shot("register-questions");
        }
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
            self.help("signout-pick");
        }
        self.s.click("button[name=account]");
        self.says("You signed out of your account");
        if shoot {
            self.help("signed-out");
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
            self.help("more-information-required");
        }
        self.s.click("a.button[href='/signin/register']");
    }

    /// The forced password change.
    pub fn change_password(&self, current: &str, new: &str) {
        self.change_password_to("/signin/update-password", current, new);
    }

    /// A password change posted to `action` (the forced change, or
    /// "Change password" on My sign-ins).
    pub fn change_password_to(&self, action: &str, current: &str, new: &str) {
        self.s.type_into("#current", current);
        self.s.type_into("#new", new);
        self.s.type_into("#confirm", new);
        self.submit(action);
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

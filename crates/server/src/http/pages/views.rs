//! The sign-in pages' HTML (maud, compiled in). Every page carries the
//! branding, the legal banner and the standard links; no inline script or
//! style, so the Content-Security-Policy can forbid both.

use crate::domain::registration::RegistrationForm;
use maud::{html, Markup, DOCTYPE};

/// What every page shows around its content.
pub struct Frame<'a> {
    /// Organisation name.
    pub org: &'a str,
    /// Legal warning banner.
    pub banner: &'a str,
    /// "Sign-in options" under the banner, as the guides' sign-in page
    /// has it (the email step only).
    pub sign_in_options: bool,
}

/// Wraps `body` in the common page.
pub fn layout(f: &Frame<'_>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – " (f.org) }
                link rel="stylesheet" href="/static/site.css";
                script src="/static/signin.js" defer {}
            }
            body {
                header {
                    img.logo src="/static/logo" alt=(format!("{} logo", f.org)) width="32" height="32";
                    " " (f.org) " | Staff sign-in"
                }
                main { (body) }
                footer {
                    nav.footer aria-label="Help" {
                        a href="/register" { "New User Registration" }
                        a href="/help" { (f.org) " Help Center" }
                    }
                    p.banner role="note" { (banner(f.banner)) }
                    @if f.sign_in_options {
                        nav.options aria-label="Sign-in options" { a href="/signin/options" { "Sign-in options" } }
                    }
                }
            }
        }
    }
}

/// The legal notice, its leading "WARNING" in bold as the guides show it.
fn banner(text: &str) -> Markup {
    match text.strip_prefix("WARNING") {
        Some(rest) => html! { strong { "WARNING" } (rest) },
        None => html! { (text) },
    }
}

/// The link under the email form ("New User Registration" and the Help
/// Center are in every page's footer, "Sign-in options" under the banner).
pub fn links() -> Markup {
    html! {
        nav.links aria-label="More options" {
            a href="/recover" { "Can't access your account?" }
        }
    }
}

/// A hidden CSRF field.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// "Cancel" from adding a method or proving one again: back to "My
/// sign-ins" (a form: it changes where the session is).
pub fn back_to_my(token: &str) -> Markup {
    html! {
        form method="post" action="/my/back" {
            (csrf(token))
            button.link type="submit" { "Cancel" }
        }
    }
}

/// An error line, if any.
pub fn error(message: Option<&str>) -> Markup {
    html! { @if let Some(m) = message { p.error role="alert" { (m) } } }
}

/// Every problem with a form, as one alert.
pub fn problems(list: &[String]) -> Markup {
    // The alert role goes on a wrapper: on the list itself it would hide
    // the list from screen readers.
    html! { @if !list.is_empty() { div role="alert" { ul.violations.error { @for p in list { li { (p) } } } } } }
}

/// Step 1: the account.
pub fn email(
    token: &str,
    domain: &str,
    return_to: &str,
    app: Option<&str>,
    message: Option<&str>,
) -> Markup {
    html! {
        h1 { "Sign in" }
        (continuing_to(app))
        (error(message))
        form method="post" action="/signin" {
            (csrf(token))
            @if !return_to.is_empty() { input type="hidden" name="return_to" value=(return_to); }
            label for="email" { "Email" }
            input #email type="text" name="email" autocomplete="username" autofocus required placeholder=(format!("someone@{domain}"));
            button type="submit" { "Next" }
        }
        (links())
    }
}

/// "to continue to LETS", when an application sent the officer here.
fn continuing_to(app: Option<&str>) -> Markup {
    html! { @if let Some(app) = app { p.continuing { "to continue to " strong { (app) } } } }
}

/// Step 2: the password.
pub fn password(token: &str, account: &str, app: Option<&str>, message: Option<&str>) -> Markup {
    html! {
        p.account { a href="/signin/back" aria-label="Back to the email step" { "←" } " " (account) }
        h1 { "Enter password" }
        (continuing_to(app))
        (error(message))
        form method="post" action="/signin/password" {
            (csrf(token))
            label for="password" { "Password" }
            input #password type="password" name="password" autocomplete="current-password" autofocus required;
            p { a href="/recover" { "Reset Password" } }
            button type="submit" { "Sign in" }
        }
    }
}

/// First sign-in: the temporary password must be replaced.
pub fn update_password(token: &str, account: &str, violations: &[String]) -> Markup {
    html! {
        p.account { (account) }
        h1 { "Update your password" }
        p { "You need to update your password because this is the first time you are signing in, or because your password has expired." }
        (problems(violations))
        (new_password_form(token, "/signin/update-password", "Sign in"))
    }
}

/// The current password, the new one and its confirmation, posted to
/// `action` (the forced change and "Change password" alike).
pub fn new_password_form(token: &str, action: &str, submit: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf(token))
            label for="current" { "Current password" }
            input #current type="password" name="current" autocomplete="current-password" required;
            label for="new" { "New password" }
            input #new type="password" name="new" autocomplete="new-password" required;
            label for="confirm" { "Confirm password" }
            input #confirm type="password" name="confirm" autocomplete="new-password" required;
            button type="submit" { (submit) }
        }
    }
}

/// "Stay signed in?"
pub fn stay(token: &str, account: &str) -> Markup {
    html! {
        p.account { (account) }
        h1 { "Stay signed in?" }
        p { "Do this to reduce the number of times you are asked to sign in." }
        form method="post" action="/signin/stay" {
            (csrf(token))
            button.secondary type="submit" name="stay" value="no" { "No" }
            " "
            button type="submit" name="stay" value="yes" { "Yes" }
        }
    }
}

/// Sign-out step 1; `carried` are hidden fields passed on (where an
/// application asked to return).
pub fn pick_account(
    token: &str,
    account: &str,
    carried: &[(&str, String)],
    notice: Option<&str>,
) -> Markup {
    html! {
        h1 { "Pick an account to sign out" }
        (error(notice))
        form method="post" action="/signout" {
            (csrf(token))
            @for (name, value) in carried { input type="hidden" name=(name) value=(value); }
            button type="submit" name="account" value=(account) { (account) }
        }
    }
}

/// Sign-out step 2 (moves on with a meta refresh, no script needed).
pub fn signing_out(next: &str) -> Markup {
    html! {
        h1 { "Please wait while we sign you out" }
        p role="status" { "Signing you out…" }
        p { a href=(next) { "Continue" } }
    }
}

/// An application needs more than the signed-in session has: the officer
/// agrees before the session goes back to a step.
pub fn step_up(token: &str, app: &str, why: &str, request: &str) -> Markup {
    html! {
        h1 { (app) " " (why) }
        form method="post" action="/oidc/continue" {
            (csrf(token))
            input type="hidden" name="request" value=(request);
            button type="submit" { "Continue" }
        }
        p { a href=(format!("/oidc/cancel?request={request}")) { "Cancel" } }
    }
}

/// An application to go back to.
pub struct ReturnTo {
    /// Its name.
    pub name: String,
    /// Where.
    pub url: String,
}

/// Sign-out step 3, with the way back to the application that started the
/// logout, if one did.
pub fn signed_out(org: &str, back: Option<&ReturnTo>, notice: Option<&str>) -> Markup {
    html! {
        h1 { "You signed out of your account." }
        (error(notice))
        @match back {
            Some(app) => p { a href=(app.url) { "Click here to log in to the previous application (" (app.name) ") again" } },
            None => p { a href="/signin?again=1" { "Click here to log in to the previous application again" } },
        }
        p { a href="/signin" { "Click here to log in to " (org) } }
        p { "Or you can close the current tab in your browser" }
    }
}

/// New User Registration: the request form, filled again after a problem.
pub fn new_user(token: &str, values: &RegistrationForm, problems: &[String]) -> Markup {
    let value = |name: &str| values.field(name);
    let field = |name: &str, label: &str, kind: &str, autocomplete: &str, required: bool| {
        html! {
            label for=(name) { (label) @if !required { " (optional)" } }
            input id=(name) type=(kind) name=(name) value=(value(name)) autocomplete=(autocomplete) required[required];
        }
    };
    html! {
        h1 { "New User Registration" }
        p { "Ask for an account. An administrator checks each request and contacts you at the email address you give." }
        (self::problems(problems))
        form method="post" action="/register" {
            (csrf(token))
            (field("first_name", "First name", "text", "given-name", true))
            (field("last_name", "Last name", "text", "family-name", true))
            (field("email", "Work email", "email", "email", true))
            (field("agency", "Agency or department", "text", "organization", true))
            (field("phone", "Work phone", "tel", "tel", false))
            label for="reason" { "Why do you need an account?" }
            textarea #reason name="reason" rows="4" required { (value("reason")) }
            button type="submit" { "Send request" }
        }
        p { a href="/signin" { "Back to sign in" } }
    }
}

/// New User Registration: the request is queued.
pub fn new_user_sent(email: &str, id: i64) -> Markup {
    html! {
        h1 { "Request sent" }
        p role="status" { "Your request (number " (id) ") is waiting for an administrator." }
        p { "You will hear at " strong { (email) } " when it is decided. Your temporary password will be given to you in person or by phone, never by email." }
        p { a href="/signin" { "Back to sign in" } }
    }
}

/// A plain information page.
pub fn info(title: &str, paragraphs: &[&str]) -> Markup {
    info_back(title, paragraphs, way_back("/signin"))
}

/// A plain information page with its way back (`(href, text)`).
pub fn info_back(title: &str, paragraphs: &[&str], (href, text): (&str, &str)) -> Markup {
    html! {
        h1 { (title) }
        @for p in paragraphs { p { (p) } }
        p { a href=(href) { (text) } }
    }
}

/// The way back from a refusal of the address `path`: the help desk's
/// front page for the console's addresses, sign-in for the rest.
pub fn way_back(path: &str) -> (&'static str, &'static str) {
    if path == "/helpdesk" || path.starts_with("/helpdesk/") {
        ("/helpdesk", "Back to the help desk")
    } else {
        ("/signin", "Back to sign in")
    }
}

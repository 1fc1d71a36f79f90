//! "Can't access your account?": the account and a CAPTCHA, then proof
//! with a registered method (the verification pages, stage `recover`),
//! then a new password under the usual rules. Unavailable for an account
//! that has not changed its temporary password and registered a method;
//! an unknown account gets the same answer, so the page does not reveal
//! which accounts exist.

use serde::Deserialize;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::presession::PreSession;
use super::views::{csrf, error, info, problems as problems_list};
use super::{
    account, end, expired_cookie, forbidden, fresh, html as page, issue, load, AppState, Page,
    PageResult,
};
use crate::domain::captcha;
use crate::http::extract::ClientIp;
use crate::http::pages::{NewPasswordForm, PageForm, Posted};
use crate::http::pages::{PageSession, ResetStep};
use crate::store::NewAudit;
use crate::store::StageKind;
use crate::{now, Error, Server};

const TITLE: &str = "Get back into your account";

/// Recoveries one account may start per hour.
const RECOVERIES_PER_HOUR: u32 = 5;

/// The recovery routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/recover", get(start_page).post(start_post))
        .route("/recover/password", get(password_page).post(password_post))
}

/// The first form with a new CAPTCHA, whose answer the browser's
/// pre-session keeps as a MAC (nothing is stored before the form is sent);
/// the response carries the pre-session's new cookie.
fn start_form(
    s: &Server,
    pre: &mut PreSession,
    email: &str,
    message: Option<&str>,
    status: StatusCode,
) -> PageResult {
    let c = captcha::generate(&s.rng)?;
    pre.set_captcha(&s.web_key, &c.answer, now());
    let src = format!(
        "data:image/png;base64,{}",
        data_encoding::BASE64.encode(&c.png)
    );
    let (w, h) = captcha::SIZE;
    let body = html! {
        h1 { (TITLE) }
        h2 { "Who are you?" }
        p { "To recover your account, begin by entering your email or username and the characters in the picture below." }
        (error(message))
        form method="post" action="/recover" {
            (csrf(&pre.token))
            label for="email" { "Email or Username" }
            input #email type="text" name="email" autocomplete="username" required value=(email) placeholder=(format!("someone@{}", s.config.email_domain));
            img.captcha #captcha src=(src) width=(w) height=(h) alt="Five letters and digits, distorted, to show a person is asking";
            label for="captcha-answer" { "Enter the characters in the picture" }
            input #captcha-answer type="text" name="captcha" autocomplete="off" autocapitalize="characters" required;
            button type="submit" { "Next" }
        }
        p { a href="/recover" { "Show other characters" } }
        p { a href="/signin" { "Cancel" } }
    };
    Ok(Page {
        body: (status, page(s, TITLE, body)).into_response(),
        cookie: Some(pre.cookie()),
    }
    .into_response())
}

async fn start_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    if let Some(session) = load(&s, &headers)? {
        if session.stage.kind() == StageKind::Done {
            return Ok(Redirect::to("/my").into_response());
        }
        end(&s, &session.id_hash)?;
    }
    let mut pre = PreSession::carried_or_new(&s, &headers)?;
    start_form(&s, &mut pre, "", None, StatusCode::OK)
}

/// "Can't access your account?": the account and the CAPTCHA's answer
/// (the token is the pre-session's).
#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    captcha: String,
}

async fn start_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    PageForm(form): PageForm<StartForm>,
) -> PageResult {
    let Some(mut pre) = PreSession::from_headers(&headers) else {
        return Ok(Redirect::to("/recover").into_response());
    };
    if !pre.form_ok(Some(&form.csrf)) {
        return Ok(forbidden(&s));
    }
    let email = form.email.trim();
    let audit = |target: &str, outcome: &str, detail: &str| {
        s.audit(
            NewAudit {
                actor: target,
                action: "recover.start",
                target,
                ip: &ip,
                outcome,
                detail,
            },
            now(),
        )
    };
    if let Err(Error::Refused { code, message }) = s.address_failures.check(&ip, now()) {
        audit("", "refused", "too many failures from this address")?;
        return start_form(&s, &mut pre, email, Some(&message), super::refusal(code));
    }
    // One try per picture: a solved picture's cookie cannot be sent again.
    let typed = form.captcha.as_str();
    let first_try = pre.first_try(&s.used_captchas, now());
    if !first_try || !pre.captcha_matches(&s.web_key, typed, now()) {
        s.address_failures.failed(&ip, now());
        audit("", "refused", "CAPTCHA not matched")?;
        let message =
            "The characters you entered didn't match the picture. Try again with the new picture.";
        return start_form(&s, &mut pre, email, Some(message), StatusCode::UNAUTHORIZED);
    }
    let username = super::username_of(&s, email);
    let eligible = match s.store.user_by_name(&username)? {
        Some(user) => {
            !user.disabled && !user.must_change && s.store.methods_of(user.id)?.count() > 0
        }
        None => false,
    };
    // Per account: a few recoveries an hour, whoever starts them. The count
    // and the row that counts this one are one write, so recoveries started
    // at once, on any instance, get the limit and no more.
    let t = now();
    let row = NewAudit::of(&username, "recover.start", &username, &ip);
    let too_many = s.write(t, |w| {
        let since = t.saturating_sub(3600);
        let too_many =
            w.audit_count(&username, "recover.start", "ok", since)? >= RECOVERIES_PER_HOUR;
        w.audit(&match (too_many, eligible) {
            (true, _) => row.with("refused", "too many recoveries for this account"),
            (false, false) => row.with("refused", "unknown account or no method registered"),
            (false, true) => row.with("ok", ""),
        })?;
        Ok(too_many)
    })?;
    if too_many {
        let body = info(
            TITLE,
            &["Too many attempts to recover this account in the last hour. Try again later, or contact the help desk."],
        );
        return Ok((StatusCode::TOO_MANY_REQUESTS, page(&s, TITLE, body)).into_response());
    }
    if !eligible {
        let body = info(
            TITLE,
            &[
                "We can't reset this account's password online. Either the account doesn't exist, or it has not yet been set up: sign in with your new password and set up your sign-in methods first.",
                "Contact the help desk to get back into your account.",
            ],
        );
        return Ok(page(&s, TITLE, body));
    }
    // From here on there is a session to keep.
    let mut session = fresh(StageKind::Recover);
    session.username = username;
    let cookie = issue(&s, &mut session, None)?;
    Ok(Page {
        body: Redirect::to("/signin/mfa").into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

fn password_form(token: &str, account: &str, problems: &[String]) -> Markup {
    html! {
        p.account { (account) }
        h1 { "Choose a new password" }
        (problems_list(problems))
        form method="post" action="/recover/password" {
            (csrf(token))
            label for="new" { "New password" }
            input #new type="password" name="new" autocomplete="new-password" required;
            label for="confirm" { "Confirm new password" }
            input #confirm type="password" name="confirm" autocomplete="new-password" required;
            button type="submit" { "Finish" }
        }
    }
}

async fn password_page(
    State(s): AppState,
    PageSession(session, _): PageSession<ResetStep>,
) -> PageResult {
    let body = password_form(&session.csrf, &account(&s, &session.username), &[]);
    Ok(page(&s, "Choose a new password", body))
}

async fn password_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NewPasswordForm>,
) -> PageResult {
    let (session, form) = at!(posted, &[StageKind::RecoverReset]);
    let NewPasswordForm { new, confirm, .. } = form;
    let username = session.username.clone();
    let set = s
        .hashing(move |s| s.recover_password(&username, &new, &confirm, &ip, now()))
        .await?;
    match set {
        Ok(()) => {
            // The recovery session ends here: signing in starts afresh.
            end(&s, &session.id_hash)?;
            let body = html! {
                h1 { "Your password has been reset" }
                p role="status" { "You can now sign in to " (account(&s, &session.username)) " with your new password." }
                p { a href="/signin" { "Sign in" } }
            };
            Ok(Page {
                body: page(&s, "Your password has been reset", body),
                cookie: Some(expired_cookie()),
            }
            .into_response())
        }
        Err(violations) => {
            let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let body = password_form(&session.csrf, &account(&s, &session.username), &messages);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(&s, "Choose a new password", body),
            )
                .into_response())
        }
    }
}

//! Proving it is you, with a registered method: the second step of a
//! sign-in (stage `mfa`) and of a password recovery (stage `recover`).
//! The app's push with number matching is the default; "I can't use my
//! Countersign app right now" offers the other registered methods: a code
//! from the app, a code by text or call, and, where nothing else is
//! registered or for recovery, the security questions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use countersign_core::api::ChallengeStatus;
use countersign_core::methods::{mask, QUESTIONS_TO_ASK, SECURITY_QUESTIONS};
use countersign_core::protocol::ChallengeKind;
use maud::{html, Markup};

use super::register::{channel_of, check_typed, code_form, pending_code, send_code, Typed};
use super::views::{self, csrf, error};
use super::{
    account, advance, challenge_status, current_or_new_challenge, html as page, refusal, save,
    AppState, PageResult,
};
use crate::domain::methods::Purpose;
use crate::http::extract::ClientIp;
use crate::http::pages::{CodeForm, NoFields, Posted, SecretField, SendForm};
use crate::http::pages::{PageSession, ProofSteps, Stages};
use crate::store::StageKind;
use crate::store::{Factor, FactorMethod, Methods, WebSession};
use crate::{now, Error, Server};
use serde::Deserialize;

/// The verification routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/signin/mfa", get(push_page))
        .route("/signin/mfa/done", get(push_done))
        .route("/signin/mfa/resend", post(push_resend))
        .route("/signin/mfa/other", get(other_page))
        .route("/signin/mfa/code", get(totp_page).post(totp_post))
        .route("/signin/mfa/phone", get(phone_page).post(phone_post))
        .route("/signin/mfa/phone/send", post(phone_send))
        .route(
            "/signin/mfa/questions",
            get(questions_page).post(questions_post),
        )
}

fn purpose(session: &WebSession) -> Purpose {
    if session.stage.kind() == StageKind::Recover {
        Purpose::Recover
    } else {
        Purpose::SignIn
    }
}

fn title(session: &WebSession) -> &'static str {
    match session.stage.kind() {
        StageKind::Recover | StageKind::Reverify => "Verify your identity",
        _ => "Approve sign in request",
    }
}

/// Whether the security questions may be used: always for recovery; for
/// a sign-in only when nothing else is registered.
fn questions_allowed(session: &WebSession, m: &Methods) -> bool {
    !m.questions.is_empty()
        && (session.stage.kind() == StageKind::Recover || (!m.app && m.phone.is_none()))
}

/// Identity proven: a sign-in goes on (registration of missing methods,
/// then "Stay signed in?"); a recovery goes to the new password; a
/// signed-in officer proving it again goes back to "My sign-ins". Each
/// under a new session id.
pub fn proven(s: &Server, session: &mut WebSession, method: FactorMethod) -> PageResult {
    let next = if session.stage.kind() == StageKind::Recover {
        StageKind::RecoverReset
    } else if session.stage.kind() == StageKind::Reverify {
        StageKind::Done
    } else if s.methods(&session.username)?.count() < 2
        && !s.setup_postponed(&s.user(&session.username)?, now())
    {
        StageKind::Register
    } else {
        StageKind::Stay
    };
    session.stage = session.stage.then(next);
    session.stage.prove(Factor {
        method,
        at: now(),
        by_registration: false,
    });
    advance(s, session, next)
}

// --- Push ------------------------------------------------------------------

async fn push_page(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    PageSession(mut session, _): PageSession<ProofSteps>,
) -> PageResult {
    if !s.methods(&session.username)?.app {
        return Ok(Redirect::to("/signin/mfa/other").into_response());
    }
    let who = account(&s, &session.username);
    let t = title(&session);
    match current_or_new_challenge(&s, &mut session, &ip, ChallengeKind::SignIn) {
        Ok((id, number)) => {
            let body = html! {
                (approve(t, &who, &id, number))
                @if session.stage.kind() == StageKind::Reverify { (views::back_to_my(&session.csrf)) }
            };
            Ok(page(&s, t, body))
        }
        Err(Error::Refused { message, .. }) => {
            Ok(page(&s, t, not_approved(t, &session.csrf, &who, &message)))
        }
        Err(e) => Err(e.into()),
    }
}

async fn push_done(
    State(s): AppState,
    PageSession(mut session, _): PageSession<ProofSteps>,
) -> PageResult {
    let who = account(&s, &session.username);
    let message = match challenge_status(&s, &session)? {
        Some(ChallengeStatus::Approved) => return proven(&s, &mut session, FactorMethod::App),
        Some(ChallengeStatus::Pending) | None => return Ok(Redirect::to("/signin/mfa").into_response()),
        Some(ChallengeStatus::Denied) => "The request was denied in the app. We didn't sign you in.",
        Some(ChallengeStatus::NumberMismatch) => "The number entered in the app didn't match. We didn't sign you in.",
        Some(ChallengeStatus::Reported) => {
            "The request was reported as not yours. Sign-in requests are blocked for your account; contact the help desk."
        }
        Some(ChallengeStatus::Expired) => {
            "We didn't hear from you. We sent a sign-in request to your app, but you didn't respond in time."
        }
    };
    let t = title(&session);
    Ok(page(&s, t, not_approved(t, &session.csrf, &who, message)))
}

async fn push_resend(State(s): AppState, posted: Posted<NoFields>) -> PageResult {
    let (mut session, _form) = at!(posted, ProofSteps::AT);
    session.stage.forget_push();
    save(&s, &session)?;
    Ok(Redirect::to("/signin/mfa").into_response())
}

/// The number to type into the app, followed live.
fn approve(title: &str, account: &str, challenge_id: &str, number: u8) -> Markup {
    html! {
        p.account { (account) }
        h1 { (title) }
        p { "Open your Countersign app, and enter the number shown to sign in." }
        p.number #challenge data-id=(challenge_id) data-next="/signin/mfa/done" aria-live="polite" { (number) }
        p { a href="/signin/mfa/done" { "I've approved it" } }
        p { a href="/signin/mfa/other" { "I can't use my Countersign app right now" } }
    }
}

/// The request ended without an approval.
fn not_approved(title: &str, token: &str, account: &str, message: &str) -> Markup {
    html! {
        p.account { (account) }
        h1 { (title) }
        p.error role="alert" { (message) }
        form method="post" action="/signin/mfa/resend" {
            (csrf(token))
            button type="submit" { "Send another request to my Countersign app" }
        }
        p { a href="/signin/mfa/other" { "I can't use my Countersign app right now" } }
    }
}

// --- Other ways ------------------------------------------------------------

async fn other_page(
    State(s): AppState,
    PageSession(session, _): PageSession<ProofSteps>,
) -> PageResult {
    let m = s.methods(&session.username)?;
    let t = title(&session);
    let markup = html! {
        p.account { (account(&s, &session.username)) }
        h1 { "Verify your identity" }
        ul.choices {
            @if m.app {
                li { a href="/signin/mfa" { "Approve a request on my Countersign app" } }
                li { a href="/signin/mfa/code" { "Use a verification code from my Countersign app" } }
            }
            @if let Some(phone) = &m.phone {
                li { form method="post" action="/signin/mfa/phone/send" {
                    (csrf(&session.csrf))
                    button.link type="submit" name="channel" value="sms" { "Text " (mask(phone)) }
                } }
                li { form method="post" action="/signin/mfa/phone/send" {
                    (csrf(&session.csrf))
                    button.link type="submit" name="channel" value="voice" { "Call " (mask(phone)) }
                } }
            }
            @if questions_allowed(&session, &m) {
                li { a href="/signin/mfa/questions" { "Answer my security questions" } }
            }
        }
        @if m.count() == 0 || (!m.app && m.phone.is_none() && !questions_allowed(&session, &m)) {
            p.error role="alert" { "No method you can use here is registered. Contact the help desk." }
        }
        p { "Other ways to sign in? Contact the help desk." }
    };
    Ok(page(&s, t, markup))
}

// --- A code from the app ---------------------------------------------------

fn totp_form(token: &str, account: &str, message: Option<&str>) -> Markup {
    html! {
        p.account { (account) }
        h1 { "Enter code" }
        (error(message))
        p { "Enter the code displayed in the Countersign app on your mobile device." }
        form method="post" action="/signin/mfa/code" {
            (csrf(token))
            label for="code" { "Code" }
            input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" autofocus required;
            button type="submit" { "Verify" }
        }
        p { a href="/signin/mfa/other" { "Other ways to verify" } }
    }
}

async fn totp_page(
    State(s): AppState,
    PageSession(session, _): PageSession<ProofSteps>,
) -> PageResult {
    let body = totp_form(&session.csrf, &account(&s, &session.username), None);
    Ok(page(&s, "Enter code", body))
}

async fn totp_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<CodeForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, ProofSteps::AT);
    let code = form.code.trim().to_string();
    let who = account(&s, &session.username);
    let again = |status: StatusCode, message: &str| {
        (
            status,
            page(
                &s,
                "Enter code",
                totp_form(&session.csrf, &who, Some(message)),
            ),
        )
            .into_response()
    };
    match s.verify_totp(&session.username, &code, &session.username, &ip, now()) {
        Ok(true) => proven(&s, &mut session, FactorMethod::AppCode),
        Ok(false) => Ok(again(
            StatusCode::UNAUTHORIZED,
            "That code didn't work. Check the code and try again.",
        )),
        Err(Error::Refused { code, message }) => Ok(again(refusal(code), &message)),
        Err(e) => Err(e.into()),
    }
}

// --- A code by text or call ------------------------------------------------

async fn phone_send(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<SendForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, ProofSteps::AT);
    let purpose = purpose(&session);
    match send_code(
        &s,
        &mut session,
        None,
        channel_of(&form.channel),
        purpose,
        &ip,
    )
    .await?
    {
        Ok(()) => Ok(Redirect::to("/signin/mfa/phone").into_response()),
        Err((status, message)) => {
            let body = html! {
                p.account { (account(&s, &session.username)) }
                h1 { "Verify your identity" }
                p.error role="alert" { (message) }
                p { a href="/signin/mfa/other" { "Other ways to verify" } }
            };
            Ok((status, page(&s, "Verify your identity", body)).into_response())
        }
    }
}

fn phone_body(
    s: &Server,
    session: &WebSession,
    message: Option<&str>,
) -> Result<Option<Markup>, Error> {
    let Some(sent) = pending_code(s, session)? else {
        return Ok(None);
    };
    Ok(Some(html! {
        p.account { (account(s, &session.username)) }
        h1 { "Enter code" }
        (code_form(&session.csrf, "/signin/mfa/phone", &sent.to, &sent.channel, message))
        p { a href="/signin/mfa/other" { "Other ways to verify" } }
    }))
}

async fn phone_page(
    State(s): AppState,
    PageSession(session, _): PageSession<ProofSteps>,
) -> PageResult {
    match phone_body(&s, &session, None)? {
        Some(body) => Ok(page(&s, "Enter code", body)),
        None => Ok(Redirect::to("/signin/mfa/other").into_response()),
    }
}

async fn phone_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<CodeForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, ProofSteps::AT);
    let (status, message) = match check_typed(&s, &session, &form.code, purpose(&session), &ip)? {
        Typed::NoCode => return Ok(Redirect::to("/signin/mfa/other").into_response()),
        Typed::Right(sent, _) => return proven(&s, &mut session, sent.factor()),
        Typed::Wrong(_, status, message) => (status, message),
    };
    match phone_body(&s, &session, Some(&message))? {
        Some(body) => Ok((status, page(&s, "Enter code", body)).into_response()),
        None => Ok(Redirect::to("/signin/mfa/other").into_response()),
    }
}

// --- Security questions ----------------------------------------------------

/// The questions asked in this session: drawn once from the registered
/// ones and kept, so reloading the page does not show others.
fn asked(s: &Server, session: &mut WebSession, m: &Methods) -> Result<Vec<usize>, Error> {
    let Some(proving) = session.stage.proving() else {
        return Err(Error::Internal("questions asked outside a proof".into()));
    };
    let kept = &proving.asked;
    if !kept.is_empty() && kept.iter().all(|q| m.questions.contains(q)) {
        return Ok(kept.clone());
    }
    let mut pool = m.questions.clone();
    let mut chosen = Vec::new();
    let mut draws = countersign_core::random::Draws::new(&s.rng);
    while chosen.len() < QUESTIONS_TO_ASK && !pool.is_empty() {
        let i = draws.below(pool.len() as u32)? as usize;
        chosen.push(pool.swap_remove(i));
    }
    chosen.sort_unstable();
    proving.asked = chosen.clone();
    save(s, session)?;
    Ok(chosen)
}

fn questions_body(
    s: &Server,
    session: &WebSession,
    asked: &[usize],
    message: Option<&str>,
) -> Markup {
    html! {
        p.account { (account(s, &session.username)) }
        h1 { "Answer your security questions" }
        (error(message))
        form method="post" action="/signin/mfa/questions" {
            (csrf(&session.csrf))
            @for (i, q) in asked.iter().enumerate() {
                label for=(format!("a{i}")) { (SECURITY_QUESTIONS.get(*q).copied().unwrap_or("?")) }
                input id=(format!("a{i}")) type="text" name=(format!("a{i}")) autocomplete="off" required;
            }
            button type="submit" { "Next" }
        }
        p { a href="/signin/mfa/other" { "Other ways to verify" } }
    }
}

async fn questions_page(
    State(s): AppState,
    PageSession(mut session, _): PageSession<ProofSteps>,
) -> PageResult {
    let m = s.methods(&session.username)?;
    if !questions_allowed(&session, &m) {
        return Ok(Redirect::to("/signin/mfa/other").into_response());
    }
    let asked = asked(&s, &mut session, &m)?;
    let body = questions_body(&s, &session, &asked, None);
    Ok(page(&s, "Answer your security questions", body))
}

/// Answers to the asked questions, in the order shown (`a0`..`a2`).
#[derive(Deserialize)]
struct AnswersForm {
    #[serde(default)]
    a0: SecretField,
    #[serde(default)]
    a1: SecretField,
    #[serde(default)]
    a2: SecretField,
}

async fn questions_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<AnswersForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, ProofSteps::AT);
    let m = s.methods(&session.username)?;
    if !questions_allowed(&session, &m) {
        return Ok(Redirect::to("/signin/mfa/other").into_response());
    }
    let asked = asked(&s, &mut session, &m)?;
    let given: Vec<String> = [form.a0, form.a1, form.a2]
        .into_iter()
        .take(asked.len())
        .map(|a| a.to_string())
        .collect();
    let (username, asked_now) = (session.username.clone(), asked.clone());
    let checked = s
        .hashing(move |s| s.check_answers(&username, &asked_now, &given, &ip, now()))
        .await;
    let message = match checked {
        Ok(true) => return proven(&s, &mut session, FactorMethod::Questions),
        Ok(false) => "One or more answers didn't match. Try again.".to_string(),
        Err(Error::Refused { message, .. }) => message,
        Err(e) => return Err(e.into()),
    };
    let body = questions_body(&s, &session, &asked, Some(&message));
    Ok((
        StatusCode::UNAUTHORIZED,
        page(&s, "Answer your security questions", body),
    )
        .into_response())
}

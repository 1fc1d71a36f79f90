//! "Keep your account secure": registering sign-in methods. Two are
//! required out of the Countersign app, a phone (code by text or call) and
//! five security questions; the app is offered first, "I want to set up a
//! different method" switches. The same pages add a missing method from
//! "My sign-ins" (stage `add`), which returns there when done.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::views::{back_to_my, csrf, info};
use super::{account, advance, advance_with, html as page, refusal, save, AppState, PageResult};
use crate::http::extract::ClientIp;
use crate::http::pages::{FirstRegistration, PageSession, RegistrationSteps, Stages};
use crate::http::pages::{NoFields, Posted};
use crate::infra::telephony::Channel;
use crate::store::NewAudit;
use crate::store::StageKind;
use crate::store::{Methods, WebSession};
use crate::{now, Error, Server};

mod app;
mod phone;
mod questions;

use app::*;
use phone::*;
pub(crate) use phone::{channel_of, check_typed, code_form, pending_code, send_code, Typed};
use questions::*;

/// A registration step's page: the account, the heading, and `body`.
pub(crate) fn step_page(s: &Server, session: &WebSession, body: Markup) -> Response {
    page(
        s,
        TITLE,
        html! {
            p.account { (account(s, &session.username)) }
            h1 { (TITLE) }
            (body)
        },
    )
}

/// Activation codes a session remembers (the QR codes it showed).
pub(crate) const MAX_CODES_SHOWN: usize = 5;

/// Methods an account needs.
pub(crate) const REQUIRED: usize = 2;

pub(crate) const TITLE: &str = "Keep your account secure";

/// The registration routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/signin/register", get(register_page))
        .route("/signin/register/choose", get(choose_page))
        .route("/signin/register/other-app", get(other_app_page))
        .route("/signin/register/status", get(app_status))
        .route("/signin/register/test", get(app_test))
        .route("/signin/register/intro", get(intro_page))
        .route("/signin/register/done", get(app_approved))
        .route("/signin/register/resend", post(app_resend))
        .route("/signin/register/finish", post(app_finish))
        .route("/signin/register/phone", post(phone_post))
        .route(
            "/signin/register/phone/verify",
            get(phone_verify_page).post(phone_verify_post),
        )
        .route("/signin/register/questions", post(questions_post))
        .route(
            "/signin/register/complete",
            get(complete_page).post(complete_post),
        )
        .route("/signin/register/skip", post(skip_post))
}

/// A method kind as the wizard names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    App,
    Phone,
    Questions,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(Kind::App),
            "phone" => Some(Kind::Phone),
            "questions" => Some(Kind::Questions),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::Phone => "phone",
            Kind::Questions => "questions",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::App => "Countersign app",
            Kind::Phone => "Phone",
            Kind::Questions => "Security Questions",
        }
    }

    fn registered(self, m: &Methods) -> bool {
        match self {
            Kind::App => m.app,
            Kind::Phone => m.phone.is_some(),
            Kind::Questions => !m.questions.is_empty(),
        }
    }
}

pub(crate) const KINDS: [Kind; 3] = [Kind::App, Kind::Phone, Kind::Questions];

/// "More information required": what comes before registering methods.
pub(crate) async fn intro_page(
    State(s): AppState,
    PageSession(session, _): PageSession<FirstRegistration>,
) -> PageResult {
    Ok(page(
        &s,
        "More information required",
        html! {
            p.account { (account(&s, &session.username)) }
            h1 { "More information required" }
            p { "Your organization needs more information to keep your account secure." }
            p { a href="/signin" { "Use a different account" } }
            p { a href="/help" { "Learn more" } }
            p { a.button href="/signin/register" { "Next" } }
        },
    ))
}

/// Where registration goes on after a method was added: the next method,
/// the end, or back to "My sign-ins" (which ends the `add` stage).
pub(crate) fn next_url(s: &Server, session: &mut WebSession) -> Result<&'static str, Error> {
    let m = s.methods(&session.username)?;
    Ok(if session.stage.kind() == StageKind::Add {
        session.stage = session.stage.then(StageKind::Done);
        save(s, session)?;
        "/my?added=1"
    } else if m.count() >= REQUIRED {
        "/signin/register/complete"
    } else {
        "/signin/register"
    })
}

#[derive(Deserialize)]
pub(crate) struct MethodQuery {
    method: Option<String>,
}

pub(crate) async fn register_page(
    State(s): AppState,
    Query(q): Query<MethodQuery>,
    PageSession(mut session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    let m = s.methods(&session.username)?;
    if session.stage.kind() == StageKind::Register && m.count() >= REQUIRED {
        return Ok(Redirect::to("/signin/register/complete").into_response());
    }
    let asked = q.method.as_deref().and_then(Kind::parse);
    let kind = match asked {
        Some(k) if !k.registered(&m) => k,
        _ => match KINDS.into_iter().find(|k| !k.registered(&m)) {
            Some(k) => k,
            None => return Ok(Redirect::to("/signin/register/complete").into_response()),
        },
    };
    let body = match kind {
        Kind::App => app_body(&s, &mut session)?,
        Kind::Phone => phone_form(&session.csrf, None, "", Channel::Sms),
        Kind::Questions => questions_form(&session.csrf, &[], &QuestionsForm::default()),
    };
    wizard(&s, &session, &m, kind, body)
}

/// The frame of every wizard page: progress, the method's form, the way
/// to another method and "Skip setup".
pub(crate) fn wizard(
    s: &Server,
    session: &WebSession,
    m: &Methods,
    kind: Kind,
    body: Markup,
) -> PageResult {
    let user = s.user(&session.username)?;
    let t = now();
    let skip = (session.stage.kind() == StageKind::Register)
        .then(|| s.skip_setup_ends(&user, t))
        .flatten()
        .map(|until| (until.saturating_sub(t).div_ceil(3600), until));
    let step = (m.count() + 1).min(REQUIRED);
    let markup = html! {
        p.account { (account(s, &session.username)) }
        h1 { (TITLE) }
        @if session.stage.kind() == StageKind::Register {
            p { "Your organization requires you to set up the following methods of proving who you are." }
            p.progress { "Method " (step) " of " (REQUIRED) ": " (kind.label()) }
        }
        (body)
        p { a href="/signin/register/choose" { "I want to set up a different method" } }
        @if let Some((hours, until)) = skip {
            form method="post" action="/signin/register/skip" {
                (csrf(&session.csrf))
                p { "If you skip setup, you will be prompted again in " (hours) (if hours == 1 { " hour, at " } else { " hours, at " })
                    (countersign_core::time::format_utc(until)) ". After that, you must set up your methods to sign in." }
                button.secondary type="submit" { "Skip setup" }
            }
        }
        @if session.stage.kind() == StageKind::Add { (back_to_my(&session.csrf)) }
    };
    Ok(page(s, TITLE, markup))
}

pub(crate) async fn choose_page(
    State(s): AppState,
    PageSession(session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    let m = s.methods(&session.username)?;
    let open: Vec<Kind> = KINDS.into_iter().filter(|k| !k.registered(&m)).collect();
    let markup = html! {
        p.account { (account(&s, &session.username)) }
        h1 { "Choose a different method" }
        form method="get" action="/signin/register" {
            label for="method" { "Which method would you like to use?" }
            select #method name="method" {
                @for k in &open { option value=(k.key()) { (k.label()) } }
            }
            button type="submit" { "Confirm" }
        }
        p { a href="/signin/register" { "Cancel" } }
    };
    Ok(page(&s, "Choose a different method", markup))
}

pub(crate) async fn other_app_page(State(s): AppState) -> Response {
    page(
        &s,
        TITLE,
        html! {
            h1 { (TITLE) }
            p.error role="alert" { "Other authenticator apps are not supported. Use the Countersign app, a phone, or security questions." }
            p { a href="/signin/register" { "Back" } }
        },
    )
}

/// A password-only registration met an account that has a method now
/// (registered from another browser): prove one of them first.
pub(crate) fn methods_changed(s: &Server, session: &mut WebSession) -> Result<Response, Error> {
    super::back_to_proof(s, session)?;
    Ok(Redirect::to("/signin/mfa").into_response())
}

// --- The end -------------------------------------------------------------

pub(crate) async fn complete_page(
    State(s): AppState,
    PageSession(session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    let m = s.methods(&session.username)?;
    if m.count() < REQUIRED {
        return Ok(Redirect::to("/signin/register").into_response());
    }
    let markup = html! {
        p.account { (account(&s, &session.username)) }
        h1 { "Success!" }
        p { "Great job! You have successfully set up your security info. Choose \"Done\" to continue signing in." }
        h2 { "Your sign-in methods:" }
        ul.methods {
            @for k in KINDS.iter().filter(|k| k.registered(&m)) {
                li { (k.label()) @if *k == Kind::Phone { @if let Some(p) = &m.phone { " " (countersign_core::methods::mask(p)) } } }
            }
        }
        form method="post" action="/signin/register/complete" {
            (csrf(&session.csrf))
            button type="submit" { "Done" }
        }
    };
    Ok(page(&s, "Success!", markup))
}

pub(crate) async fn complete_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NoFields>,
) -> PageResult {
    let (mut session, _form) = at!(posted, RegistrationSteps::AT);
    let m = s.methods(&session.username)?;
    if m.count() < REQUIRED {
        return Ok(Redirect::to("/signin/register").into_response());
    }
    let next = if session.stage.kind() == StageKind::Add {
        StageKind::Done
    } else {
        StageKind::Stay
    };
    let who = session.username.clone();
    let row = NewAudit::of(&who, "signin.register.complete", &who, &ip).with("ok", "");
    advance_with(&s, &mut session, next, Some(&row))
}

/// "Skip setup": signed in without the missing methods until the grace ends.
pub(crate) async fn skip_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NoFields>,
) -> PageResult {
    let (mut session, _form) = at!(posted, RegistrationSteps::AT);
    if session.stage.kind() != StageKind::Register {
        return Ok(Redirect::to("/my").into_response());
    }
    match s.skip_setup(&session.username, &ip, now()) {
        Ok(_) => advance(&s, &mut session, StageKind::Stay),
        Err(Error::Refused { code, message }) => {
            Ok((refusal(code), page(&s, TITLE, info(TITLE, &[&message]))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

//! "My sign-ins": the signed-in landing page. The applications, recent
//! sign-ins and the registered methods, where a method can be added
//! (through the registration pages, stage `add`) or removed (after a
//! confirmation; the last method cannot be removed).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use countersign_core::methods::mask;
use countersign_core::time::format_utc;
use maud::html;
use serde::Deserialize;

use super::views::csrf;
use super::{account, html as page, reverify_if_stale, save, AppState, PageResult};
use crate::domain::methods::MethodKind;
use crate::domain::Code;
use crate::http::extract::ClientIp;
use crate::http::pages::{NoFields, Posted};
use crate::http::pages::{PageSession, SignedIn};
use crate::store::StageKind;
use crate::store::{AuditFilter, Methods};
use crate::{now, Error, Server};

/// The routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/my", get(my_page))
        .route("/my/methods/add", post(add_post))
        .route("/my/methods/remove", get(remove_page).post(remove_post))
        .route("/my/back", post(back_post))
        .route(
            "/my/password",
            get(super::my_password::password_page).post(super::my_password::password_post),
        )
}

#[derive(Deserialize)]
struct MyQuery {
    added: Option<String>,
    removed: Option<String>,
}

/// An audit outcome as the officer reads it.
fn in_words(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "Succeeded",
        "browser_session" => "Signed in for this browser session",
        "stay_signed_in" => "Signed in, staying signed in",
        "refused" => "Refused",
        "locked" => "Refused; the account was locked",
        _ => "Other",
    }
}

/// The registered methods as (kind, what the page says).
fn listed(
    s: &Server,
    user_id: i64,
    m: &Methods,
) -> Result<Vec<(&'static str, String)>, crate::Error> {
    let mut out = Vec::new();
    for d in s.store.devices_of(user_id)? {
        out.push((
            "app",
            format!("Countersign app: {} ({})", d.name, d.platform),
        ));
    }
    if let Some(p) = &m.phone {
        out.push(("phone", format!("Phone: {}", mask(p))));
    }
    if !m.questions.is_empty() {
        out.push((
            "questions",
            format!("Security questions ({} answered)", m.questions.len()),
        ));
    }
    Ok(out)
}

async fn my_page(
    State(s): AppState,
    Query(q): Query<MyQuery>,
    PageSession(session, _): PageSession<SignedIn>,
) -> PageResult {
    let user = s.user(&session.username)?;
    let m = s.store.methods_of(user.id)?;
    let methods = listed(&s, user.id, &m)?;
    let filter = AuditFilter {
        user: Some(user.username.clone()),
        action: Some("signin.".into()),
        newest: Some(100),
        ..AuditFilter::default()
    };
    let recent: Vec<(u64, String, String, String)> = s
        .store
        .audit_entries(&filter)?
        .into_iter()
        .rev()
        .filter(|e| e.action == "signin.complete" || e.action == "signin.password")
        .take(10)
        .map(|e| (e.at, e.action, e.outcome, e.ip))
        .collect();
    let missing = ["app", "phone", "questions"]
        .into_iter()
        .filter(|k| !methods.iter().any(|(kind, _)| kind == k))
        .count();
    let markup = html! {
        h1 { "My sign-ins" }
        p { "Signed in as " strong { (account(&s, &session.username)) } }
        @if q.added.is_some() { p.ok role="status" { "The sign-in method was added." } }
        @if q.removed.is_some() { p.ok role="status" { "The sign-in method was removed." } }
        @if !s.config.web.return_to_allow.is_empty() {
            h2 { "Applications" }
            ul { @for app in &s.config.web.return_to_allow { li { a href=(app) { (app) } } } }
        }
        h2 { "Sign-in methods" }
        @if m.count() < 2 {
            p.error role="alert" { "Your organization requires two sign-in methods. Add another." }
        }
        ul.methods {
            @for (kind, text) in &methods {
                li { (text) " " a href=(format!("/my/methods/remove?method={kind}")) { "Remove" } }
            }
        }
        @if missing > 0 {
            form method="post" action="/my/methods/add" {
                (csrf(&session.csrf))
                button.secondary type="submit" { "Add sign-in method" }
            }
        }
        h2 { "Password" }
        p { a href="/my/password" { "Change password" } }
        @if user.role != crate::store::Role::Officer {
            p { a href="/helpdesk" { "Help desk console" } }
        }
        h2 { "Recent activity" }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Step" } th scope="col" { "Result" } th scope="col" { "From" } } }
            tbody {
                @for (at, action, outcome, ip) in &recent {
                    tr {
                        td { (format_utc(*at)) }
                        td { (if action == "signin.complete" { "Signed in" } else { "Password checked" }) }
                        td { (in_words(outcome)) }
                        td { (ip) }
                    }
                }
            }
        }
        form method="post" action="/signout/pick" {
            (csrf(&session.csrf))
            button type="submit" { "Sign out" }
        }
    };
    Ok(page(&s, "My sign-ins", markup))
}

/// "Cancel" while adding a method or proving one again: signed in as
/// before, at "My sign-ins".
async fn back_post(State(s): AppState, posted: Posted<NoFields>) -> PageResult {
    let (mut session, _form) = at!(posted, &[StageKind::Add, StageKind::Reverify]);
    session.stage = session.stage.then(StageKind::Done);
    save(&s, &session)?;
    Ok(Redirect::to("/my").into_response())
}

async fn add_post(State(s): AppState, posted: Posted<NoFields>) -> PageResult {
    // A stale proof is sent to prove a method again when the session is
    // next loaded at `add` (see `second_factor_rule`).
    let (mut session, _form) = at!(posted, &[StageKind::Done]);
    session.stage = session.stage.then(StageKind::Add);
    save(&s, &session)?;
    Ok(Redirect::to("/signin/register/choose").into_response())
}

#[derive(Deserialize)]
struct RemoveQuery {
    method: Option<String>,
}

async fn remove_page(
    State(s): AppState,
    Query(q): Query<RemoveQuery>,
    PageSession(session, _): PageSession<SignedIn>,
) -> PageResult {
    let Some(kind) = q.method.as_deref().and_then(MethodKind::parse) else {
        return Ok(Redirect::to("/my").into_response());
    };
    let m = s.methods(&session.username)?;
    let what = match kind {
        MethodKind::App => "the Countersign app",
        MethodKind::Phone => "your phone",
        MethodKind::Questions => "your security questions",
    };
    let last = m.count() <= 1;
    let markup = html! {
        h1 { "Remove a sign-in method" }
        @if last {
            p.error role="alert" { "This is your only sign-in method, so it can't be removed. Add another method first." }
        } @else {
            p { "Remove " (what) "? You won't be able to use it to sign in or to reset your password." }
            @if m.count() <= 2 {
                p { "You will have one method left; you'll be asked to set up another at your next sign-in." }
            }
            form method="post" action="/my/methods/remove" {
                (csrf(&session.csrf))
                input type="hidden" name="method" value=(q.method.as_deref().unwrap_or_default());
                button type="submit" { "Remove" }
            }
        }
        p { a href="/my" { "Cancel" } }
    };
    Ok(page(&s, "Remove a sign-in method", markup))
}

/// Which method to remove: `app`, `phone` or `questions`.
#[derive(Deserialize)]
struct MethodForm {
    #[serde(default)]
    method: String,
}

async fn remove_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<MethodForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, &[StageKind::Done]);
    if reverify_if_stale(&s, &mut session)? {
        return Ok(Redirect::to("/signin/mfa").into_response());
    }
    let Some(kind) = MethodKind::parse(&form.method) else {
        return Ok(Redirect::to("/my").into_response());
    };
    // The last method stays (the domain refuses it in the removing
    // transaction); the confirmation page says why.
    match s.remove_method(&session.username, kind, &session.username, &ip, now()) {
        Err(Error::Refused {
            code: Code::LastMethod,
            ..
        }) => Ok(
            Redirect::to(&format!("/my/methods/remove?method={}", kind.as_str())).into_response(),
        ),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Redirect::to("/my?removed=1").into_response()),
    }
}

//! Signing out: "Pick an account to sign out", "Please wait while we sign
//! you out" (a meta refresh, no script), "You signed out of your account".

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use super::{account, expired_cookie, html, load, session_row, views, AppState, Page, PageResult};
use crate::http::extract::ClientIp;
use crate::http::pages::{NoFields, Posted};
use crate::now;

pub(super) async fn page(State(s): AppState, headers: HeaderMap) -> PageResult {
    match load(&s, &headers)? {
        Some(session) if !session.username.is_empty() => Ok(html(
            &s,
            "Sign out",
            views::pick_account(&session.csrf, &account(&s, &session.username)),
        )),
        _ => Ok(Redirect::to("/signout/done").into_response()),
    }
}

pub(super) async fn pick(State(s): AppState, posted: Posted<NoFields>) -> PageResult {
    let session = match posted.any_stage() {
        Ok(Some((session, NoFields {}))) => session,
        Ok(None) => return Ok(Redirect::to("/signout/done").into_response()),
        Err(refused) => return Ok(*refused),
    };
    Ok(html(
        &s,
        "Sign out",
        views::pick_account(&session.csrf, &account(&s, &session.username)),
    ))
}

pub(super) async fn post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NoFields>,
) -> PageResult {
    let session = match posted.any_stage() {
        Ok(Some((session, NoFields {}))) => session,
        Ok(None) => return Ok(Redirect::to("/signout/done").into_response()),
        Err(refused) => return Ok(*refused),
    };
    s.write(now(), |w| {
        w.delete_session(&session.id_hash)?;
        w.audit(&session_row(&session, "signout", &ip, "ok"))
    })?;
    Ok(Page {
        body: Redirect::to("/signout/wait").into_response(),
        cookie: Some(expired_cookie()),
    }
    .into_response())
}

pub(super) async fn wait(State(s): AppState) -> Response {
    let mut resp = html(&s, "Signing out", views::signing_out());
    resp.headers_mut()
        .insert("refresh", HeaderValue::from_static("1; url=/signout/done"));
    resp
}

pub(super) async fn done(State(s): AppState) -> Response {
    html(&s, "You signed out", views::signed_out())
}

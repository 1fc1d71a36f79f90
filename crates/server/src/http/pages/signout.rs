//! Signing out: "Pick an account to sign out", "Please wait while we sign
//! you out" (a meta refresh, no script), "You signed out of your account".

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;

use super::{
    account, csrf_ok, expired_cookie, forbidden, html, load, session_row, views, AppState, Page,
    PageResult,
};
use crate::http::extract::ClientIp;
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

pub(super) async fn pick(
    State(s): AppState,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let Some(session) = load(&s, &headers)? else {
        return Ok(Redirect::to("/signout/done").into_response());
    };
    if !csrf_ok(&session, &form) {
        return Ok(forbidden(&s));
    }
    Ok(html(
        &s,
        "Sign out",
        views::pick_account(&session.csrf, &account(&s, &session.username)),
    ))
}

pub(super) async fn post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let Some(session) = load(&s, &headers)? else {
        return Ok(Redirect::to("/signout/done").into_response());
    };
    if !csrf_ok(&session, &form) {
        return Ok(forbidden(&s));
    }
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

//! New User Registration: the request form, queued for an administrator
//! (`countersign-server user requests`).

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Form;

use super::{
    csrf_ok, forbidden, fresh, html, issue, load, pages, refusal, AppState, Page, PageResult,
};
use crate::api::ClientIp;
use crate::registration;
use crate::{now, Error};

/// The request form. It uses the browser's sign-in session (or starts one)
/// for its CSRF token, without moving the sign-in along.
pub(super) async fn page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let (session, cookie) = match load(&s, &headers)? {
        Some(session) => (session, None),
        None => {
            let mut session = fresh("start");
            let cookie = issue(&s, &mut session, None)?;
            (session, Some(cookie))
        }
    };
    let body = pages::new_user(&session.csrf, &HashMap::new(), &[]);
    Ok(Page {
        body: html(&s, "New User Registration", body),
        cookie,
    }
    .into_response())
}

pub(super) async fn post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let Some(session) = load(&s, &headers)? else {
        return Ok(forbidden(&s));
    };
    if !csrf_ok(&session, &form) {
        return Ok(forbidden(&s));
    }
    let refill = |problems: &[String], status: StatusCode| {
        let body = pages::new_user(&session.csrf, &form, problems);
        (status, html(&s, "New User Registration", body)).into_response()
    };
    let request = match registration::validate(&form) {
        Ok(r) => r,
        Err(problems) => return Ok(refill(&problems, StatusCode::UNPROCESSABLE_ENTITY)),
    };
    match s.request_registration(&request, &ip, now()) {
        Ok(id) => Ok(html(
            &s,
            "Request sent",
            pages::new_user_sent(&request.email, id),
        )),
        Err(Error::Refused {
            status, message, ..
        }) => Ok(refill(&[message], refusal(status))),
        Err(e) => Err(e.into()),
    }
}

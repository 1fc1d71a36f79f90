//! New User Registration: the request form, queued for an administrator
//! (`countersign-server user requests`).

use serde::Deserialize;

use crate::http::pages::PageForm;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::presession::PreSession;
use super::{forbidden, html, refusal, views, AppState, Page, PageResult};
use crate::domain::registration;
use crate::domain::registration::RegistrationForm;
use crate::http::extract::ClientIp;
use crate::{now, Error};

/// The request form. Its token is the browser's pre-session (nothing is
/// stored for a visitor who only looks).
pub(super) async fn page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let pre = PreSession::carried_or_new(&s, &headers)?;
    let body = views::new_user(&pre.token, &RegistrationForm::default(), &[]);
    Ok(Page {
        body: html(&s, "New User Registration", body),
        cookie: Some(pre.cookie()),
    }
    .into_response())
}

/// The request form with the pre-session's token.
#[derive(Deserialize)]
pub(super) struct NewUserPost {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: RegistrationForm,
}

pub(super) async fn post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    PageForm(NewUserPost { csrf, form }): PageForm<NewUserPost>,
) -> PageResult {
    let Some(pre) = PreSession::from_headers(&headers).filter(|p| p.form_ok(Some(&csrf))) else {
        return Ok(forbidden(&s));
    };
    let refill = |problems: &[String], status: StatusCode| {
        let body = views::new_user(&pre.token, &form, problems);
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
            views::new_user_sent(&request.email, id),
        )),
        Err(Error::Refused { code, message }) => Ok(refill(&[message], refusal(code))),
        Err(e) => Err(e.into()),
    }
}

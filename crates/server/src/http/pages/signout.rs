//! Signing out: "Pick an account to sign out", "Please wait while we sign
//! you out" (a meta refresh, no script), "You signed out of your account".
//! Signing out also ends what the session gave applications: their access
//! tokens are revoked, and those that asked are sent a logout token.
//!
//! When an application started the logout (`/oidc/logout`), the pages
//! carry where it asked to return (`client`, `then`, `state`), checked again
//! on every page against the application's registered addresses, and the
//! last page offers "log in to the previous application again" there.

use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{account, expired_cookie, html, load, session_row, views, AppState, Page, PageResult};
use crate::domain::oidc::authorize::redirect_with;
use crate::http::extract::ClientIp;
use crate::http::pages::views::ReturnTo;
use crate::http::pages::Posted;
use crate::{now, Server};
use axum::http::HeaderMap;

/// Where an application asked to return after the logout.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Leaving {
    #[serde(default)]
    client: String,
    #[serde(default)]
    then: String,
    #[serde(default)]
    state: String,
    /// The application's request did not verify: no way back to it.
    #[serde(default)]
    unverified: Option<String>,
}

impl Leaving {
    /// The way back, if `then` is one of `client`'s registered addresses.
    fn way_back(&self, s: &Server) -> Option<ReturnTo> {
        let client = s.client(&self.client).ok()??;
        client
            .post_logout_redirect_uris
            .contains(&self.then)
            .then(|| ReturnTo {
                name: client.name,
                url: redirect_with(&self.then, &[("state", &self.state)]),
            })
    }

    /// The query that carries it to the next page.
    fn query(&self) -> String {
        if self.unverified.is_some() {
            return "?unverified=1".into();
        }
        if self.then.is_empty() {
            return String::new();
        }
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client", &self.client)
            .append_pair("then", &self.then)
            .append_pair("state", &self.state)
            .finish();
        format!("?{q}")
    }
}

pub(super) async fn page(
    State(s): AppState,
    headers: HeaderMap,
    Query(leaving): Query<Leaving>,
) -> PageResult {
    let notice = leaving.unverified.is_some().then_some(UNVERIFIED);
    match load(&s, &headers)? {
        Some(session) if !session.username.is_empty() => Ok(html(
            &s,
            "Sign out",
            views::pick_account(
                &session.csrf,
                &account(&s, &session.username),
                &carried(&leaving),
                notice,
            ),
        )),
        _ => Ok(Redirect::to(&format!("/signout/done{}", leaving.query())).into_response()),
    }
}

/// What the officer is told when an application's logout request did not
/// verify: before signing out, and after.
const UNVERIFIED: &str =
    "The application's sign-out request could not be verified. If you sign out here, you will not be sent back to it.";
const UNVERIFIED_DONE: &str =
    "The application's sign-out request could not be verified, so you are not sent back to it.";

/// The hidden fields that carry the way back through the forms.
fn carried(l: &Leaving) -> Vec<(&'static str, String)> {
    if l.then.is_empty() {
        return Vec::new();
    }
    vec![
        ("client", l.client.clone()),
        ("then", l.then.clone()),
        ("state", l.state.clone()),
    ]
}

pub(super) async fn pick(State(s): AppState, posted: Posted<Leaving>) -> PageResult {
    let (session, leaving) = match posted.any_stage() {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Redirect::to("/signout/done").into_response()),
        Err(refused) => return Ok(*refused),
    };
    Ok(html(
        &s,
        "Sign out",
        views::pick_account(
            &session.csrf,
            &account(&s, &session.username),
            &carried(&leaving),
            None,
        ),
    ))
}

pub(super) async fn post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<Leaving>,
) -> PageResult {
    let (session, leaving) = match posted.any_stage() {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(Redirect::to("/signout/done").into_response()),
        Err(refused) => return Ok(*refused),
    };
    let subject = s
        .store
        .user_by_name(&session.username)?
        .map(|u| u.subject)
        .unwrap_or_default();
    let t = now();
    let clients = s.write(t, |w| {
        w.delete_session(&session.id_hash)?;
        w.audit(&session_row(&session, "signout", &ip, "ok"))?;
        if session.sid.is_empty() {
            return Ok(Vec::new());
        }
        w.end_signins(&session.sid, t)
    })?;
    let deliveries = s.logout_tokens(&clients, &session.sid, &subject, t)?;
    // The session is gone on disk before applications are told so.
    s.store.commit_now()?;
    s.deliver_logouts(deliveries, ip);
    Ok(Page {
        body: Redirect::to(&format!("/signout/wait{}", leaving.query())).into_response(),
        cookie: Some(expired_cookie()),
    }
    .into_response())
}

pub(super) async fn wait(State(s): AppState, Query(leaving): Query<Leaving>) -> Response {
    let next = format!("/signout/done{}", leaving.query());
    let mut resp = html(&s, "Signing out", views::signing_out(&next));
    if let Ok(refresh) = HeaderValue::from_str(&format!("1; url={next}")) {
        resp.headers_mut().insert("refresh", refresh);
    }
    resp
}

pub(super) async fn done(
    State(s): AppState,
    headers: HeaderMap,
    Query(leaving): Query<Leaving>,
) -> PageResult {
    // A browser still signed in has not signed out: a link here must not
    // tell it otherwise. It is asked to pick the account first.
    if load(&s, &headers)?.is_some_and(|x| !x.username.is_empty()) {
        return Ok(Redirect::to(&format!("/signout{}", leaving.query())).into_response());
    }
    Ok(html(
        &s,
        "You signed out",
        views::signed_out(
            &s.config.org_name,
            leaving.way_back(&s).as_ref(),
            leaving.unverified.is_some().then_some(UNVERIFIED_DONE),
        ),
    ))
}

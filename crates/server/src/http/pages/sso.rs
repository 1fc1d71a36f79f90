//! Single sign-on in the browser: an application's authorization request
//! (`/oidc/authorize`), its continuation once the officer has signed in
//! (`/oidc/continue`), and an application's logout request
//! (`/oidc/logout`), which leads through the sign-out pages.
//!
//! A request that needs the officer to sign in (again), prove a method or
//! register one is kept in the database; the session goes to that step with
//! the continuation as its `return_to`, and the sign-in pages say which
//! application the officer is signing in to.

use crate::http::pages::PageForm;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::{html, load, save, stage_url, views, AppState, PageResult, Posted};
use crate::domain::oidc::{AuthRequest, Next, Refusal, SignedIn};
use crate::http::extract::ClientIp;
use crate::store::{NewAudit, StageKind, WaitingRequest, WebSession};
use crate::{now, Error, Server};

/// The continuation of waiting request `id`: a session's `return_to`.
pub(crate) fn continuation(id: &str) -> String {
    format!("/oidc/continue?request={id}")
}

/// The waiting request a `return_to` continues, if it is a continuation.
pub(crate) fn continued_request(return_to: &str) -> Option<&str> {
    let id = return_to.strip_prefix("/oidc/continue?request=")?;
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(id)
}

/// The name of the application a `return_to` continues to, if any.
pub(crate) fn application_of(s: &Server, return_to: &str) -> Result<Option<String>, Error> {
    let Some(id) = continued_request(return_to) else {
        return Ok(None);
    };
    let Some(waiting) = s.store.waiting_request(id, now())? else {
        return Ok(None);
    };
    Ok(s.client(&waiting.client_id)?.map(|c| c.name))
}

/// The origins a sign-in returning to `return_to` ends at: the waiting
/// request's redirect address for an application, or the allow-listed
/// address itself. Each is a serialised URL origin (no spaces or `;`).
pub(crate) fn return_origins(s: &Server, return_to: &str) -> Result<Vec<String>, Error> {
    let origin = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| u.origin())
            .filter(url::Origin::is_tuple)
            .map(|o| o.ascii_serialization())
    };
    if let Some(id) = continued_request(return_to) {
        let Some(waiting) = s.store.waiting_request(id, now())? else {
            return Ok(Vec::new());
        };
        let redirect = url::form_urlencoded::parse(waiting.query.as_bytes())
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        return Ok(origin(&redirect).into_iter().collect());
    }
    Ok(origin(return_to).into_iter().collect())
}

/// `GET /oidc/authorize`.
pub(crate) async fn authorize(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> PageResult {
    start(&s, &headers, &ip, &query.unwrap_or_default())
}

/// `POST /oidc/authorize`: the same request as a form.
pub(crate) async fn authorize_form(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    PageForm(pairs): PageForm<Vec<(String, String)>>,
) -> PageResult {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    start(&s, &headers, &ip, &query)
}

fn start(s: &Server, headers: &HeaderMap, ip: &str, query: &str) -> PageResult {
    match s.authorization_request(query)? {
        Ok(req) => go_on(s, headers, ip, &req, query, None),
        Err(refusal) => {
            let client = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let asking = Asking::new(s, headers, ip, &client)?;
            refused(s, &asking, refusal)
        }
    }
}

/// Who an authorization was for, to record a refusal: the signed-in
/// officer (if any), the address, the application.
struct Asking<'a> {
    who: String,
    ip: &'a str,
    client: &'a str,
}

impl<'a> Asking<'a> {
    fn new(s: &Server, headers: &HeaderMap, ip: &'a str, client: &'a str) -> Result<Self, Error> {
        let who = load(s, headers)?
            .filter(|x| x.stage.kind() == StageKind::Done)
            .map(|x| x.username)
            .unwrap_or_default();
        Ok(Asking { who, ip, client })
    }
}

#[derive(Deserialize)]
pub(crate) struct ContinueQuery {
    #[serde(default)]
    request: String,
}

/// `GET /oidc/continue`: back from the sign-in pages.
pub(crate) async fn resume(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(q): Query<ContinueQuery>,
) -> PageResult {
    let Some(waiting) = s.store.waiting_request(&q.request, now())? else {
        let body = views::info(
            "This sign-in request has expired",
            &["Go back to the application and sign in from there again."],
        );
        return Ok((StatusCode::BAD_REQUEST, html(&s, "Sign in", body)).into_response());
    };
    let req = match s.authorization_request(&waiting.query)? {
        Ok(req) => req,
        Err(refusal) => {
            return refused(
                &s,
                &Asking::new(&s, &headers, &ip, &waiting.client_id)?,
                refusal,
            )
        }
    };
    let query = waiting.query.clone();
    go_on(&s, &headers, &ip, &req, &query, Some((q.request, waiting)))
}

/// Issues the code, or sends the browser to the step still missing.
fn go_on(
    s: &Server,
    headers: &HeaderMap,
    ip: &str,
    req: &AuthRequest,
    query: &str,
    waiting: Option<(String, WaitingRequest)>,
) -> PageResult {
    let t = now();
    let mut session = load(s, headers)?.filter(|x| !x.username.is_empty());
    // A session from before single sign-on has no public id yet.
    if let Some(x) = session.as_mut().filter(|x| x.sid.is_empty()) {
        x.sid = crate::domain::random_token(&s.rng)?;
        save(s, x)?;
    }
    let done = session
        .as_ref()
        .filter(|x| x.stage.kind() == StageKind::Done);
    let who = match done {
        Some(x) => Some(signed_in(s, x)?),
        None => None,
    };
    let asked_at = waiting.as_ref().map(|(_, w)| w.created_at);
    let next = req.next(who.as_ref(), asked_at, t);
    if let (Next::Issue, Some(who), Some(x)) = (&next, &who, done) {
        if let Some((id, _)) = &waiting {
            s.write(t, |w| w.delete_waiting_request(id))?;
        }
        let location = s.issue_code(req, who, &x.username, ip, t)?;
        return Ok(Redirect::to(&location).into_response());
    }
    if let Next::Refuse(refusal) = next {
        let asking = Asking {
            who: done.map(|x| x.username.clone()).unwrap_or_default(),
            ip,
            client: &req.client.id,
        };
        return refused(s, &asking, refusal);
    }
    let id = match waiting {
        Some((id, _)) => id,
        None => {
            let id = crate::domain::random_token(&s.rng)?;
            let w = WaitingRequest {
                client_id: req.client.id.clone(),
                query: query.to_string(),
                created_at: t,
            };
            let expires = t + s.config.oidc.request_minutes * 60;
            s.write(t, |tx| tx.insert_waiting_request(&id, &w, expires))?;
            id
        }
    };
    let step = match next {
        Next::Prove => StageKind::Mfa,
        Next::Register => StageKind::Register,
        _ => StageKind::Password,
    };
    match session {
        // Signed in, but not enough for this application: the officer is
        // asked first (a link from anywhere must not reset a session).
        Some(x) if x.stage.kind() == StageKind::Done => {
            let why = match step {
                StageKind::Mfa => "asks you to verify it's you with a second method",
                StageKind::Register => "needs a second sign-in method: set one up to continue",
                _ => "asks you to sign in again",
            };
            let body = views::step_up(&x.csrf, &req.client.name, why, &id);
            Ok(html(s, "Sign in", body))
        }
        _ => Ok(Redirect::to(&format!("/signin?authorize={id}")).into_response()),
    }
}

#[derive(Deserialize)]
pub(crate) struct StepUpForm {
    #[serde(default)]
    request: String,
}

/// `POST /oidc/continue`: the officer agreed to the step an application
/// needs; the same session takes it (it keeps its sid) and comes back.
pub(crate) async fn step_up(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<StepUpForm>,
) -> PageResult {
    let (mut x, form) = at!(posted, &[StageKind::Done]);
    let Some(waiting) = s.store.waiting_request(&form.request, now())? else {
        return Ok(Redirect::to("/my").into_response());
    };
    let req = match s.authorization_request(&waiting.query)? {
        Ok(req) => req,
        Err(refusal) => {
            let asking = Asking {
                who: x.username.clone(),
                ip: &ip,
                client: &waiting.client_id,
            };
            return refused(&s, &asking, refusal);
        }
    };
    let who = signed_in(&s, &x)?;
    // As when the request arrived: the officer has not signed in since
    // (a password given in the same second must not count as one).
    let step = match req.next(Some(&who), None, now()) {
        Next::Prove => StageKind::Mfa,
        Next::Register => StageKind::Register,
        Next::SignIn => StageKind::Password,
        _ => return Ok(Redirect::to(&continuation(&form.request)).into_response()),
    };
    // The factor goes along, except back to the password.
    x.stage = x.stage.then(step);
    x.return_to = continuation(&form.request);
    save(&s, &x)?;
    Ok(Redirect::to(stage_url(step)).into_response())
}

/// `GET /oidc/cancel`: the officer declined the step an application asked
/// for; the application hears `access_denied`.
pub(crate) async fn cancel(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(q): Query<ContinueQuery>,
) -> PageResult {
    let Some(waiting) = s.store.waiting_request(&q.request, now())? else {
        return Ok(Redirect::to("/my").into_response());
    };
    s.write(now(), |w| w.delete_waiting_request(&q.request))?;
    let asking = Asking::new(&s, &headers, &ip, &waiting.client_id)?;
    let refusal = match s.authorization_request(&waiting.query)? {
        Ok(req) => Refusal::Redirect {
            redirect_uri: req.redirect_uri,
            state: req.state,
            error: "access_denied",
            description: "the officer cancelled the sign-in".into(),
        },
        Err(refusal) => refusal,
    };
    refused(&s, &asking, refusal)
}

/// The session as an authorization sees it.
fn signed_in(s: &Server, x: &WebSession) -> Result<SignedIn, Error> {
    let user = s.user(&x.username)?;
    Ok(SignedIn {
        user_id: user.id,
        sid: x.sid.clone(),
        authenticated_at: x.authenticated_at,
        factor: x.stage.factor(),
        has_methods: s.store.methods_of(user.id)?.count() > 0,
    })
}

/// A refusal, recorded: a page, or an error sent back to the application.
fn refused(s: &Server, asking: &Asking<'_>, refusal: Refusal) -> PageResult {
    let why = match &refusal {
        Refusal::Page(message) => message.clone(),
        Refusal::Redirect {
            error, description, ..
        } => format!("{error}: {description}"),
    };
    s.audit_refused_authorization(&asking.who, asking.ip, asking.client, &why, now())?;
    Ok(match refusal {
        Refusal::Page(message) => {
            let body = views::info("This sign-in request cannot be used", &[&message]);
            (StatusCode::BAD_REQUEST, html(s, "Sign in", body)).into_response()
        }
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => Redirect::to(&s.refusal_location(&redirect_uri, &state, error, &description))
            .into_response(),
    })
}

/// `GET /oidc/logout`: an application's logout request. It leads through
/// the sign-out pages; only a verified request returns to the application.
pub(crate) async fn logout(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> PageResult {
    let session = load(&s, &headers)?;
    let sid = session.as_ref().map(|x| x.sid.as_str());
    let who = session.as_ref().map_or("", |x| x.username.as_str());
    let target = match s.logout_request(&query.unwrap_or_default(), sid, now())? {
        Ok(req) => {
            let client = req.client.as_ref().map_or("", |c| c.id.as_str());
            let row = NewAudit::of(who, "oidc.logout", who, &ip).with("ok", client);
            s.audit(row, now())?;
            match (req.client, req.post_logout_redirect_uri) {
                (Some(client), Some(then)) => {
                    let q = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("client", &client.id)
                        .append_pair("then", &then)
                        .append_pair("state", &req.state)
                        .finish();
                    format!("/signout?{q}")
                }
                _ => "/signout".to_string(),
            }
        }
        // The reason is for the application's developers; the officer is
        // told only that there is no way back to it.
        Err(why) => {
            let row = NewAudit::of(who, "oidc.logout", who, &ip).with("refused", &why);
            s.audit(row, now())?;
            "/signout?unverified=1".to_string()
        }
    };
    Ok(Redirect::to(&target).into_response())
}

//! The sign-in pages: email → password → (first sign-in) new password →
//! (no method yet) app registration → number-matching push or a code →
//! "Stay signed in?" → the application; and the three sign-out pages.
//!
//! A browser session (cookie `cs_session`, stored hashed) records the stage
//! reached; each handler checks it, so no step can be skipped. Every form
//! carries the session's CSRF token. The session id changes at each gain in
//! privilege (password accepted, second factor accepted).

pub(crate) mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::ChallengeKind;
use maud::Markup;
use ring::rand::SecureRandom;
use serde::Deserialize;

use crate::domain::methods::Authority;
use crate::domain::push::Origin;
use crate::domain::sha256;
use crate::domain::Code;
use crate::http::extract::ClientIp;
use crate::store::Stage;
use crate::store::{Factor, FactorMethod, NewAudit, Pending, WebSession};
use crate::{now, now_ms, Error, Server};
use presession::PreSession;

use crate::http::extract::{session_id_hash, SESSION_COOKIE as COOKIE};
pub(crate) use crate::http::AppState;

/// The pages, with their security headers.
pub fn router() -> Router<Arc<Server>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/signin") }))
        .route("/signin", get(signin_page).post(signin_post))
        .route("/signin/back", get(back))
        .route("/signin/password", get(password_page).post(password_post))
        .route(
            "/signin/update-password",
            get(update_page).post(update_post),
        )
        .route("/signin/stay", get(stay_page).post(stay_post))
        .route("/signout", get(signout::page).post(signout::post))
        .route("/signout/pick", post(signout::pick))
        .route("/signout/wait", get(signout::wait))
        .route("/signout/done", get(signout::done))
        .route("/signin/options", get(options_page))
        .route("/help", get(help_page))
        .route("/register", get(new_user::page).post(new_user::post))
        .merge(my::routes())
        .merge(register::routes())
        .merge(verify::routes())
        .merge(recover::routes())
        .route(
            "/static/site.css",
            get(|| async { static_file("text/css", include_str!("../../../static/site.css")) }),
        )
        .route(
            "/static/signin.js",
            get(|| async {
                static_file("text/javascript", include_str!("../../../static/signin.js"))
            }),
        )
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

fn static_file(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A page to send, with a new session cookie when one was issued.
struct Page {
    body: Response,
    cookie: Option<String>,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut resp = self.body;
        if let Some(c) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }
}

pub(crate) fn html(s: &Server, title: &str, body: Markup) -> Response {
    let frame = views::Frame {
        org: &s.config.org_name,
        banner: &s.config.banner,
    };
    let markup = views::layout(&frame, title, body);
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The request's browser session, held to [`second_factor_rule`].
pub(crate) fn load(s: &Server, headers: &HeaderMap) -> Result<Option<WebSession>, Error> {
    let Some(id) = session_id_hash(headers) else {
        return Ok(None);
    };
    let Some(mut session) = s.store.session(&id, now())? else {
        return Ok(None);
    };
    second_factor_rule(s, &mut session)?;
    Ok(Some(session))
}

/// The rule no page can skip, applied wherever a session is loaded: a
/// session acts for an account only with a proven second factor, or while
/// the account has no method at all (first sign-in, after a methods
/// reset). A session without one, whose account has gained a method (from
/// another browser, say), goes back to proving it is the account's holder.
/// The one exception is the session whose QR code the app was activated
/// with: that activation proves the app (and binds only while the account
/// had no method, see [`crate::domain::methods::Authority::FirstMethod`]).
fn second_factor_rule(s: &Server, session: &mut WebSession) -> Result<(), Error> {
    if session.factor.is_some() || !session.stage.acts_for_account() {
        return Ok(());
    }
    let user = s.user(&session.username)?;
    if s.store.methods_of(user.id)?.count() == 0 {
        return Ok(());
    }
    if let Pending::Enrollment(ids) = &session.pending {
        let mut used = None;
        for id in ids {
            let activation = s.store.activation(id)?.filter(|a| a.user_id == user.id);
            used = used.or(activation.and_then(|a| a.used_at));
        }
        if let Some(at) = used {
            session.factor = Some(Factor {
                method: FactorMethod::App,
                at,
                by_registration: true,
            });
            session.pending = Pending::Nothing;
            return save(s, session);
        }
    }
    back_to_proof(s, session)
}

/// Stores the session's new state.
fn save(s: &Server, session: &WebSession) -> Result<(), Error> {
    s.write(now(), |w| w.save_session(session))
}

/// Ends the session whose id hashes to `id_hash`.
fn end(s: &Server, id_hash: &[u8]) -> Result<(), Error> {
    s.write(now(), |w| w.delete_session(id_hash))
}

/// Sends a session back to proving a second factor.
fn back_to_proof(s: &Server, session: &mut WebSession) -> Result<(), Error> {
    session.stage = Stage::Mfa;
    session.pending = Pending::Nothing;
    session.challenge_id.clear();
    save(s, session)
}

/// The authority a session changes methods on: see [`second_factor_rule`].
fn authority(session: &WebSession) -> Authority {
    if session.factor.is_some() {
        Authority::Proven
    } else {
        Authority::FirstMethod
    }
}

fn random_token(s: &Server) -> Result<String, Error> {
    let mut b = [0u8; 32];
    s.rng
        .fill(&mut b)
        .map_err(|_| Error::Internal("random generator failed".into()))?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&b))
}

/// Stores `session` under a fresh id (and CSRF token); returns the cookie.
/// Used for new sessions and at every privilege change.
fn issue(s: &Server, session: &mut WebSession, old: Option<&[u8]>) -> Result<String, Error> {
    if let Some(old) = old {
        end(s, old)?;
    }
    let id = random_token(s)?;
    session.id_hash = sha256(id.as_bytes()).to_vec();
    session.csrf = random_token(s)?;
    let t = now();
    let lifetime = if session.persistent {
        s.config.web.stay_signed_in_days * 86_400
    } else {
        s.config.web.session_minutes * 60
    };
    session.created_at = t;
    session.expires_at = t + lifetime;
    save(s, session)?;
    let max_age = if session.persistent {
        format!("; Max-Age={lifetime}")
    } else {
        String::new()
    };
    Ok(format!(
        "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Lax{max_age}"
    ))
}

/// A `Set-Cookie` value that removes the session cookie.
fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

fn fresh(stage: Stage) -> WebSession {
    WebSession {
        id_hash: Vec::new(),
        csrf: String::new(),
        username: String::new(),
        stage,
        challenge_id: String::new(),
        return_to: String::new(),
        persistent: false,
        created_at: 0,
        expires_at: 0,
        pending: Pending::Nothing,
        factor: None,
    }
}

/// Where a session's stage continues.
fn stage_url(stage: Stage) -> &'static str {
    match stage {
        Stage::Password => "/signin/password",
        Stage::ChangePassword => "/signin/update-password",
        Stage::Register | Stage::Add => "/signin/register",
        Stage::Mfa | Stage::Recover => "/signin/mfa",
        Stage::Stay => "/signin/stay",
        Stage::Done => "/my",
        Stage::RecoverReset => "/recover/password",
    }
}

/// The session, if it is at one of `stages`; otherwise where to go instead.
fn at_stages(
    s: &Server,
    headers: &HeaderMap,
    stages: &[Stage],
) -> Result<Result<WebSession, Redirect>, Error> {
    Ok(match load(s, headers)? {
        Some(session) if stages.contains(&session.stage) => Ok(session),
        Some(session) => Err(Redirect::to(stage_url(session.stage))),
        None => Err(Redirect::to("/signin")),
    })
}

pub(crate) fn csrf_ok(session: &WebSession, form: &HashMap<String, String>) -> bool {
    form.get("csrf").is_some_and(|t| {
        countersign_core::secret::constant_time_eq(t.as_bytes(), session.csrf.as_bytes())
    })
}

pub(crate) fn forbidden(s: &Server) -> Response {
    let body = views::info(
        "Request refused",
        &["This form expired or did not come from this site. Start again."],
    );
    (StatusCode::FORBIDDEN, html(s, "Request refused", body)).into_response()
}

/// The HTTP status of a refusal shown on a page (401 if it is not a
/// client error).
pub(crate) fn refusal(code: Code) -> StatusCode {
    Some(crate::http::error::status(code))
        .filter(StatusCode::is_client_error)
        .unwrap_or(StatusCode::UNAUTHORIZED)
}

pub(crate) fn account(s: &Server, username: &str) -> String {
    format!("{username}@{}", s.config.email_domain)
}

/// The audit row of something the officer did in `session`.
fn session_row<'a>(
    session: &'a WebSession,
    action: &'a str,
    ip: &'a str,
    outcome: &'a str,
) -> NewAudit<'a> {
    let who = session.username.as_str();
    NewAudit {
        actor: who,
        action,
        target: who,
        ip,
        outcome,
        detail: "",
    }
}

fn audit(
    s: &Server,
    session: &WebSession,
    action: &str,
    ip: &str,
    outcome: &str,
) -> Result<(), Error> {
    s.audit(session_row(session, action, ip, outcome), now())
}

/// The session, if it is at one of the stages; otherwise the handler
/// answers with a redirect to where the session is.
macro_rules! stage {
    ($s:expr, $headers:expr, $stages:expr) => {
        match $crate::http::pages::at_stages(&$s, &$headers, $stages)? {
            Ok(session) => session,
            Err(redirect) => return Ok(redirect.into_response()),
        }
    };
}

/// [`stage!`] for a form post: also refuses a missing or wrong CSRF token.
macro_rules! stage_form {
    ($s:expr, $headers:expr, $stages:expr, $form:expr) => {{
        let session = stage!($s, $headers, $stages);
        if !$crate::http::pages::csrf_ok(&session, &$form) {
            return Ok($crate::http::pages::forbidden(&$s));
        }
        session
    }};
}

pub(crate) type PageResult = Result<Response, crate::http::error::ApiError>;

mod my;
mod new_user;
pub mod presession;
mod recover;
mod register;
pub mod return_to;
mod signout;
mod verify;

#[derive(Deserialize)]
struct SigninQuery {
    return_to: Option<String>,
}

async fn signin_page(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(q): Query<SigninQuery>,
) -> PageResult {
    // A sign-in in progress starts again (keeping where it was to go).
    let mut return_to = String::new();
    if let Some(session) = load(&s, &headers)? {
        if session.stage == Stage::Done {
            return Ok(Redirect::to("/my").into_response());
        }
        end(&s, &session.id_hash)?;
        return_to = session.return_to;
    }
    let mut notice = None;
    if let Some(target) = q.return_to {
        match return_to::check(&target, &s.config.web.return_to_allow) {
            Ok(target) => return_to = target,
            Err(why) => {
                refused_redirect(&s, &ip, why)?;
                notice = Some(
                    "The link you followed would send you on to an address this portal does not serve. After you sign in, you will go to My sign-ins.",
                );
            }
        }
    }
    // Nothing is stored until the form comes back.
    let pre = PreSession::carried_or_new(&s, &headers)?;
    let body = views::email(&pre.token, &s.config.email_domain, &return_to, notice);
    Ok(Page {
        body: html(&s, "Sign in", body),
        cookie: Some(pre.cookie()),
    }
    .into_response())
}

/// Audits a refused `return_to`, at most once a minute per address: a
/// flood of such links must not flood the audit log.
fn refused_redirect(s: &Server, ip: &str, why: return_to::Refusal) -> Result<(), Error> {
    if s.refused_redirects.check(ip, now()).is_err() {
        return Ok(());
    }
    s.refused_redirects.failed(ip, now());
    s.audit(
        NewAudit {
            actor: "",
            action: "signin.return_to",
            target: "",
            ip,
            outcome: "refused",
            detail: why.as_str(),
        },
        now(),
    )
}

async fn signin_post(
    State(s): AppState,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let Some(pre) = PreSession::from_headers(&headers) else {
        return Ok(Redirect::to("/signin").into_response());
    };
    if !pre.form_ok(form.get("csrf")) {
        return Ok(forbidden(&s));
    }
    let allow = &s.config.web.return_to_allow;
    let return_to = form
        .get("return_to")
        .filter(|t| !t.is_empty())
        .and_then(|t| return_to::check(t, allow).ok())
        .unwrap_or_default();
    let username = username_of(&s, form.get("email").map_or("", String::as_str));
    if crate::domain::accounts::check_username(&username).is_err() {
        let msg = format!(
            "Enter a valid email address, such as username@{}.",
            s.config.email_domain
        );
        let body = views::email(&pre.token, &s.config.email_domain, &return_to, Some(&msg));
        return Ok(html(&s, "Sign in", body));
    }
    // Unknown and known accounts go on alike: the password step answers for
    // both. The session is stored from here on.
    let mut session = fresh(Stage::Password);
    session.username = username;
    session.return_to = return_to;
    let cookie = issue(&s, &mut session, None)?;
    Ok(Page {
        body: Redirect::to("/signin/password").into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

/// "Back" from the password step: the sign-in starts again (the email
/// page drops the session and keeps where it was to return).
async fn back() -> Redirect {
    Redirect::to("/signin")
}

async fn password_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, &[Stage::Password]);
    Ok(html(
        &s,
        "Enter password",
        views::password(&session.csrf, &account(&s, &session.username), None),
    ))
}

async fn password_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, &[Stage::Password], form);
    let password = zeroize::Zeroizing::new(form.get("password").cloned().unwrap_or_default());
    let username = session.username.clone();
    let checked = s
        .hashing(move |s| s.check_password(&username, &password, &ip, now()))
        .await;
    match checked {
        Ok(ok) => {
            session.stage = if ok.must_change {
                Stage::ChangePassword
            } else {
                after_password(&s, &ok.user.username)?
            };
            let old = session.id_hash.clone();
            let cookie = issue(&s, &mut session, Some(&old))?;
            Ok(Page {
                body: Redirect::to(stage_url(session.stage)).into_response(),
                cookie: Some(cookie),
            }
            .into_response())
        }
        Err(Error::Refused { code, message }) => {
            let body = views::password(
                &session.csrf,
                &account(&s, &session.username),
                Some(&message),
            );
            Ok((refusal(code), html(&s, "Enter password", body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn update_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, &[Stage::ChangePassword]);
    Ok(html(
        &s,
        "Update your password",
        views::update_password(&session.csrf, &account(&s, &session.username), &[]),
    ))
}

async fn update_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, &[Stage::ChangePassword], form);
    let field = |k: &str| zeroize::Zeroizing::new(form.get(k).cloned().unwrap_or_default());
    let (current, new, confirm) = (field("current"), field("new"), field("confirm"));
    let username = session.username.clone();
    let changed = s
        .hashing(move |s| s.change_password(&username, &current, &new, &confirm, &ip, now()))
        .await;
    match changed {
        Ok(Ok(())) => {
            // Another browser that signed in with the old password is out.
            s.write(now(), |w| {
                w.delete_other_sessions(&session.username, &session.id_hash)
            })?;
            session.stage = after_password(&s, &session.username)?;
            save(&s, &session)?;
            Ok(Redirect::to(stage_url(session.stage)).into_response())
        }
        Ok(Err(violations)) => {
            let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let body =
                views::update_password(&session.csrf, &account(&s, &session.username), &messages);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                html(&s, "Update your password", body),
            )
                .into_response())
        }
        Err(Error::Refused { message, .. }) => {
            let body =
                views::update_password(&session.csrf, &account(&s, &session.username), &[message]);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                html(&s, "Update your password", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The username in what was typed: a bare username, or an address in the
/// configured domain (anything else is no username).
fn username_of(s: &Server, typed: &str) -> String {
    let email = typed.trim().to_lowercase();
    match email.split_once('@') {
        Some((user, domain)) if domain == s.config.email_domain => user.to_string(),
        Some(_) => String::new(),
        None => email,
    }
}

/// Where a sign-in goes once the password is settled: proof with a
/// registered method, or (nothing registered yet) registration.
fn after_password(s: &Server, username: &str) -> Result<Stage, Error> {
    Ok(if s.methods(username)?.count() == 0 {
        Stage::Register
    } else {
        Stage::Mfa
    })
}

/// Moves the session to `stage` under a new id (every step forward is a
/// gain in privilege) and goes to the stage's page.
fn advance(s: &Server, session: &mut WebSession, stage: Stage) -> PageResult {
    session.stage = stage;
    let old = session.id_hash.clone();
    let cookie = issue(s, session, Some(&old))?;
    Ok(Page {
        body: Redirect::to(stage_url(stage)).into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

/// The session's challenge if still pending, else a new one.
fn current_or_new_challenge(
    s: &Server,
    session: &mut WebSession,
    ip: &str,
    kind: ChallengeKind,
) -> Result<(String, u8), Error> {
    if !session.challenge_id.is_empty() {
        if let Ok((row, ChallengeStatus::Pending)) =
            s.challenge_status(&session.challenge_id, now())
        {
            return Ok((row.challenge.id, row.number));
        }
    }
    let origin = Origin {
        application: &s.config.web.application,
        ip,
        location: "",
        kind,
        actor: &session.username,
    };
    let created = s.create_challenge(&session.username, None, &origin, now_ms())?;
    session.challenge_id = created.challenge_id.clone();
    save(s, session)?;
    Ok((created.challenge_id, created.number))
}

fn challenge_status(s: &Server, session: &WebSession) -> Result<Option<ChallengeStatus>, Error> {
    if session.challenge_id.is_empty() {
        return Ok(None);
    }
    let (row, status) = s.challenge_status(&session.challenge_id, now())?;
    // Only this account's challenge counts.
    let user = s.user(&session.username)?;
    Ok((row.user_id == user.id).then_some(status))
}

async fn stay_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, &[Stage::Stay]);
    Ok(html(
        &s,
        "Stay signed in?",
        views::stay(&session.csrf, &account(&s, &session.username)),
    ))
}

async fn stay_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, &[Stage::Stay], form);
    session.persistent = form.get("stay").map(String::as_str) == Some("yes");
    session.stage = Stage::Done;
    let old = session.id_hash.clone();
    let cookie = issue(&s, &mut session, Some(&old))?;
    audit(
        &s,
        &session,
        "signin.complete",
        &ip,
        if session.persistent {
            "stay_signed_in"
        } else {
            "browser_session"
        },
    )?;
    let target = if session.return_to.is_empty() {
        "/my".to_string()
    } else {
        session.return_to.clone()
    };
    Ok(Page {
        body: Redirect::to(&target).into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

async fn options_page(State(s): AppState) -> Response {
    html(
        &s,
        "Sign-in options",
        views::info(
            "Sign-in options",
            &["This feature is not supported. Sign in with your email address and password."],
        ),
    )
}

async fn help_page(State(s): AppState) -> Response {
    html(
        &s,
        "Help Center",
        views::info(
            "Help Center",
            &[
                "Sign in with your agency email address and password, then approve the request in the Countersign app by typing the number shown on the sign-in page.",
                "If your phone is not with you, choose \"I can't use my Countersign app right now\" and enter a code from the app.",
                "If you are locked out or lost your phone, contact the help desk.",
            ],
        ),
    )
}

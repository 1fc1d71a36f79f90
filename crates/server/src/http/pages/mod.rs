//! The sign-in pages: email → password → (first sign-in) new password →
//! (no method yet) app registration → number-matching push or a code →
//! "Stay signed in?" → the application; and the three sign-out pages.
//!
//! A browser session (cookie `cs_session`, stored hashed) records the stage
//! reached; each handler checks it, so no step can be skipped. Every form
//! carries the session's CSRF token. The session id changes at each gain in
//! privilege (password accepted, second factor accepted).

pub(crate) mod views;
#[macro_use]
mod session;
mod signin;

pub(crate) use session::*;
pub(crate) use signin::strip_email_domain;
use signin::*;

use std::sync::Arc;

use axum::extract::Request;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use axum::middleware::{self, Next};

use axum::response::{IntoResponse, Redirect, Response};

use axum::routing::{get, post};

use axum::Router;

use maud::Markup;

use crate::domain::Code;

use crate::store::{NewAudit, WebSession};

use crate::Server;

pub(crate) use crate::http::AppState;

/// The pages, with their security headers.
pub fn router(server: &Arc<Server>) -> Router<Arc<Server>> {
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
        .route(
            "/oidc/authorize",
            get(sso::authorize).post(sso::authorize_form),
        )
        .route("/oidc/continue", get(sso::resume).post(sso::step_up))
        .route("/oidc/logout", get(sso::logout))
        .route("/oidc/cancel", get(sso::cancel))
        .route("/signout/pick", post(signout::pick))
        .route("/signout/wait", get(signout::wait))
        .route("/signout/done", get(signout::done))
        .route("/signin/options", get(options_page))
        .route("/register", get(new_user::page).post(new_user::post))
        .merge(help::routes())
        .merge(my::routes())
        .merge(register::routes())
        .merge(verify::routes())
        .merge(recover::routes())
        .route(
            "/static/site.css",
            get(|| async { static_file("text/css", include_str!("../../../static/site.css")) }),
        )
        .route("/static/logo", get(logo))
        .route(
            "/static/signin.js",
            get(|| async {
                static_file("text/javascript", include_str!("../../../static/signin.js"))
            }),
        )
        .layer(middleware::from_fn_with_state(
            server.clone(),
            refusals_as_pages,
        ))
        .layer(middleware::from_fn(security_headers))
}

/// A browser never sees a JSON error: a page's refusal (push limited,
/// locked, too many attempts, a session that ended) is shown as a page
/// with the same status, the banner, what happened and the way on.
pub(crate) async fn refusals_as_pages(
    axum::extract::State(s): axum::extract::State<Arc<Server>>,
    req: Request,
    next: Next,
) -> Response {
    let back = views::way_back(req.uri().path());
    let resp = next.run(req).await;
    let Some(refused) = resp
        .extensions()
        .get::<crate::http::error::Refused>()
        .cloned()
    else {
        return resp;
    };
    let status = resp.status();
    let (title, next_step) = match refused.code {
        "push_limited" | "too_many_requests" | "too_many_attempts" | "too_many_codes" => (
            "Too many attempts",
            "Wait a few minutes, then try again, or choose another way to sign in.",
        ),
        "account_locked" => (
            "Your account is locked",
            "Wait until the time shown, or contact the help desk.",
        ),
        "account_disabled" | "push_blocked" => {
            ("Contact the help desk", "The help desk can tell you more.")
        }
        "not_found" => ("Not found", "Check the address, or go back and try again."),
        "unauthorized" => (
            "Sign in again",
            "Your session ended. Start again from the sign-in page.",
        ),
        _ if status.is_server_error() => ("Something went wrong", "Try again in a moment."),
        _ => ("Request refused", "Start again from the sign-in page."),
    };
    let body = views::info_back(title, &[&refused.message, next_step], back);
    (status, html(&s, title, body)).into_response()
}

/// Origins a page's form may lead to besides this site (the application a
/// sign-in returns to), added to its `form-action`.
#[derive(Clone)]
pub(crate) struct FormTargets(pub(crate) Vec<String>);

/// The headers every page of the site carries (the console's too): its
/// content policy, no framing, no sniffing, no referrer, not cached.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let extra: String = resp
        .extensions()
        .get::<FormTargets>()
        .map(|t| t.0.iter().map(|o| format!(" {o}")).collect())
        .unwrap_or_default();
    set_security_headers(resp.headers_mut(), &extra);
    resp
}

/// [`security_headers`] on `h`, the forms allowed to post to `extra`
/// (space-separated origins) too.
pub(crate) fn set_security_headers(h: &mut HeaderMap, extra: &str) {
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'"
    );
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        h.insert("content-security-policy", csp);
    }
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    // A live stream says `no-cache` (axum's default), which still lets a
    // cache keep what it showed: these pages are never kept.
    if h.get(header::CACHE_CONTROL).is_none_or(|v| v == "no-cache") {
        set(h, "cache-control", "no-store");
    }
}

/// The organisation's logo (`web.logo`), or Countersign's own.
async fn logo(axum::extract::State(s): axum::extract::State<Arc<Server>>) -> Response {
    let configured = s.config.web.logo.as_ref().and_then(|path| {
        let kind = crate::infra::config::logo_type(path)?;
        match std::fs::read(path) {
            Ok(bytes) => Some((kind, bytes)),
            Err(e) => {
                tracing::warn!("web.logo {}: {e}; showing the default", path.display());
                None
            }
        }
    });
    let (kind, body) = configured.unwrap_or((
        "image/svg+xml",
        include_bytes!("../../../static/logo.svg").to_vec(),
    ));
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
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
    framed(s, title, body, false)
}

/// [`html`] with "Sign-in options" under the banner (the email step).
pub(crate) fn framed(s: &Server, title: &str, body: Markup, sign_in_options: bool) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page_text(s, title, body, sign_in_options),
    )
        .into_response()
}

/// The whole page's HTML, framed as [`framed`] does.
pub(crate) fn page_text(s: &Server, title: &str, body: Markup, sign_in_options: bool) -> String {
    let frame = views::Frame {
        org: &s.config.org_name,
        banner: &s.config.banner,
        sign_in_options,
    };
    views::layout(&frame, title, body).into_string()
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

pub(crate) type PageResult = Result<Response, crate::http::error::ApiError>;

mod help;
mod my;
mod my_password;
mod new_user;
pub mod presession;
mod recover;
mod register;
pub mod return_to;
mod signout;
pub(crate) mod sso;
mod verify;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiError;
    use crate::Error;
    use tower::ServiceExt;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refusal_reaches_a_browser_as_a_page_not_json() {
        let (_dir, s) = crate::scratch_server();
        let refuse = || async {
            Err::<Response, ApiError>(
                Error::refused(Code::PushLimited, "Too many sign-in requests.").into(),
            )
        };
        let app = Router::new()
            .route("/refused", get(refuse))
            .layer(middleware::from_fn_with_state(s.clone(), refusals_as_pages))
            .with_state(s);
        let resp = app
            .oneshot(
                Request::get("/refused")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let page = String::from_utf8_lossy(&body);
        assert!(page.contains("Too many sign-in requests."), "{page}");
        assert!(page.contains("choose another way to sign in"), "{page}");
    }
}

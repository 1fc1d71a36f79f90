//! The HTTP face of the server: the router, the extractors every handler
//! shares, the device API and its streams, the sign-in pages and the
//! help-desk console. Only this layer knows HTTP statuses.
//!
//! `api`, `pages` and `console` depend on `extract` and `error`, never on
//! each other (the console uses the pages' frame and session).

pub mod api;
pub mod connections;
mod console;
mod envelopes;
pub mod error;
pub mod events;
pub mod extract;
pub mod follow;
pub mod metrics;
pub mod mfa_api;
pub mod oidc;
pub mod pages;
pub(crate) mod refusals;
pub mod reporting;
pub mod serve;
pub mod tls;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use axum::Router;

use crate::Server;

/// What every handler is given: the server's state.
pub(crate) type AppState = State<Arc<Server>>;

/// The router, ready to serve.
pub fn router(server: Arc<Server>) -> Router {
    let https = server.tls_pin.is_some();
    Router::new()
        .merge(api::routes())
        .merge(oidc::routes(&server))
        .merge(mfa_api::routes())
        .merge(pages::router(&server))
        .merge(console::routes(&server))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn(settle))
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            refusals::reword,
        ))
        .layer(axum::middleware::map_response(move |resp| {
            hsts(https, resp)
        }))
        .layer(axum::middleware::map_response_with_state(
            server.clone(),
            metrics::count_refusals,
        ))
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            tag_request,
        ))
        .with_state(server)
}

/// Gives each request an id: the `request_id` of every log line written
/// while serving it, the audit rows it writes, and the `X-Request-Id`
/// response header an officer can read out to the help desk.
async fn tag_request(
    State(s): State<Arc<Server>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut bytes = [0u8; 9];
    let id = match ring::rand::SecureRandom::fill(&s.rng, &mut bytes) {
        Ok(()) => data_encoding::BASE64URL_NOPAD.encode(&bytes),
        Err(_) => String::new(),
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let served = crate::store::request::scope(id.clone(), next.run(request));
    let mut resp = tracing::Instrument::instrument(served, span.clone()).await;
    span.in_scope(|| tracing::debug!(status = resp.status().as_u16(), "answered"));
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", value);
    }
    resp
}

/// Answers a request only once the writes made while serving it, and
/// any it read, are committed (see [`crate::store::settled`]); if their
/// commit failed, the answer is that failure.
async fn settle(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match crate::store::settled(next.run(request)).await {
        Ok(resp) => resp,
        Err(e) => axum::response::IntoResponse::into_response(error::ApiError::from(e)),
    }
}

/// Over HTTPS, every response tells browsers to come back only over HTTPS
/// for a year (behind a proxy, the proxy that ends TLS says it).
async fn hsts(https: bool, mut resp: Response) -> Response {
    if https {
        resp.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

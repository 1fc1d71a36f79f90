//! Refusals axum makes itself, before a handler runs (a query, path or
//! form that does not parse, a body over the limit), come as plain text.
//! They are said again in the form the caller reads: `{code, message}`
//! JSON on the API (PROTOCOL.md), OAuth's `{error, error_description}` on
//! the single sign-on endpoints applications call, and the site's page
//! elsewhere. What was wrong stays in the message. Our own plain-text
//! refusals ([`own_refusal`]) are left as they are.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::http::pages::views::error;
use crate::Server;

/// The most of a plain refusal's text that is read (axum's are short).
const MAX_TEXT: usize = 2048;

/// Marks a plain-text refusal of our own, which is left as it is.
#[derive(Clone, Copy)]
struct Own;

/// A plain-text refusal of our own (a picture that is not there, a live
/// tail's address made by hand): sent as it is.
pub(crate) fn own_refusal(status: StatusCode, text: impl Into<String>) -> Response {
    let mut resp = (status, text.into()).into_response();
    resp.extensions_mut().insert(Own);
    resp
}

/// Who reads an answer, by the path asked.
enum Reader {
    Api,
    OAuth,
    Browser,
}

fn reader(path: &str) -> Reader {
    const OAUTH: [&str; 3] = ["/oidc/token", "/oidc/userinfo", "/oidc/jwks"];
    if path.starts_with("/api/") {
        Reader::Api
    } else if OAUTH.contains(&path) || path.starts_with("/.well-known/") {
        Reader::OAuth
    } else {
        Reader::Browser
    }
}

/// The middleware (see the module's comment).
pub(crate) async fn reword(
    State(s): State<Arc<Server>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reader = reader(request.uri().path());
    let resp = next.run(request).await;
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    let ours = resp.extensions().get::<Own>().is_some();
    if !(plain && resp.status().is_client_error()) || ours {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim().trim_end_matches('.');
    let message = if parts.status == StatusCode::PAYLOAD_TOO_LARGE {
        "What was sent is too large.".to_string()
    } else if text.is_empty() {
        "The request could not be read.".to_string()
    } else {
        format!("The request could not be read: {text}.")
    };
    let (content_type, body) = match reader {
        Reader::Api => (
            "application/json",
            serde_json::json!({"code": "invalid_request", "message": message}).to_string(),
        ),
        Reader::OAuth => (
            "application/json",
            serde_json::json!({"error": "invalid_request", "error_description": message})
                .to_string(),
        ),
        Reader::Browser => {
            let body = html! {
                h1 { "Something went wrong" }
                (error(Some(&message)))
                p { a href="/signin" { "Start again" } }
            };
            let title = "Something went wrong";
            let page = crate::http::pages::page_text(&s, title, body, false);
            ("text/html; charset=utf-8", page)
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Response::from_parts(parts, Body::from(body))
}

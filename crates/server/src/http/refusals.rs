//! Refusals axum makes itself, before a handler runs (a query, path or
//! form that does not parse, a body over the limit), come as plain text.
//! They are said again in the form the caller reads: `{code, message}`
//! JSON on the API (PROTOCOL.md), OAuth's `{error, error_description}` on
//! the single sign-on endpoints applications call, and the site's page
//! elsewhere. What was wrong stays in the message.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::html;

use crate::http::pages::views::error;
use crate::Server;

/// The most of a plain refusal's text that is read (axum's are short).
const MAX_TEXT: usize = 2048;

/// Who reads an answer, by the path asked.
enum Reader {
    Api,
    OAuth,
    Browser,
}

fn reader(path: &str) -> Reader {
    if path.starts_with("/api/") {
        Reader::Api
    } else if path.starts_with("/oidc/") && path != "/oidc/authorize" && path != "/oidc/logout" {
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
    if !(plain && resp.status().is_client_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if parts.status == StatusCode::PAYLOAD_TOO_LARGE {
        "What was sent is too large.".to_string()
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

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

use crate::http::pages::views;
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

/// What axum's refusal `text` says, in words for the caller: which part
/// of the request could not be read, then the parser's detail (which
/// names the field).
pub(crate) fn plainly(text: &str) -> String {
    const PARTS: [(&str, &str); 9] = [
        (
            "Failed to deserialize query string",
            "A value in the query is not valid",
        ),
        (
            "Failed to deserialize form body",
            "A field of the form is not valid",
        ),
        (
            "Failed to deserialize form",
            "A field of the form is not valid",
        ),
        ("Invalid URL", "The address is not valid"),
        (
            "Failed to deserialize the JSON body into the target type",
            "The JSON body does not hold what this request takes",
        ),
        (
            "Failed to parse the request body as JSON",
            "The body is not valid JSON",
        ),
        (
            "Failed to buffer the request body",
            "The body could not be read",
        ),
        (
            "Request body didn't contain valid UTF-8",
            "The body is not valid UTF-8",
        ),
        (
            "Form requests must have `Content-Type: application/x-www-form-urlencoded`",
            "A form must be sent as application/x-www-form-urlencoded",
        ),
    ];
    let text = text.trim().trim_end_matches('.');
    if text.is_empty() {
        return "The request could not be read.".to_string();
    }
    for (theirs, ours) in PARTS {
        if let Some(rest) = text.strip_prefix(theirs) {
            let detail = rest.trim_start_matches(':').trim();
            return if detail.is_empty() {
                format!("{ours}.")
            } else {
                format!("{ours} ({detail}).")
            };
        }
    }
    if text == "Expected request with `Content-Type: application/json`" {
        return "The body must be sent as application/json.".to_string();
    }
    format!("The request could not be read: {text}.")
}

/// Who reads an answer, by the path asked.
enum Reader {
    Api,
    OAuth,
    Browser,
}

fn reader(path: &str) -> Reader {
    const OAUTH: [&str; 3] = ["/oidc/token", "/oidc/userinfo", "/oidc/jwks"];
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    };
    if under("/api") {
        Reader::Api
    } else if OAUTH.contains(&path) || under("/.well-known") {
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
    let back = views::way_back(request.uri().path());
    let method = request.method().clone();
    let resp = next.run(request).await;
    let typed = resp.headers().get(header::CONTENT_TYPE);
    let plain = typed.is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    // The router's own answers to a method a route does not take, and to
    // an address no route has, are empty.
    let wrong_method = resp.status() == StatusCode::METHOD_NOT_ALLOWED && typed.is_none();
    let nowhere = resp.status() == StatusCode::NOT_FOUND && typed.is_none();
    let ours = resp.extensions().get::<Own>().is_some();
    if !((plain && resp.status().is_client_error()) || wrong_method || nowhere) || ours {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if parts.status == StatusCode::PAYLOAD_TOO_LARGE {
        "What was sent is too large.".to_string()
    } else if wrong_method {
        // The methods it takes go in `Allow`, added after this layer.
        format!("This address does not take {method}.")
    } else if nowhere {
        "Nothing is at this address.".to_string()
    } else {
        plainly(&text)
    };
    let code = if nowhere {
        "not_found"
    } else {
        "invalid_request"
    };
    let (content_type, body) = match reader {
        Reader::Api => (
            "application/json",
            serde_json::json!({"code": code, "message": message}).to_string(),
        ),
        Reader::OAuth => {
            // As every answer of the token endpoint (RFC 6749, 5.1).
            parts
                .headers
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            let body =
                serde_json::json!({"error": "invalid_request", "error_description": message});
            ("application/json", body.to_string())
        }
        Reader::Browser => {
            let title = if nowhere {
                "Not found"
            } else {
                "Request refused"
            };
            let body = views::info_back(title, &[&message], back);
            crate::http::pages::set_security_headers(&mut parts.headers, "");
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

//! The OpenID Connect endpoints applications call directly: discovery,
//! the published keys, the token endpoint and userinfo. (The endpoints a
//! browser visits, authorize and logout, are pages: `pages::sso`.)

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::domain::oidc::Acr;
use crate::domain::Code;
use crate::http::error::status;
use crate::http::extract::{bearer, client_credentials, ClientIp};
use crate::http::AppState;
use crate::infra::token_keys::TokenAlg;
use crate::{now, Error, Server};

/// The routes.
pub fn routes(server: &Arc<Server>) -> Router<Arc<Server>> {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery).options(preflight),
        )
        .route("/oidc/jwks", get(jwks).options(preflight))
        .route("/oidc/token", post(token).options(preflight))
        .route(
            "/oidc/userinfo",
            get(userinfo).post(userinfo).options(preflight),
        )
        .layer(axum::middleware::from_fn_with_state(server.clone(), cors))
}

/// The origin of a request from a web page at an application's registered
/// address (a browser application, a public client), if it is one: only
/// those may read these answers from JavaScript. No cookie is involved.
fn application_origin(s: &Server, headers: &HeaderMap) -> Option<header::HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let wanted = origin.to_str().ok()?;
    let clients = s.clients().ok()?;
    let known = clients
        .iter()
        .flat_map(|c| &c.redirect_uris)
        .any(|uri| url::Url::parse(uri).is_ok_and(|u| u.origin().ascii_serialization() == wanted));
    known.then(|| origin.clone())
}

/// A CORS preflight: answered by [`cors`].
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// CORS for browser applications at a registered address.
async fn cors(
    State(s): State<Arc<Server>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = application_origin(&s, req.headers());
    let preflight = req.method() == axum::http::Method::OPTIONS;
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                header::HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                header::HeaderValue::from_static("600"),
            );
        }
    }
    resp
}

async fn discovery(State(s): AppState) -> Response {
    let iss = s.config.public_url();
    let algs: Vec<&str> = TokenAlg::ALL.iter().map(|a| a.as_str()).collect();
    let acr: Vec<&str> = Acr::ALL.iter().map(|a| a.as_str()).collect();
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oidc/authorize"),
        "token_endpoint": format!("{iss}/oidc/token"),
        "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
        "jwks_uri": format!("{iss}/oidc/jwks"),
        "end_session_endpoint": format!("{iss}/oidc/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "acr", "amr", "azp", "preferred_username", "name", "email"],
        "acr_values_supported": acr,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    }))
    .into_response()
}

async fn jwks(State(s): AppState) -> Result<Response, Response> {
    let set = s
        .token_keys
        .jwks(now())
        .map_err(|e| oauth_error(&Error::Internal(e.to_string()), false))?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=300")], Json(set)).into_response())
}

/// An OAuth error answer (RFC 6749 §5.2).
fn oauth_error(e: &Error, basic: bool) -> Response {
    let (code, description) = match e {
        Error::Refused { code, message } => (*code, message.as_str()),
        _ => (Code::Invalid("server_error"), "the server failed"),
    };
    let status = match e {
        Error::Refused { .. } => status(code),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut resp = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": code.as_str(), "error_description": description })),
    )
        .into_response();
    if basic && code == Code::InvalidClient {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"countersign\""),
        );
    }
    resp
}

fn invalid_request(message: &str) -> Error {
    Error::invalid("invalid_request", message)
}

/// `POST /oidc/token`: a code for tokens.
async fn token(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let basic = headers.contains_key(header::AUTHORIZATION);
    match exchange(&s, &headers, &ip, &body) {
        Ok(resp) => resp,
        Err(e) => oauth_error(&e, basic),
    }
}

fn exchange(s: &Server, headers: &HeaderMap, ip: &str, body: &[u8]) -> Result<Response, Error> {
    let mut form: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if form.iter().any(|(seen, _)| *seen == k) {
            return Err(invalid_request("a parameter is given twice"));
        }
        form.push((k.into_owned(), v.into_owned()));
    }
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (client_id, secret) = match (client_credentials(headers)?, get("client_secret")) {
        (Some(_), Some(_)) => return Err(invalid_request("use one client authentication method")),
        (Some((id, secret)), None) => {
            if get("client_id").is_some_and(|c| c != id) {
                return Err(invalid_request("client_id differs from the credentials"));
            }
            (id, Some(secret))
        }
        (None, secret) => {
            let id = get("client_id").ok_or_else(|| {
                Error::refused(Code::InvalidClient, "client authentication failed")
            })?;
            (id.to_string(), secret.map(str::to_string))
        }
    };
    let client = s.authenticate_client(&client_id, secret.as_deref(), "oidc.token", ip, now())?;
    match get("grant_type") {
        Some("authorization_code") => {}
        Some(_) => {
            return Err(Error::invalid(
                "unsupported_grant_type",
                "only authorization_code is supported",
            ))
        }
        None => return Err(invalid_request("grant_type is missing")),
    }
    let code = get("code").ok_or_else(|| invalid_request("code is missing"))?;
    let redirect_uri = get("redirect_uri").unwrap_or_default();
    let tokens = s.exchange_code(&client, code, redirect_uri, get("code_verifier"), ip, now())?;
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({
            "access_token": tokens.access_token.as_str(),
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
            "id_token": tokens.id_token,
            "scope": tokens.scope,
        })),
    )
        .into_response())
}

/// `GET|POST /oidc/userinfo`: the officer an access token speaks for.
async fn userinfo(State(s): AppState, headers: HeaderMap) -> Response {
    let info = bearer(&headers)
        .ok_or_else(|| Error::refused(Code::Unauthorized, "no access token"))
        .and_then(|t| s.userinfo(t, now()));
    match info {
        Ok(info) => ([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response(),
        Err(Error::Refused { .. }) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response(),
        Err(e) => oauth_error(&e, false),
    }
}

//! The direct MFA API (`/api/v1/mfa/...`), for applications that keep their
//! own passwords: the application authenticates as a registered
//! confidential client (HTTP Basic, as at the token endpoint) and asks for
//! a number-matched push or checks a code. See `domain::oidc::direct`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::oidc::Client;
use crate::domain::Code;
use crate::http::error::ApiError;
use crate::http::extract::{client_credentials, Body, ClientIp};
use crate::http::AppState;
use crate::{now, now_ms, Error, Server};

/// The longest a verdict request waits.
const MAX_WAIT: u64 = 60;

/// The routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/api/v1/mfa/push", post(push))
        .route("/api/v1/mfa/push/{id}", get(verdict))
        .route("/api/v1/mfa/code", post(code))
}

/// The application making the request.
fn client(s: &Server, headers: &HeaderMap, ip: &str) -> Result<Client, Error> {
    let (id, secret) = client_credentials(headers)?
        .ok_or_else(|| Error::refused(Code::InvalidClient, "client authentication failed"))?;
    s.authenticate_client(&id, Some(&secret), "mfa.client", ip, now())
}

/// Body of `POST /api/v1/mfa/push`.
#[derive(Deserialize)]
struct PushBody {
    username: String,
    /// The officer's address as the application saw it (shown on the
    /// prompt); the application's own if empty.
    #[serde(default)]
    ip: String,
    /// A place name for the prompt.
    #[serde(default)]
    location: String,
}

async fn push(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Body(b): Body<PushBody>,
) -> Result<Json<Value>, ApiError> {
    let c = client(&s, &headers, &ip)?;
    let shown_ip = if b.ip.is_empty() { ip } else { b.ip };
    let created = s.api_push(&c, &b.username, &shown_ip, &b.location, now_ms())?;
    Ok(Json(json!({
        "transaction": created.challenge_id,
        "number": created.number,
        "expires_at": created.expires_at,
    })))
}

#[derive(Deserialize)]
struct Wait {
    #[serde(default)]
    wait: u64,
}

async fn verdict(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Wait>,
) -> Result<Json<Value>, ApiError> {
    let c = client(&s, &headers, &ip)?;
    let mut v = s.api_push_verdict(&c, &id, now())?;
    if !v.status.is_final() && q.wait > 0 {
        let mut rx = s.hub.watch(&id, v.status);
        // Re-read after subscribing, in case it settled in between.
        v = s.api_push_verdict(&c, &id, now())?;
        if !v.status.is_final() {
            let wait = Duration::from_secs(q.wait.min(MAX_WAIT));
            let _ = tokio::time::timeout(wait, rx.changed()).await;
            v = s.api_push_verdict(&c, &id, now())?;
        }
    }
    Ok(Json(json!({
        "transaction": id,
        "status": v.status.as_str(),
        "amr": v.amr,
    })))
}

/// Body of `POST /api/v1/mfa/code`.
#[derive(Deserialize)]
struct CodeBody {
    username: String,
    code: zeroize::Zeroizing<String>,
}

async fn code(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Body(b): Body<CodeBody>,
) -> Result<Json<Value>, ApiError> {
    let c = client(&s, &headers, &ip)?;
    let amr = s.api_check_code(&c, &b.username, &b.code, &ip, now())?;
    Ok(Json(match amr {
        Some(amr) => json!({ "result": "allow", "amr": amr }),
        None => json!({ "result": "deny", "amr": [] }),
    }))
}

//! The HTTP API: device activation, challenge streams, answers, status,
//! and the admin calls the `countersign-server` command makes to a running
//! server. Handlers only convert data; the rules live in [`Server`].

use std::convert::Infallible;
use std::sync::Arc;

use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use countersign_core::api::{ActivateRequest, Verdict};
use countersign_core::protocol::{
    ChallengeEnvelope, ChallengeKind, Receipt, Response as DeviceResponse,
};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::domain::inbox::Delivery;
use crate::domain::push::Origin;
use crate::domain::sha256;
use crate::domain::Code;
use crate::http::envelopes::{DeviceEnvelopes, Outgoing};
use crate::http::error::ApiError;
use crate::http::extract::{bearer, session_follows, wants_events, Body, ClientIp};
use crate::http::{events, AppState};
use crate::{now, now_ms, Error, Server};

/// Longest long-poll wait, in seconds.
pub const MAX_WAIT: u64 = 60;

/// The device API and the admin calls.
pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/api/v1/time", get(time))
        .route("/api/v1/devices/activate", post(activate))
        .route("/api/v1/devices/{id}", delete(remove_device))
        .route("/api/v1/devices/{id}/challenges", get(device_challenges))
        .route("/api/v1/challenges/{id}", get(challenge_status))
        .route("/api/v1/challenges/{id}/response", post(respond))
        .route("/api/v1/challenges/{id}/receipt", post(receipt))
        .route("/api/v1/totp/verify", post(verify_totp))
        .route("/api/v1/admin/push", post(admin_push))
        .route("/api/v1/admin/streams", get(admin_streams))
}

fn require_admin(server: &Server, headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = bearer(headers).is_some_and(|t| {
        countersign_core::secret::constant_time_eq(&sha256(t.as_bytes()), &server.admin_token_hash)
    });
    if ok {
        Ok(())
    } else {
        Err(Error::refused(Code::Unauthorized, "an admin token is required").into())
    }
}

#[derive(Serialize)]
struct Time {
    server_time: u64,
}

async fn time() -> Json<Time> {
    Json(Time { server_time: now() })
}

async fn activate(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    Body(req): Body<ActivateRequest>,
) -> Result<Response, ApiError> {
    Ok(Json(s.activate(&req, &ip, now())?).into_response())
}

async fn remove_device(
    State(s): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let now = now();
    let device = s.authenticate_device(&id, bearer(&headers), now)?;
    s.remove_own_device(&device, now)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Wait {
    #[serde(default)]
    wait: u64,
}

/// A device's challenges: an SSE stream (pending ones first, then each new
/// one as it is created), or JSON: the pending list, waiting up to `wait`
/// seconds for one when there is none (long poll).
async fn device_challenges(
    State(s): AppState,
    Path(id): Path<String>,
    Query(q): Query<Wait>,
    headers: HeaderMap,
    mut request: Request,
) -> Result<Response, ApiError> {
    let now = now();
    s.authenticate_device(&id, bearer(&headers), now)?;
    // Subscribe before reading the pending list, so nothing created in
    // between is missed; duplicates are filtered by id.
    let mut inbox = s.hub.subscribe(&id);
    let pending = s.pending_envelopes(&id, now)?;
    if events::wants_upgrade(&headers) {
        let envelopes = DeviceEnvelopes::new(s, inbox, pending);
        return events::upgrade(&mut request, envelopes).ok_or_else(|| {
            Error::invalid("no_upgrade", "this connection cannot be upgraded").into()
        });
    }
    if wants_events(&headers) {
        let stream = DeviceEnvelopes::new(s, inbox, pending).map(|next| {
            Ok::<_, Infallible>(match next {
                Outgoing::Challenge(e) => event(&e),
                Outgoing::KeepAlive => Event::DEFAULT_KEEP_ALIVE,
            })
        });
        return Ok(Sse::new(stream).into_response());
    }
    if !pending.is_empty() || q.wait == 0 {
        return Ok(Json(pending).into_response());
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(q.wait.min(MAX_WAIT));
    let got = loop {
        match tokio::time::timeout_at(until, inbox.next()).await {
            Ok(Some(Delivery::Challenge(c))) => break vec![s.envelope((*c).clone(), crate::now())],
            Ok(Some(Delivery::FellBehind)) => break s.pending_envelopes(&id, crate::now())?,
            // A long poll answers by the end of its wait anyway.
            Ok(Some(Delivery::KeepAlive)) => continue,
            _ => break Vec::new(),
        }
    };
    Ok(Json(got).into_response())
}

fn event(e: &ChallengeEnvelope) -> Event {
    let data = serde_json::to_string(e).unwrap_or_default();
    Event::default()
        .event(events::CHALLENGE)
        .id(e.challenge.id.clone())
        .data(data)
}

/// A challenge's status: JSON now, JSON once final (`?wait=S`), or an SSE
/// stream that ends with the final status.
async fn challenge_status(
    State(s): AppState,
    Path(id): Path<String>,
    Query(q): Query<Wait>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Only whoever asked may follow it: the admin token (the `push`
    // command, the help desk's tools) or the browser session waiting for
    // this very challenge. Anyone else is told it does not exist.
    if require_admin(&s, &headers).is_err() && !session_follows(&s, &headers, &id)? {
        return Err(Error::not_found("challenge").into());
    }
    let (_, mut status) = s.challenge_status(&id, now())?;
    let mut rx = s.hub.watch(&id, status);
    // Re-read after subscribing, in case it settled in between (a final
    // status stays as it is).
    if !status.is_final() {
        status = s.challenge_status(&id, now())?.1;
    }
    if wants_events(&headers) {
        let stream = stream::unfold(
            (rx, Some(status), false),
            |(mut rx, first, done)| async move {
                if done {
                    return None;
                }
                let status = match first {
                    Some(st) => st,
                    None => {
                        if rx.changed().await.is_err() {
                            return None;
                        }
                        *rx.borrow_and_update()
                    }
                };
                let ev = Event::default().event("status").data(status.as_str());
                Some((Ok::<_, Infallible>(ev), (rx, None, status.is_final())))
            },
        );
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    if !status.is_final() && q.wait > 0 {
        let wait = Duration::from_secs(q.wait.min(MAX_WAIT));
        if let Ok(Ok(())) = tokio::time::timeout(wait, rx.changed()).await {
            status = *rx.borrow();
        }
    }
    Ok(Json(Verdict {
        challenge_id: id,
        status,
    })
    .into_response())
}

async fn respond(
    State(s): AppState,
    Path(id): Path<String>,
    ClientIp(ip): ClientIp,
    Body(r): Body<DeviceResponse>,
) -> Result<Json<Verdict>, ApiError> {
    Ok(Json(s.respond(&id, &r, &ip, now_ms())?))
}

async fn receipt(
    State(s): AppState,
    Path(id): Path<String>,
    Body(r): Body<Receipt>,
) -> Result<StatusCode, ApiError> {
    s.receipt(&id, &r, now_ms())?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct TotpCheck {
    username: String,
    code: String,
}

#[derive(Serialize, Deserialize)]
/// Answer of `POST /api/v1/totp/verify`.
pub struct TotpResult {
    /// True when the code was accepted.
    pub accepted: bool,
}

async fn verify_totp(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Body(b): Body<TotpCheck>,
) -> Result<Json<TotpResult>, ApiError> {
    require_admin(&s, &headers)?;
    let accepted = s.verify_totp(&b.username, &b.code, "admin-api", &ip, now())?;
    Ok(Json(TotpResult { accepted }))
}

/// `GET /readyz`: ready to serve when the database answers (for a load
/// balancer; `/healthz` says only that the process is alive).
async fn ready(State(s): AppState) -> Response {
    match s.store.schema_version() {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            tracing::error!(error = %e, "readiness: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database does not answer",
            )
                .into_response()
        }
    }
}

/// Body of `POST /api/v1/admin/push`.
#[derive(Serialize, Deserialize)]
pub struct PushRequest {
    /// Whom to push to.
    pub username: String,
    /// A particular device, or the newest.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Application shown on the device.
    #[serde(default)]
    pub application: String,
    /// IP shown on the device.
    #[serde(default)]
    pub ip: String,
    /// Location shown on the device.
    #[serde(default)]
    pub location: String,
    /// Who is asking (e.g. a help-desk name).
    #[serde(default)]
    pub actor: String,
}

async fn admin_push(
    State(s): AppState,
    headers: HeaderMap,
    Body(b): Body<PushRequest>,
) -> Result<Json<crate::domain::push::Created>, ApiError> {
    require_admin(&s, &headers)?;
    let actor = if b.actor.is_empty() {
        "admin-cli"
    } else {
        b.actor.as_str()
    };
    let application = if b.application.is_empty() {
        "Help desk test"
    } else {
        b.application.as_str()
    };
    let origin = Origin {
        application,
        ip: &b.ip,
        location: &b.location,
        kind: ChallengeKind::Test,
        actor,
    };
    // A device id alone names its user too.
    let username = match (&b.device_id, b.username.is_empty()) {
        (Some(id), true) => {
            let device = s
                .store
                .device(id)?
                .ok_or_else(|| Error::not_found("device"))?;
            s.store
                .user_by_id(device.user_id)?
                .ok_or_else(|| Error::not_found("user"))?
                .username
        }
        _ => b.username.clone(),
    };
    Ok(Json(s.create_challenge(
        &username,
        b.device_id.as_deref(),
        &origin,
        now_ms(),
    )?))
}

/// Body of `GET /api/v1/admin/streams[?device=ID]`.
#[derive(Serialize, Deserialize)]
pub struct Streams {
    /// Request streams this instance holds, across all devices (per
    /// instance, so that a balancer's spread can be read; the help desk
    /// counts every instance's).
    pub connected: usize,
    /// Those of the device asked about, here.
    pub device: Option<usize>,
}

#[derive(Deserialize)]
struct StreamsQuery {
    device: Option<String>,
}

async fn admin_streams(
    State(s): AppState,
    headers: HeaderMap,
    Query(q): Query<StreamsQuery>,
) -> Result<Json<Streams>, ApiError> {
    require_admin(&s, &headers)?;
    Ok(Json(Streams {
        connected: s.hub.total_connected(),
        device: q.device.map(|d| s.hub.connected(&d)),
    }))
}

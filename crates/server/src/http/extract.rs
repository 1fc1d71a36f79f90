//! What handlers take from a request besides its state: the client's
//! address, a JSON body with readable errors, the bearer token, and the
//! browser-session cookie. Shared by the API, the pages and the console.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::Json;

use crate::domain::sha256;
use crate::domain::Code;
use crate::http::error::ApiError;
use crate::infra::config::TlsMode;
use crate::{now, Error, Server};

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// The browser-session cookie (`__Host-`: Secure, path `/`, no domain, so
/// no other host or path can set it).
pub const SESSION_COOKIE: &str = "__Host-cs_session";

/// A JSON body whose parse errors come back as `{code, message}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(Error::refused(
                Code::BodyTooLarge,
                format!("the request body exceeds {MAX_BODY} bytes"),
            )
            .into()),
            Err(r) => Err(Error::invalid(
                "invalid_json",
                crate::http::refusals::plainly(&r.body_text()),
            )
            .into()),
        }
    }
}

/// The client's address (empty when unknown, e.g. in-process tests).
/// Behind the reverse proxy (`tls.mode = "off"`) every connection comes
/// from the proxy, so the address is the last one the proxy appended to
/// `X-Forwarded-For`; anything before it was written by the client and is
/// not trusted.
pub struct ClientIp(pub String);

impl FromRequestParts<Arc<Server>> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<Server>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default();
        if s.config.tls.mode != TlsMode::Off {
            return Ok(ClientIp(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|last| last.trim().parse::<std::net::IpAddr>().ok());
        Ok(ClientIp(forwarded.map_or(peer, |ip| ip.to_string())))
    }
}

/// The `Authorization: Bearer` token, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    credentials(headers, "bearer")
}

/// The credentials of an `Authorization` header with `scheme`, whose name
/// is case-insensitive (RFC 7235).
fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (name, rest) = value.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Whether the client asks for server-sent events.
pub fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The value of the cookie `name`, if the request has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
}

/// The stored id (a hash) of the request's browser session, if it has one.
pub fn session_id_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
    cookie(headers, SESSION_COOKIE).map(|v| sha256(v.as_bytes()))
}

/// Whether the request's browser session is waiting for `challenge_id`
/// (a sign-in page following its challenge).
pub fn session_follows(s: &Server, headers: &HeaderMap, challenge_id: &str) -> Result<bool, Error> {
    let Some(id) = session_id_hash(headers) else {
        return Ok(false);
    };
    Ok(s.store
        .session(&id, now())?
        .is_some_and(|session| session.stage.push() == Some(challenge_id)))
}

/// The client's id and secret from HTTP Basic (RFC 6749 §2.3.1: each
/// form-encoded, then joined and base64-encoded).
pub fn client_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || Error::refused(Code::InvalidClient, "client authentication failed");
    let value = value.to_str().map_err(|_| bad())?;
    let Some(encoded) = value
        .split_once(' ')
        .filter(|(name, _)| name.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest)
    else {
        return Err(bad());
    };
    let decoded = data_encoding::BASE64
        .decode(encoded.trim().as_bytes())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

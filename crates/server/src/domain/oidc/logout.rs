//! Logout started by an application (RP-initiated logout), and the logout
//! tokens sent to the applications a browser session had signed in to
//! (back-channel logout).

use serde::Serialize;

use super::{Client, IdClaims};
use crate::domain::{Error, Server};
use crate::store::NewAudit;

/// A checked logout request.
#[derive(Debug, Clone, Default)]
pub struct LogoutRequest {
    /// The application that asked, when it could be told.
    pub client: Option<Client>,
    /// Where to return afterwards: one of the application's registered
    /// addresses, exactly.
    pub post_logout_redirect_uri: Option<String>,
    /// Returned as given.
    pub state: String,
}

/// A logout token to post to an application.
#[derive(Debug, Clone)]
pub struct BackChannel {
    /// The application.
    pub client_id: String,
    /// Its `backchannel_logout_uri`.
    pub uri: String,
    /// The signed token.
    pub token: String,
}

/// How long a logout token is valid.
pub const LOGOUT_TOKEN_SECONDS: u64 = 120;

#[derive(Serialize)]
struct LogoutClaims<'a> {
    iss: String,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    sub: &'a str,
    sid: &'a str,
    events: serde_json::Value,
}

impl Server {
    /// Reads a logout request's query. `current_sid` is the browser's
    /// session, if any: an expired `id_token_hint` is still accepted for
    /// the session it names, as the specification asks, and refused
    /// otherwise. An error is a message for the officer; the logout then
    /// goes on without returning to any application.
    pub fn logout_request(
        &self,
        query: &str,
        current_sid: Option<&str>,
        now: u64,
    ) -> Result<Result<LogoutRequest, String>, Error> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let mut client_id = get("client_id").map(str::to_string);
        if let Some(hint) = get("id_token_hint") {
            let claims: IdClaims =
                match self.token_keys.verify(hint, &self.config.public_url(), now) {
                    Ok(c) => c,
                    Err(_) => {
                        return Ok(Err(
                            "The application's sign-out request could not be verified.".into(),
                        ))
                    }
                };
            if claims.exp <= now && current_sid != Some(claims.sid.as_str()) {
                return Ok(Err("The application's sign-out request has expired.".into()));
            }
            if client_id.as_ref().is_some_and(|id| *id != claims.aud) {
                return Ok(Err(
                    "The application's sign-out request names two applications.".into(),
                ));
            }
            client_id = Some(claims.aud);
        }
        let client =
            match &client_id {
                Some(id) => match self.client(id)? {
                    Some(c) => Some(c),
                    None => return Ok(Err(
                        "The application that sent you here is not registered with this portal."
                            .into(),
                    )),
                },
                None => None,
            };
        let post_logout_redirect_uri = match get("post_logout_redirect_uri") {
            None => None,
            Some(uri) => {
                let registered = client
                    .as_ref()
                    .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri));
                if !registered {
                    return Ok(Err(
                        "The application asked to return to an address it has not registered."
                            .into(),
                    ));
                }
                Some(uri.to_string())
            }
        };
        Ok(Ok(LogoutRequest {
            client,
            post_logout_redirect_uri,
            state: get("state").unwrap_or_default().to_string(),
        }))
    }

    /// The logout tokens for the applications `clients` that browser
    /// session `sid` had signed in to (those with a back-channel address).
    pub fn logout_tokens(
        &self,
        clients: &[String],
        sid: &str,
        subject: &str,
        now: u64,
    ) -> Result<Vec<BackChannel>, Error> {
        let mut out = Vec::new();
        for client_id in clients {
            let Some(client) = self.client(client_id)? else {
                continue;
            };
            let Some(uri) = client.backchannel_logout_uri.clone() else {
                continue;
            };
            let claims = LogoutClaims {
                iss: self.config.public_url(),
                aud: &client.id,
                iat: now,
                exp: now + LOGOUT_TOKEN_SECONDS,
                jti: crate::domain::random_token(&self.rng)?,
                sub: subject,
                sid,
                events: serde_json::json!({
                    "http://schemas.openid.net/event/backchannel-logout": {}
                }),
            };
            let token = self
                .token_keys
                .sign_as(client.id_token_alg, "logout+jwt", &claims)
                .map_err(|e| Error::Internal(e.to_string()))?;
            out.push(BackChannel {
                client_id: client.id,
                uri,
                token,
            });
        }
        Ok(out)
    }

    /// Posts `deliveries` in the background, each audited with its outcome.
    pub fn deliver_logouts(self: &std::sync::Arc<Self>, deliveries: Vec<BackChannel>, ip: String) {
        for d in deliveries {
            let s = self.clone();
            let ip = ip.clone();
            tokio::spawn(async move {
                let outcome = s.backchannel.post(&d.uri, &d.token).await;
                let (result, detail) = match &outcome {
                    Ok(()) => ("ok", String::new()),
                    Err(why) => ("failed", why.clone()),
                };
                let row = NewAudit::of("countersign", "oidc.backchannel_logout", &d.client_id, &ip)
                    .with(result, &detail);
                if let Err(e) = s.audit(row, crate::now()) {
                    tracing::error!("audit of a back-channel logout failed: {e}");
                }
            });
        }
    }
}

//! Posting logout tokens to applications' back-channel logout addresses
//! (OpenID Connect Back-Channel Logout 1.0): a form POST with
//! `logout_token`, over TLS checked against the web PKI (plain HTTP only
//! to loopback, as registration allows), with a short timeout.

use std::sync::Arc;
use std::time::Duration;

/// An HTTP client for logout tokens.
#[derive(Clone)]
pub struct BackChannelClient(Arc<reqwest::Client>);

impl BackChannelClient {
    /// A client trusting the web PKI's roots.
    pub fn new() -> Result<Self, String> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("back-channel client: {e}"))?;
        Ok(BackChannelClient(Arc::new(http)))
    }

    /// Posts `token` to `uri`; the error says what went wrong.
    pub async fn post(&self, uri: &str, token: &str) -> Result<(), String> {
        let resp = self
            .0
            .post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("logout_token={token}"))
            .send()
            .await
            .map_err(|e| format!("not delivered: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "the application answered {}",
                resp.status().as_u16()
            ))
        }
    }
}

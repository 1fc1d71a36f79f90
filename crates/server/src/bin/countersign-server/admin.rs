//! The client admin commands use to reach a running server (a push has to
//! go through the server that holds the device streams). It finds the
//! server through the runtime file in the data folder, pins its TLS key and
//! presents the admin token from the same folder.

use std::time::{Duration, Instant};

use countersign_core::api::{ChallengeStatus, ErrorBody, Verdict};

use countersign_server::domain::push::Created;
use countersign_server::http::api::PushRequest;
use countersign_server::http::serve::running_server;
use countersign_server::infra::datadir::DataDir;

/// A connection to the running server.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: zeroize::Zeroizing<String>,
}

impl AdminClient {
    /// Connects to the server running on this data folder.
    pub fn connect(dir: &DataDir) -> anyhow::Result<Self> {
        let runtime = running_server(dir).ok_or_else(|| {
            anyhow::anyhow!(
                "no server is running on {} (start it with `countersign-server serve`)",
                dir.root().display()
            )
        })?;
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(75));
        if runtime.pin.is_some() {
            runtime
                .tls_pin()
                .ok_or_else(|| anyhow::anyhow!("the runtime file's TLS pin is damaged"))?;
            builder = builder.use_preconfigured_tls(
                countersign_core::pin::PinnedVerifier::client_config_for(&runtime.tls_pins())?,
            );
        }
        Ok(AdminClient {
            http: builder.build()?,
            base: runtime.url,
            token: dir.admin_token()?,
        })
    }

    /// Creates a test challenge.
    pub async fn push(&self, req: &PushRequest) -> anyhow::Result<Created> {
        let resp = self
            .http
            .post(format!("{}/api/v1/admin/push", self.base))
            .bearer_auth(self.token.as_str())
            .json(req)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the server at {}: {e}", self.base))?;
        if !resp.status().is_success() {
            let body: ErrorBody = resp.json().await?;
            anyhow::bail!("{} ({})", body.message, body.code);
        }
        Ok(resp.json().await?)
    }

    /// Request streams open now: in all, and of `device` if given.
    pub async fn streams(
        &self,
        device: Option<&str>,
    ) -> anyhow::Result<countersign_server::http::api::Streams> {
        let mut req = self
            .http
            .get(format!("{}/api/v1/admin/streams", self.base))
            .bearer_auth(self.token.as_str());
        if let Some(d) = device {
            req = req.query(&[("device", d)]);
        }
        Ok(req.send().await?.error_for_status()?.json().await?)
    }

    /// Waits until the challenge is final or `timeout` passes; returns its
    /// status then.
    pub async fn wait(
        &self,
        challenge_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<ChallengeStatus> {
        let start = Instant::now();
        loop {
            let left = timeout
                .saturating_sub(start.elapsed())
                .as_secs()
                .clamp(1, 30);
            let v: Verdict = self
                .http
                .get(format!(
                    "{}/api/v1/challenges/{challenge_id}?wait={left}",
                    self.base
                ))
                .bearer_auth(self.token.as_str())
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if v.status.is_final() || start.elapsed() >= timeout {
                return Ok(v.status);
            }
        }
    }
}

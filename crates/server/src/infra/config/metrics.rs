//! `[metrics]`: where Prometheus scrapes the server's figures.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The address `/metrics` is served on, apart from the sign-in
    /// listener so it is never exposed with the pages (plain HTTP; keep it
    /// on loopback or a management network). Empty: no metrics.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

impl MetricsConfig {
    /// The address to serve metrics on; `None` when they are off.
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        let listen = self.listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        listen
            .parse()
            .map(Some)
            .map_err(|_| format!("{listen:?} is not an address and port such as 127.0.0.1:9464"))
    }
}

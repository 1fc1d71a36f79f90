//! The telephony gateway: hands a text message or a voice call to whatever
//! delivers it. In development each message is a JSON file in an outbox
//! folder (a test, or a person, reads the code there); in production it is
//! POSTed to a webhook that bridges to the SMS/voice provider.
//!
//! The message holds the code, so the outbox is as private as the data
//! folder (0700, files 0600) and nothing here logs a message's text.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::infra::config::{TelephonyConfig, TelephonyMode};

/// Why a message could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum TelephonyError {
    /// The gateway could not be set up or write its outbox.
    #[error("telephony: {0}")]
    Setup(String),
    /// The provider bridge did not take the message (its reason is logged).
    #[error("the telephony bridge is unavailable")]
    Unavailable,
}

/// How a code reaches the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A text message.
    Sms,
    /// A call that reads the code aloud.
    Voice,
}

impl Channel {
    /// The stored and sent name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }

    /// Reads a form value: `sms`/`text` or `voice`/`call`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" | "text" => Some(Channel::Sms),
            "voice" | "call" => Some(Channel::Voice),
            _ => None,
        }
    }
}

/// One message to a phone.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    /// E.164 number.
    pub to: &'a str,
    /// Text or call.
    pub channel: Channel,
    /// What the text says or the call reads.
    pub text: &'a str,
    /// Unix seconds.
    pub at: u64,
}

/// Sends messages as configured.
pub enum Gateway {
    /// JSON files in a folder.
    Outbox {
        /// The folder.
        dir: PathBuf,
        /// Orders files written in the same second.
        seq: AtomicU64,
    },
    /// POST to a provider bridge.
    Webhook {
        /// The URL.
        url: String,
        /// Bearer token, if the environment gave one.
        token: Option<String>,
        /// The client.
        http: Arc<reqwest::Client>,
    },
}

impl Gateway {
    /// The gateway `config` describes; `data` is the data folder (the
    /// default outbox lives in it).
    pub fn new(config: &TelephonyConfig, data: &Path) -> Result<Self, TelephonyError> {
        Ok(match config.mode {
            TelephonyMode::Outbox => Gateway::Outbox {
                dir: config
                    .outbox_dir
                    .clone()
                    .unwrap_or_else(|| data.join("outbox")),
                seq: AtomicU64::new(0),
            },
            TelephonyMode::Webhook => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| TelephonyError::Setup(format!("TLS setup failed: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let http = reqwest::Client::builder()
                    .use_preconfigured_tls(tls)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| TelephonyError::Setup(format!("webhook client: {e}")))?;
                Gateway::Webhook {
                    url: config.webhook_url.clone(),
                    token: std::env::var(&config.webhook_token_env).ok(),
                    http: Arc::new(http),
                }
            }
        })
    }

    /// Sends `m`. A failure is reported without the message's text.
    pub async fn send(&self, m: &Message<'_>) -> Result<(), TelephonyError> {
        let body = serde_json::to_vec(m).map_err(|e| TelephonyError::Setup(e.to_string()))?;
        match self {
            Gateway::Outbox { dir, seq } => {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let name = format!("{}-{:06}-{}.json", m.at, n, std::process::id());
                write_private(dir, &name, &body).map_err(|e| {
                    TelephonyError::Setup(format!("telephony outbox {}: {e}", dir.display()))
                })
            }
            Gateway::Webhook { url, token, http } => {
                let mut req = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.map_err(|e| unavailable(&e.to_string()))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(unavailable(&format!("webhook answered {}", resp.status())))
                }
            }
        }
    }
}

fn unavailable(why: &str) -> TelephonyError {
    tracing::warn!(reason = why, "telephony gateway failed");
    TelephonyError::Unavailable
}

fn write_private(dir: &Path, name: &str, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Written under a temporary name and renamed, so a reader never sees
    // half a message.
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn the_outbox_holds_one_private_json_file_per_message() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let config = TelephonyConfig::default();
        let g = Gateway::new(&config, tmp.path()).unwrap();
        for channel in [Channel::Sms, Channel::Voice] {
            g.send(&Message {
                to: "+12055550123",
                channel,
                text: "code 123456",
                at: 1_700_000_000,
            })
            .await
            .unwrap();
        }
        let dir = tmp.path().join("outbox");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2);
        let first: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        assert_eq!(first["to"], "+12055550123");
        assert_eq!(first["channel"], "sms");
        assert_eq!(first["text"], "code 123456");
        let second: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files[1]).unwrap()).unwrap();
        assert_eq!(second["channel"], "voice");
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_webhook_receives_the_message_with_the_bearer_token() {
        use axum::http::HeaderMap;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let app = axum::Router::new().route(
            "/send",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send((auth, body));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = TelephonyConfig {
            mode: TelephonyMode::Webhook,
            webhook_url: format!("http://127.0.0.1:{port}/send"),
            webhook_token_env: "COUNTERSIGN_TEST_TELEPHONY_TOKEN".into(),
            ..TelephonyConfig::default()
        };
        std::env::set_var("COUNTERSIGN_TEST_TELEPHONY_TOKEN", "bridge-token");
        let g = Gateway::new(&config, Path::new("/nonexistent")).unwrap();
        g.send(&Message {
            to: "+12055550123",
            channel: Channel::Voice,
            text: "code 654321",
            at: 7,
        })
        .await
        .unwrap();
        let (auth, body) = rx.recv().await.unwrap();
        assert_eq!(auth, "Bearer bridge-token");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["to"], "+12055550123");
        assert_eq!(v["channel"], "voice");
        assert_eq!(v["text"], "code 654321");
        assert_eq!(v["at"], 7);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_webhook_that_fails_gives_a_clear_refusal() {
        // A port nothing listens on.
        let port = countersign_testkit::free_port();
        let config = TelephonyConfig {
            mode: TelephonyMode::Webhook,
            webhook_url: format!("http://127.0.0.1:{port}/send"),
            ..TelephonyConfig::default()
        };
        let g = Gateway::new(&config, Path::new("/nonexistent")).unwrap();
        let e = g
            .send(&Message {
                to: "+12055550123",
                channel: Channel::Sms,
                text: "code 123456",
                at: 1,
            })
            .await
            .unwrap_err();
        assert!(matches!(e, TelephonyError::Unavailable), "{e}");
        assert!(!e.to_string().contains("123456"));
    }
}

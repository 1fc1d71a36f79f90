//! The server's configuration: one TOML file, read once into a typed,
//! validated struct; a few environment variables override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use countersign_core::password::PasswordPolicy;
use serde::Deserialize;

/// Everything configurable. Missing keys take the seed guide's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Organisation name shown on pages and in enrollment payloads (`i`).
    pub org_name: String,
    /// Email domain completing bare usernames, e.g. `alacop.gov`.
    pub email_domain: String,
    /// The legal warning shown on every page.
    pub banner: String,
    /// Where the server listens.
    pub listen: SocketAddr,
    /// The URL devices reach the server at; derived from `listen` if empty.
    pub public_url: String,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Password rules.
    pub password: PasswordPolicy,
    /// Sign-in lockout.
    pub lockout: LockoutConfig,
    /// Push challenges.
    pub push: PushConfig,
    /// TOTP verification.
    pub totp: TotpConfig,
    /// Temporary passwords.
    pub users: UsersConfig,
    /// Logging.
    pub log: LogConfig,
    /// Sign-in pages.
    pub web: WebConfig,
    /// Codes sent by text message or voice call.
    pub telephony: TelephonyConfig,
    /// Limits on connections.
    pub connections: ConnectionsConfig,
    /// Single sign-on (OpenID Connect).
    pub oidc: OidcConfig,
    /// Where the state lives.
    pub store: StoreConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
}

/// Limits on connections, so that idle or slow clients cannot take every
/// file descriptor and stall everyone else.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Connections open at once; 0: seven eighths of the open-file limit
    /// (which the server raises to its hard limit at start).
    pub max: usize,
    /// Connections one network address (an IPv6 /64) may hold open at
    /// once, device streams included. Not applied behind a reverse proxy,
    /// where every connection comes from the proxy.
    pub per_address: usize,
    /// Seconds a client has to send a request's headers; also how long an
    /// idle kept-alive connection stays open.
    pub header_timeout_seconds: u64,
    /// Seconds a client has to finish the TLS handshake.
    pub handshake_timeout_seconds: u64,
    /// Threads that serve connections; 0: see
    /// [`ConnectionsConfig::worker_threads`].
    pub workers: usize,
}

/// Where text messages and voice calls go.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelephonyConfig {
    /// `outbox` (development: each message is a JSON file in
    /// `outbox_dir`) or `webhook` (production: each message is POSTed as
    /// JSON to `webhook_url`, which hands it to the SMS/voice provider).
    pub mode: TelephonyMode,
    /// The outbox folder; `outbox` under the data folder if unset.
    pub outbox_dir: Option<PathBuf>,
    /// The provider bridge's URL (https, or http on loopback).
    pub webhook_url: String,
    /// The environment variable holding the bearer token sent to the
    /// webhook (kept out of the file so the file can be shared).
    pub webhook_token_env: String,
    /// Minutes a code can be entered.
    pub code_minutes: u64,
    /// Codes one account may be sent per window.
    pub max_per_window: u32,
    /// The window, in minutes.
    pub window_minutes: u64,
}

/// See [`TelephonyConfig::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelephonyMode {
    /// JSON files in a folder.
    Outbox,
    /// HTTP POST to a provider bridge.
    Webhook,
}

/// Sign-in pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// The application name shown in push requests from the sign-in page.
    pub application: String,
    /// URL prefixes a `return_to` may start with (anything else is refused).
    pub return_to_allow: Vec<String>,
    /// Days a "Stay signed in" session lasts.
    pub stay_signed_in_days: u64,
    /// Minutes a browser session lasts otherwise (and an unfinished sign-in).
    pub session_minutes: u64,
    /// The organisation's logo in the pages' header: a PNG, JPEG or SVG
    /// file. Without one, Countersign's own is shown.
    pub logo: Option<std::path::PathBuf>,
}

/// How the server speaks TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// `self_signed` (default: generated on first start and kept),
    /// `files` (a provided certificate and key), or `off` (plain HTTP behind
    /// a TLS-terminating reverse proxy).
    pub mode: TlsMode,
    /// PEM certificate chain, for `files`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key, for `files`.
    pub key_file: Option<PathBuf>,
}

/// See [`TlsConfig::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Self-signed certificate kept in the data folder; devices pin it.
    SelfSigned,
    /// Certificate and key files.
    Files,
    /// Plain HTTP (only behind a reverse proxy).
    Off,
}

/// Failed sign-ins before a lockout, and its length.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Failures that lock the account.
    pub max_failures: u32,
    /// Minutes the lock lasts.
    pub minutes: u64,
    /// Failed passwords and codes one network address may send, across
    /// all accounts, within `per_address_minutes`.
    pub per_address_failures: u32,
    /// The window of that limit, in minutes.
    pub per_address_minutes: u64,
}

/// Push challenge rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Seconds a challenge can be answered.
    pub ttl_seconds: u64,
    /// Push-fatigue limit: challenges per user per window.
    pub max_per_window: u32,
    /// The window, in minutes.
    pub window_minutes: u64,
}

/// TOTP rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TotpConfig {
    /// Steps accepted either side of now.
    pub skew: u64,
    /// Digits of issued secrets.
    pub digits: u32,
    /// Seconds per step of issued secrets.
    pub period: u32,
}

/// Users.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    /// Temporary password template; see `countersign_core::password`.
    pub temporary_password_template: String,
    /// Hours an officer may postpone registering sign-in methods ("Skip
    /// setup", once per account); 0 turns skipping off.
    pub skip_setup_hours: u64,
    /// Days a temporary password (a new account's, or a reset's) works;
    /// the help desk issues a new one after that.
    pub temporary_password_days: u64,
    /// Resets (of a password, methods, a last device) one staff member may apply an hour.
    pub helpdesk_resets_per_hour: u32,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// The log filter (`error`, `warn`, `info`, `debug`, or directives
    /// such as `info,countersign_server=debug`). `COUNTERSIGN_LOG`
    /// overrides it at start; SIGHUP applies the file's value again.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            json: false,
            level: "info".into(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, which names the key.
        message: String,
    },
    /// A value is out of range.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// The key, e.g. `push.ttl_seconds`.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Reads `path` (or the defaults when `None`), then applies `COUNTERSIGN_STORE_URL` and
    /// `COUNTERSIGN_LISTEN`, and validates.
    pub fn load(
        path: Option<&Path>,
        listen_override: Option<SocketAddr>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Self::parse(&text).map_err(|e| match e {
                    ConfigError::Parse { message, .. } => ConfigError::Parse {
                        path: p.display().to_string(),
                        message,
                    },
                    other => other,
                })?
            }
            None => Config::default(),
        };
        if let Some(listen) = listen_override {
            config.listen = listen;
        }
        if let Some(url) = std::env::var(STORE_URL_ENV).ok().filter(|u| !u.is_empty()) {
            config.store.url = url;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (without validating).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            message: e.to_string(),
        })
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.into(),
            })
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", &format!("is not a log filter: {e}"));
        }
        if let Err(problem) = self.metrics.address() {
            return invalid("metrics.listen", &problem);
        }
        let c = &self.connections;
        if c.per_address == 0 {
            return invalid("connections.per_address", "must be at least 1");
        }
        if !(1..=300).contains(&c.header_timeout_seconds) {
            return invalid(
                "connections.header_timeout_seconds",
                "must be between 1 and 300",
            );
        }
        if c.workers > 1024 {
            return invalid("connections.workers", "must be at most 1024 (0: automatic)");
        }
        if !(1..=300).contains(&c.handshake_timeout_seconds) {
            return invalid(
                "connections.handshake_timeout_seconds",
                "must be between 1 and 300",
            );
        }
        if self.org_name.trim().is_empty() || self.org_name.len() > 64 {
            return invalid("org_name", "must be 1–64 characters");
        }
        if self.email_domain.is_empty()
            || !self.email_domain.contains('.')
            || self.email_domain.contains('@')
        {
            return invalid("email_domain", "must be a domain such as alacop.gov");
        }
        if !self.public_url.is_empty() {
            if let Err(e) = countersign_core::enroll::check_server_url(&self.public_url) {
                return Err(ConfigError::Invalid {
                    key: "public_url",
                    problem: e.to_string(),
                });
            }
        }
        if self.tls.mode == TlsMode::Files
            && (self.tls.cert_file.is_none() || self.tls.key_file.is_none())
        {
            return invalid("tls.mode", "`files` needs tls.cert_file and tls.key_file");
        }
        if !(4..=128).contains(&self.password.min_length) {
            return invalid("password.min_length", "must be between 4 and 128");
        }
        if self.password.history > 100 {
            return invalid("password.history", "must be at most 100");
        }
        if !(1..=90).contains(&self.users.temporary_password_days) {
            return invalid("users.temporary_password_days", "must be between 1 and 90");
        }
        if !(1..=1000).contains(&self.users.helpdesk_resets_per_hour) {
            return invalid(
                "users.helpdesk_resets_per_hour",
                "must be between 1 and 1000",
            );
        }
        if self.users.skip_setup_hours > 24 * 30 {
            return invalid("users.skip_setup_hours", "must be at most 720 (30 days)");
        }
        if self.lockout.max_failures == 0 {
            return invalid("lockout.max_failures", "must be at least 1");
        }
        if self.lockout.per_address_failures == 0 || self.lockout.per_address_minutes == 0 {
            return invalid(
                "lockout.per_address_failures",
                "the per-address limit and its window must be at least 1",
            );
        }
        if !(1..=600).contains(&self.push.ttl_seconds) {
            return invalid("push.ttl_seconds", "must be between 1 and 600");
        }
        if self.push.max_per_window == 0 || self.push.window_minutes == 0 {
            return invalid(
                "push.max_per_window",
                "the push-fatigue limit and window must be at least 1",
            );
        }
        if self.telephony.mode == TelephonyMode::Webhook {
            let url = &self.telephony.webhook_url;
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| url.starts_with(p));
            if !(url.starts_with("https://") || loopback) {
                return invalid(
                    "telephony.webhook_url",
                    "`webhook` needs an https:// URL (http only on loopback)",
                );
            }
        }
        if !(1..=30).contains(&self.telephony.code_minutes) {
            return invalid("telephony.code_minutes", "must be between 1 and 30");
        }
        if self.telephony.max_per_window == 0 || self.telephony.window_minutes == 0 {
            return invalid(
                "telephony.max_per_window",
                "the sending limit and its window must be at least 1",
            );
        }
        if self.totp.skew > 10 {
            return invalid("totp.skew", "must be at most 10 steps");
        }
        if !(6..=8).contains(&self.totp.digits) {
            return invalid("totp.digits", "must be 6, 7 or 8");
        }
        if !(15..=300).contains(&self.totp.period) {
            return invalid("totp.period", "must be between 15 and 300 seconds");
        }
        if self.web.stay_signed_in_days == 0 || self.web.stay_signed_in_days > 365 {
            return invalid("web.stay_signed_in_days", "must be between 1 and 365");
        }
        if self.web.session_minutes < 5 || self.web.session_minutes > 7 * 24 * 60 {
            return invalid(
                "web.session_minutes",
                "must be between 5 minutes and 7 days",
            );
        }
        if let Some(bad) = self
            .web
            .return_to_allow
            .iter()
            .find(|p| countersign_core::enroll::check_server_url(p).is_err())
        {
            return Err(ConfigError::Invalid {
                key: "web.return_to_allow",
                problem: format!("'{bad}' is not an http(s) URL prefix"),
            });
        }
        let o = &self.oidc;
        if !(10..=600).contains(&o.code_seconds) {
            return invalid("oidc.code_seconds", "must be between 10 and 600");
        }
        if !(1..=1440).contains(&o.token_minutes) {
            return invalid("oidc.token_minutes", "must be between 1 and 1440");
        }
        if !(1..=60).contains(&o.request_minutes) {
            return invalid("oidc.request_minutes", "must be between 1 and 60");
        }
        if let Some(logo) = &self.web.logo {
            if logo_type(logo).is_none() {
                return invalid("web.logo", "must be a .png, .jpg, .jpeg or .svg file");
            }
            if !logo.is_file() {
                return Err(ConfigError::Invalid {
                    key: "web.logo",
                    problem: format!("{} is not a readable file", logo.display()),
                });
            }
        }
        if !self.users.temporary_password_template.contains('{') {
            return invalid(
                "users.temporary_password_template",
                "must contain at least one {placeholder}",
            );
        }
        Ok(())
    }

    /// The base URL devices are given.
    pub fn public_url(&self) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.trim_end_matches('/').to_string();
        }
        let scheme = if self.tls.mode == TlsMode::Off {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", self.listen)
    }
}

/// The content type of a logo file, by its extension.
pub fn logo_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "svg" => Some("image/svg+xml"),
        _ => None,
    }
}

mod defaults;
mod metrics;
mod oidc;
mod store;
pub use metrics::MetricsConfig;
pub use oidc::{ClientConfig, OidcConfig};
pub use store::{StoreConfig, STORE_URL_ENV};
#[cfg(test)]
mod tests;

//! The Countersign sign-in server: users and passwords, authenticator
//! activation, number-matching push challenges, TOTP, and a hash-chained
//! audit log, served over HTTPS by axum.
//!
//! Layers, each depending only on those after it:
//! - [`http`] — the router, extractors, API handlers, device streams, the
//!   sign-in pages and the help-desk console;
//! - [`domain`] — the rules (accounts, methods, challenges, the help desk's
//!   fixes), free of HTTP;
//! - [`store`] — the database;
//! - [`infra`] — configuration, the data folder, TLS, telephony, the
//!   hashing threads.
//!
//! The command-line front end lives with the binary (`src/bin/`).

pub mod domain;
pub mod http;
pub mod infra;
pub mod store;

pub use domain::{Error, Server};

/// Unix milliseconds now (delivery latencies).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix seconds now. The only place the server reads the clock; domain
/// functions take the time as a parameter.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A server on the default configuration in a temporary data folder, for
/// unit tests; the folder goes when the first value is dropped.
#[cfg(test)]
pub(crate) fn scratch_server() -> (tempfile::TempDir, std::sync::Arc<Server>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let data = infra::datadir::DataDir::open(dir.path()).expect("a data folder");
    let server = Server::open(infra::config::Config::default(), &data).expect("a server");
    (dir, std::sync::Arc::new(server))
}

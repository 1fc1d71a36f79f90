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

//! The Countersign sign-in server: users and passwords, authenticator
//! activation, number-matching push challenges, TOTP, and a hash-chained
//! audit log, served over HTTPS by axum.

pub mod accounts;
pub mod activation;
pub mod admin;
pub mod api;
pub mod bench;
pub mod captcha;
pub mod config;
pub mod connections;
pub mod datadir;
mod error;
pub mod events;
pub mod hashing;
pub mod helpdesk;
pub mod limits;
pub mod methods;
pub mod push;
pub mod registration;
pub mod serve;
pub mod state;
pub mod store;
pub mod telephony;
pub mod tls;
pub mod totp;
pub mod web;

pub use error::Error;
pub use state::Server;

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

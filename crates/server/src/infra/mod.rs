//! What the server runs on: configuration, the data folder and its keys,
//! TLS certificates, the telephony gateway, the password-hashing
//! threads, and the figures for Prometheus.

pub mod backchannel;
pub mod backup;
pub mod config;
pub mod datadir;
pub mod hashing;
pub mod keyfile;
pub mod metrics;
pub mod telephony;
pub mod tls;
pub mod token_keys;

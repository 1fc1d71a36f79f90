//! The server's integration tests, in one binary: a real server on
//! loopback driven through its API, its pages and its command line.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod backup;
mod cli;
mod common;
mod conformance;
mod domain;
mod durability;
mod instances;
mod keys;
mod logs;
mod metrics;
mod oidc;
mod package;
mod parsers;
mod router;
mod web;

//! Test support shared by the end-to-end tests of the app (a real window
//! under Xvfb, driven through tauri-driver) and of the sign-in pages (headless
//! Debian chromium, driven through chromedriver).
//!
//! Test support: a failed step panics with what it was waiting for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod captcha;
pub mod dpkg;
pub mod help;
pub mod outbox;
pub mod postgres;
pub mod process;
pub mod webdriver;

pub use process::{epoch_ms, free_port, free_ports, process_below, process_tree, xvfb, Proc};
pub use webdriver::Session;

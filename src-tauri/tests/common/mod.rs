//! Shared test support: the real server on loopback with the officer
//! cs0101 (`countersign_e2e::Stack`), and a QR code on the X display.

#![allow(dead_code)]

pub mod x11;

pub use countersign_e2e::{Stack, PASSCODE};

/// The server with the officer every app test uses.
pub fn server() -> Stack {
    Stack::start("cs0101")
}

//! The Countersign authenticator engine: everything an authenticator does,
//! with no user interface. The `countersign` CLI and the desktop/phone app
//! are thin layers over it.
//!
//! - [`vault::Vault`]: the encrypted account store, passcode and lock.
//! - [`accounts`]: OTP and push accounts, codes, names, order.
//! - [`inbox`]: the queue of requests waiting for the person.
//! - [`intake`]: what a pasted or scanned text would add, then adding it.
//! - [`push`]: enrollment, sign-in requests, answers.
//! - [`channel`]: the live request stream with reconnects.
//! - [`backup`]: encrypted export and import.
//! - [`scanner`]: QR decoding off the caller's thread under a time budget.

pub mod accounts;
pub mod backup;
pub mod channel;
pub mod client;
mod error;
pub mod history;
pub mod inbox;
pub mod intake;
mod last_used;
pub mod push;
pub mod scanner;
pub mod screen;
pub mod vault;

pub use error::Error;

/// Unix seconds now: the engine's one clock reading.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The default home folder (`COUNTERSIGN_HOME` overrides it in the CLI).
pub fn default_home() -> Option<std::path::PathBuf> {
    directories::ProjectDirs::from("", "", "countersign").map(|p| p.data_dir().to_path_buf())
}

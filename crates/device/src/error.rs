//! The engine's error type.

use thiserror::Error;

/// Everything the engine can report. Messages say what was wrong and never
/// contain a secret.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A rule of the core was broken (bad payload, bad signature, ...).
    #[error(transparent)]
    Core(#[from] countersign_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file was read but is not a usable image.
    #[error("{path}: {reason}")]
    Image {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The worker thread of a scan stopped unexpectedly.
    #[error("the QR scanner stopped unexpectedly")]
    ScannerStopped,
}

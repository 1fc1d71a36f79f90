//! The core's one error type.

use thiserror::Error;

/// Everything that can go wrong in the core. Messages name the field and the
/// problem and never contain a secret.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A URI or payload field is missing or malformed.
    #[error("{field}: {problem}")]
    Field {
        /// The field, e.g. `secret` or `digits`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The URI has a scheme or type this parser does not handle.
    #[error("unsupported URI: {0}")]
    Unsupported(String),
    /// A signature did not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A key could not be read.
    #[error("invalid key: {0}")]
    BadKey(&'static str),
    /// Sealed data could not be opened: wrong passcode or key, tampered data,
    /// or data moved to another record.
    #[error("wrong passcode or damaged data")]
    Unseal,
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
    /// The image could not be decoded.
    #[error("unreadable image: {0}")]
    Image(String),
}

impl Error {
    /// A field error.
    pub(crate) fn field(field: &'static str, problem: impl Into<String>) -> Self {
        Error::Field {
            field,
            problem: problem.into(),
        }
    }
}

//! The server's error type: a stable code for clients, a plain message for
//! people, and the detail only in the log.

use crate::store::StoreError;

/// A refused request or a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request was understood and refused.
    #[error("{message}")]
    Refused {
        /// HTTP status to answer with.
        status: u16,
        /// Stable code, e.g. `invalid_code`.
        code: &'static str,
        /// For people; never a secret.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A refusal with a status, code and message.
    pub fn refused(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Error::Refused {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the input is malformed.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::refused(400, code, message)
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::refused(404, "not_found", format!("{what} not found"))
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Refused { code, .. } => code,
            Error::Store(_) | Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Error::Refused { status, .. } => *status,
            Error::Store(_) | Error::Internal(_) => 500,
        }
    }
}

impl From<countersign_core::Error> for Error {
    fn from(e: countersign_core::Error) -> Self {
        match e {
            countersign_core::Error::BadSignature => {
                Error::refused(401, "bad_signature", "signature does not verify")
            }
            countersign_core::Error::Random | countersign_core::Error::Unseal => {
                Error::Internal(e.to_string())
            }
            other => Error::invalid("invalid_input", other.to_string()),
        }
    }
}

//! The server's error type: a stable code for clients, a plain message for
//! people, and the detail only in the log. Which HTTP status answers each
//! code is the HTTP layer's business (`http::error`).

use crate::store::StoreError;

/// A refused request or a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request was understood and refused.
    #[error("{message}")]
    Refused {
        /// Why, as a stable code.
        code: Code,
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

/// Why a request was refused. The strings ([`Code::as_str`]) are stable:
/// clients, pages and the app match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The input is malformed; the string names the broken rule, e.g.
    /// `invalid_device_name`.
    Invalid(&'static str),
    /// No such thing (or not the caller's).
    NotFound,
    /// No valid credential (device token, admin token) came with it.
    Unauthorized,
    /// A signature does not verify.
    BadSignature,
    /// Wrong account or password (which one is not said).
    InvalidCredentials,
    /// An activation code that is not valid.
    InvalidCode,
    /// Locked after too many failures, for a while.
    AccountLocked,
    /// Disabled by the help desk.
    AccountDisabled,
    /// A temporary password past its days.
    TemporaryPasswordExpired,
    /// Setting up methods can no longer be postponed.
    SetupRequired,
    /// A help-desk member fixing an account above their role.
    RoleTooHigh,
    /// A device answering a challenge sent to another device.
    WrongDevice,
    /// Pushes are blocked after a fraud report.
    PushBlocked,
    /// The username is taken.
    UserExists,
    /// A registration request decided meanwhile.
    AlreadyDecided,
    /// The account's methods changed while a page was open.
    MethodsChanged,
    /// No phone is registered.
    NoPhone,
    /// No device is registered.
    NoDevice,
    /// The challenge was answered (or expired) already.
    AlreadyAnswered,
    /// The activation code was used.
    CodeUsed,
    /// The activation code no longer binds (the account's methods changed).
    CodeVoid,
    /// No phone code was sent for this step.
    NoCode,
    /// The code (activation or phone) has expired or was used up.
    CodeExpired,
    /// Too many wrong tries (of a code, or from one network address).
    TooManyAttempts,
    /// Too many phone codes sent to the account.
    TooManyCodes,
    /// Too many requests from one network address.
    TooManyRequests,
    /// Too many pushes to the account in the window.
    PushLimited,
    /// Texts and calls cannot be sent now.
    TelephonyUnavailable,
    /// The request body is over the limit.
    BodyTooLarge,
    /// The account's only sign-in method cannot be removed.
    LastMethod,
    /// An application did not authenticate (OAuth `invalid_client`).
    InvalidClient,
    /// An authorization code that is unknown, spent, expired, or not for
    /// this application, redirect or PKCE verifier (OAuth `invalid_grant`).
    InvalidGrant,
    /// An application with that id is registered already.
    ClientExists,
}

impl Code {
    /// The stable string, e.g. `account_locked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Invalid(rule) => rule,
            Code::NotFound => "not_found",
            Code::Unauthorized => "unauthorized",
            Code::BadSignature => "bad_signature",
            Code::InvalidCredentials => "invalid_credentials",
            Code::InvalidCode => "invalid_code",
            Code::AccountLocked => "account_locked",
            Code::AccountDisabled => "account_disabled",
            Code::TemporaryPasswordExpired => "temporary_password_expired",
            Code::SetupRequired => "setup_required",
            Code::RoleTooHigh => "role_too_high",
            Code::WrongDevice => "wrong_device",
            Code::PushBlocked => "push_blocked",
            Code::UserExists => "user_exists",
            Code::AlreadyDecided => "already_decided",
            Code::MethodsChanged => "methods_changed",
            Code::NoPhone => "no_phone",
            Code::NoDevice => "no_device",
            Code::AlreadyAnswered => "already_answered",
            Code::CodeUsed => "code_used",
            Code::CodeVoid => "code_void",
            Code::NoCode => "no_code",
            Code::CodeExpired => "code_expired",
            Code::TooManyAttempts => "too_many_attempts",
            Code::TooManyCodes => "too_many_codes",
            Code::TooManyRequests => "too_many_requests",
            Code::PushLimited => "push_limited",
            Code::TelephonyUnavailable => "telephony_unavailable",
            Code::BodyTooLarge => "body_too_large",
            Code::LastMethod => "last_method",
            Code::InvalidClient => "invalid_client",
            Code::InvalidGrant => "invalid_grant",
            Code::ClientExists => "client_exists",
        }
    }
}

impl Error {
    /// A refusal with a code and a message for people.
    pub fn refused(code: Code, message: impl Into<String>) -> Self {
        Error::Refused {
            code,
            message: message.into(),
        }
    }

    /// Malformed input: `rule` names what was wrong.
    pub fn invalid(rule: &'static str, message: impl Into<String>) -> Self {
        Self::refused(Code::Invalid(rule), message)
    }

    /// No such `what`.
    pub fn not_found(what: &str) -> Self {
        Self::refused(Code::NotFound, format!("{what} not found"))
    }

    /// The stable code string (`internal` for failures).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Refused { code, .. } => code.as_str(),
            Error::Store(_) | Error::Internal(_) => "internal",
        }
    }
}

impl From<crate::infra::telephony::TelephonyError> for Error {
    fn from(e: crate::infra::telephony::TelephonyError) -> Self {
        use crate::infra::telephony::TelephonyError;
        match e {
            TelephonyError::Unavailable => Error::refused(
                Code::TelephonyUnavailable,
                "We couldn't send the code just now. Try again in a minute, or use another method.",
            ),
            TelephonyError::Setup(why) => Error::Internal(why),
        }
    }
}

impl From<countersign_core::Error> for Error {
    fn from(e: countersign_core::Error) -> Self {
        match e {
            countersign_core::Error::BadSignature => {
                Error::refused(Code::BadSignature, "signature does not verify")
            }
            countersign_core::Error::Random | countersign_core::Error::Unseal => {
                Error::Internal(e.to_string())
            }
            other => Error::invalid("invalid_input", other.to_string()),
        }
    }
}

//! The engine's error type.

use thiserror::Error;

/// Everything the engine can report. Messages say what was wrong and what
/// to do, and never contain a secret.
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
    /// The screen could not be captured here.
    #[error("{0}: add the account from an image file or the camera instead")]
    ScreenUnavailable(String),
    /// The worker thread of a scan stopped unexpectedly.
    #[error("the QR scanner stopped unexpectedly")]
    ScannerStopped,
    /// No vault exists yet.
    #[error("no vault at {0}: create one with `countersign init`")]
    NoVault(String),
    /// A vault exists already.
    #[error("a vault already exists at {0}")]
    VaultExists(String),
    /// The passcode was wrong (counted).
    #[error("wrong passcode ({failures} failed attempt(s))")]
    WrongPasscode {
        /// Failures so far.
        failures: u32,
    },
    /// Too many wrong passcodes: wait.
    #[error("too many wrong passcodes: try again in {0} s")]
    Backoff(u64),
    /// The vault was wiped after too many wrong passcodes.
    #[error("the vault was wiped after too many wrong passcodes")]
    Wiped,
    /// The passcode is too weak.
    #[error("the passcode must be at least 6 characters")]
    WeakPasscode,
    /// Adding a push account needs the passcode to seal the device key.
    #[error("enter the passcode: it protects the new sign-in approval key")]
    PasscodeNeeded,
    /// The session locked itself after being idle.
    #[error("locked after being idle: unlock again")]
    Locked,
    /// No such account.
    #[error("no account matches '{0}'")]
    NoAccount(String),
    /// Several accounts match.
    #[error("'{0}' matches several accounts: be more specific")]
    Ambiguous(String),
    /// The account is there already.
    #[error("already added: {0}")]
    Duplicate(String),
    /// The account is not a push account.
    #[error("{0} is not a push (sign-in approval) account")]
    NotPush(String),
    /// No pending challenge with this id.
    #[error("no pending sign-in request {0}")]
    NoChallenge(String),
    /// The server refused the request.
    #[error("the server refused: {message} ({code})")]
    Server {
        /// The server's stable code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// The server's TLS key is not the one pinned at enrollment: another
    /// server answers at that address, or the server was set up anew.
    #[error("the server's identity changed: its TLS key is not the one in the QR code this account was enrolled with. Do not approve anything from it; contact the help desk, and enroll the account again if they confirm the server changed")]
    ServerIdentityChanged,
    /// A backup file is damaged, truncated or from an unknown version.
    #[error("backup file: {0}")]
    Backup(String),
    /// The vault database failed.
    #[error("vault database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A push account's stored trust (server key or TLS pin) is damaged:
    /// the account is refused rather than trusting whatever answers.
    #[error("{account}: its stored {what} is damaged; remove the account and enroll it again")]
    DamagedAccount {
        /// The account's label.
        account: String,
        /// What is damaged.
        what: &'static str,
    },
}

impl Error {
    /// A stable code for front ends to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Core(_) => "invalid_input",
            Error::File { .. } => "file",
            Error::Image { .. } => "image",
            Error::ScreenUnavailable(_) => "screen",
            Error::ScannerStopped => "scanner",
            Error::NoVault(_) => "no_vault",
            Error::VaultExists(_) => "vault_exists",
            Error::WrongPasscode { .. } => "wrong_passcode",
            Error::Backoff(_) => "backoff",
            Error::Wiped => "wiped",
            Error::WeakPasscode => "weak_passcode",
            Error::Locked => "locked",
            Error::PasscodeNeeded => "passcode_needed",
            Error::NoAccount(_) => "no_account",
            Error::Ambiguous(_) => "ambiguous",
            Error::Duplicate(_) => "duplicate",
            Error::NotPush(_) => "not_push",
            Error::NoChallenge(_) => "no_challenge",
            Error::Server { .. } => "server",
            Error::Network(_) => "network",
            Error::ServerIdentityChanged => "server_identity_changed",
            Error::Backup(_) => "backup",
            Error::Database(_) => "database",
            Error::DamagedAccount { .. } => "damaged_account",
        }
    }
}

//! What a pasted or scanned text would add: one otpauth account, the
//! accounts of a migration export, or a push enrollment. Front ends show
//! the preview before anything is stored.

use countersign_core::{migration, Enrollment, OtpAccount, Passcode};
use serde::Serialize;

use crate::accounts::Account;
use crate::vault::Vault;
use crate::{push, Error};

/// A parsed text, ready to add.
pub enum Intake {
    /// OTP accounts (one from `otpauth://`, several from a migration export).
    Otp(Vec<OtpAccount>),
    /// A push enrollment with a server.
    Enroll(Box<Enrollment>),
}

/// One line of the preview.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewItem {
    /// Issuer, if any.
    pub issuer: Option<String>,
    /// Account name.
    pub account: String,
    /// `totp`, `hotp` or `push`.
    pub kind: &'static str,
    /// For push: the server that will be contacted.
    pub server: Option<String>,
}

/// What adding did.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// Accounts added.
    pub added: Vec<Account>,
    /// Labels skipped because they were already in the vault.
    pub skipped: Vec<String>,
}

impl Intake {
    /// Parses `otpauth://`, `otpauth-migration://` or `countersign://enroll`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let scheme = text.split(':').next().unwrap_or("").to_ascii_lowercase();
        Ok(match scheme.as_str() {
            "otpauth-migration" => Intake::Otp(migration::parse(text)?),
            "countersign" => Intake::Enroll(Box::new(Enrollment::parse(text)?)),
            _ => Intake::Otp(vec![OtpAccount::parse(text)?]),
        })
    }

    /// What a person pasted or typed: a link (as [`Intake::parse`]), or a
    /// bare secret key, which becomes a TOTP account named `name`.
    pub fn from_input(text: &str, name: Option<&str>) -> Result<Self, Error> {
        if text.contains("://") {
            Self::parse(text)
        } else {
            let account = OtpAccount::from_typed_key(text, name.unwrap_or_default())?;
            Ok(Intake::Otp(vec![account]))
        }
    }

    /// What would be added, without secrets.
    pub fn preview(&self) -> Vec<PreviewItem> {
        match self {
            Intake::Otp(list) => list
                .iter()
                .map(|a| PreviewItem {
                    issuer: a.issuer.clone(),
                    account: a.account.clone(),
                    kind: match a.kind {
                        countersign_core::otp::OtpKind::Totp { .. } => "totp",
                        countersign_core::otp::OtpKind::Hotp { .. } => "hotp",
                    },
                    server: None,
                })
                .collect(),
            Intake::Enroll(e) => vec![PreviewItem {
                issuer: Some(e.issuer.clone()),
                account: e.account.clone(),
                kind: "push",
                server: Some(e.server.clone()),
            }],
        }
    }

    /// Adds to the vault. An enrollment activates with the server and needs
    /// the passcode (it seals the new device key); OTP accounts do not.
    /// Accounts already present are skipped, not errors.
    pub async fn add(
        self,
        vault: &mut Vault,
        passcode: Option<&Passcode>,
        device_name: &str,
        platform: &str,
        now: u64,
    ) -> Result<Added, Error> {
        let mut out = Added {
            added: Vec::new(),
            skipped: Vec::new(),
        };
        match self {
            Intake::Otp(list) => {
                let several = list.len() > 1;
                for a in &list {
                    match vault.add_otp(a, now) {
                        Ok(x) => out.added.push(x),
                        Err(Error::Duplicate(label)) if several => out.skipped.push(label),
                        Err(e) => return Err(e),
                    }
                }
            }
            Intake::Enroll(e) => {
                let passcode = passcode.ok_or(Error::PasscodeNeeded)?;
                out.added.push(
                    push::enroll(vault, &e.to_uri(), passcode, device_name, platform, now).await?,
                );
            }
        }
        Ok(out)
    }
}

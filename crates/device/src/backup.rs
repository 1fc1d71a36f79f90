//! Encrypted backups: every account's OTP secret in one file, sealed under
//! a passphrase. Push accounts are exported as their TOTP fallback; push
//! approval itself is bound to this device and must be enrolled again.
//!
//! ```text
//! "CSBACKUP" | version (1 byte) | PBKDF2 iterations (u32 BE) | salt (16) | nonce || AES-256-GCM(JSON list of otpauth URIs) || tag
//! ```
//! The header is the associated data, so it cannot be altered either.

use std::path::Path;

use countersign_core::otp::OtpKind;
use countersign_core::vault::{KdfParams, DEFAULT_ITERATIONS, MIN_ITERATIONS};
use countersign_core::{OtpAccount, Passcode};
use zeroize::Zeroizing;

use crate::accounts::AccountKind;
use crate::vault::Vault;
use crate::Error;

const MAGIC: &[u8; 8] = b"CSBACKUP";
const VERSION: u8 = 1;
const HEADER: usize = 8 + 1 + 4 + 16;

/// What an import did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Accounts added.
    pub added: Vec<String>,
    /// Accounts skipped because they were there already.
    pub duplicates: Vec<String>,
}

impl Vault {
    /// Writes every account to `path`, sealed under `passphrase`.
    pub fn export(&mut self, path: &Path, passphrase: &Passcode) -> Result<usize, Error> {
        if passphrase.expose().chars().count() < crate::vault::MIN_PASSCODE {
            return Err(Error::WeakPasscode);
        }
        let mut uris = Zeroizing::new(Vec::new());
        for a in self.accounts()? {
            let secret = self.secret(&a.id)?;
            let kind = match a.kind {
                AccountKind::Hotp => OtpKind::Hotp { counter: a.counter },
                _ => OtpKind::Totp { period: a.period },
            };
            let otp = OtpAccount {
                issuer: a.issuer.clone(),
                account: a.name.clone(),
                secret,
                algorithm: a.algorithm,
                digits: a.digits,
                kind,
            };
            uris.push(otp.to_uri());
        }
        let json =
            Zeroizing::new(serde_json::to_vec(&*uris).map_err(|e| Error::Backup(e.to_string()))?);
        let kdf = KdfParams::generate(&self.rng, DEFAULT_ITERATIONS)?;
        let mut out = header(&kdf);
        let key = kdf.derive(passphrase)?;
        let sealed = key.seal(&self.rng, &json, &out)?;
        out.extend_from_slice(&sealed);
        std::fs::write(path, &out).map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })?;
        Ok(uris.len())
    }

    /// Reads a backup. A wrong passphrase, a damaged or truncated file, or
    /// any unreadable account imports nothing.
    pub fn import(
        &mut self,
        path: &Path,
        passphrase: &Passcode,
        now: u64,
    ) -> Result<ImportReport, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::File {
            path: path.display().to_string(),
            source,
        })?;
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(Error::Backup("not a Countersign backup".into()));
        }
        if bytes.len() < HEADER {
            return Err(Error::Backup("the file is truncated".into()));
        }
        if bytes[8] != VERSION {
            return Err(Error::Backup(format!(
                "version {} is not supported; update the app",
                bytes[8]
            )));
        }
        let iterations = u32::from_be_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
        if iterations < MIN_ITERATIONS {
            return Err(Error::Backup("the header is damaged".into()));
        }
        let kdf = KdfParams {
            iterations,
            salt: bytes[13..HEADER].to_vec(),
        };
        let key = kdf.derive(passphrase)?;
        let json = key.open(&bytes[HEADER..], &bytes[..HEADER]).map_err(|_| {
            Error::Backup("wrong passphrase, or the file is damaged or truncated".into())
        })?;
        let uris: Zeroizing<Vec<String>> = Zeroizing::new(
            serde_json::from_slice(json.expose())
                .map_err(|_| Error::Backup("the content is damaged".into()))?,
        );
        let accounts = uris
            .iter()
            .map(|u| OtpAccount::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let mut report = ImportReport::default();
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        for a in &accounts {
            match self.add_otp(a, now) {
                Ok(added) => report.added.push(added.label()),
                Err(Error::Duplicate(label)) => report.duplicates.push(label),
                Err(e) => {
                    self.conn.execute_batch("ROLLBACK")?;
                    return Err(e);
                }
            }
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(report)
    }
}

fn header(kdf: &KdfParams) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.push(VERSION);
    h.extend_from_slice(&kdf.iterations.to_be_bytes());
    h.extend_from_slice(&kdf.salt);
    h
}

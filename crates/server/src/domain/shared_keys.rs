//! The keys every instance on one PostgreSQL database must share: the
//! server's signing key (devices verify it), the master key (it seals
//! TOTP secrets), the admin token, the TLS key and certificate (devices
//! pin the key) and the single sign-on keys. They live in the database
//! sealed with AES-256-GCM under a key-encryption key (KEK) that each
//! instance reads from `COUNTERSIGN_KEK` or `store.kek_file`; the
//! database never holds them in clear, and each blob is bound to its name.
//!
//! Each instance also keeps them in its data folder (owner-only files, as
//! on SQLite), where the rest of the server reads them. At start the
//! database's copy wins; keys the database lacks are added from the
//! folder (the first instance seeds them; if two start at once, one
//! wins and the other takes its keys).

use std::path::{Path, PathBuf};

use countersign_core::vault::SealingKey;
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

use crate::infra::config::StoreConfig;
use crate::infra::datadir::{remove_if_present, write_private};
use crate::store::{Store, StoreError};

/// The environment variable holding the KEK (base64 of 32 bytes).
pub const KEK_ENV: &str = "COUNTERSIGN_KEK";

/// The data-folder files instances share.
pub const SHARED: &[&str] = &[
    "server.key",
    "master.key",
    "admin.token",
    "tls-key.pem",
    "tls-cert.pem",
    "oidc-keys.json",
    RETIRING,
];

/// The retiring signing key's file, while a rotated key retires
/// (`domain::keys`).
pub const RETIRING: &str = "server-key-retiring.json";

/// A shared-key problem.
#[derive(Debug, thiserror::Error)]
pub enum SharedKeyError {
    /// No KEK was given.
    #[error("a PostgreSQL store needs a key-encryption key: set {KEK_ENV} or store.kek_file (32 random bytes, base64, e.g. `openssl rand -base64 32`)")]
    NoKek,
    /// The KEK is not 32 bytes of base64.
    #[error("the key-encryption key ({0}) is not 32 bytes of base64")]
    BadKek(String),
    /// A sealed key did not open: another KEK sealed it, or it was altered.
    #[error("the shared key {0} in the database does not open with this key-encryption key (another KEK, or the row was altered)")]
    Unseal(String),
    /// A file could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing failed (the random generator).
    #[error("sealing a shared key failed")]
    Seal,
}

/// The KEK and the data folder the keys are kept in.
pub struct SharedKeys {
    kek: SealingKey,
    root: PathBuf,
}

impl SharedKeys {
    /// Reads the KEK from `COUNTERSIGN_KEK`, else `store.kek_file`.
    pub fn new(config: &StoreConfig, root: &Path) -> Result<Self, SharedKeyError> {
        let (text, source) = match std::env::var(KEK_ENV).ok().filter(|v| !v.is_empty()) {
            Some(v) => (Zeroizing::new(v), KEK_ENV.to_string()),
            None => {
                let path = config.kek_file.as_ref().ok_or(SharedKeyError::NoKek)?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| SharedKeyError::Io(path.display().to_string(), e))?;
                (Zeroizing::new(text), path.display().to_string())
            }
        };
        Ok(SharedKeys {
            kek: crate::infra::keyfile::parse_key(&text).ok_or(SharedKeyError::BadKek(source))?,
            root: root.to_path_buf(),
        })
    }

    /// Writes every key the database holds into the data folder. A
    /// retiring signing key the database no longer holds (it retired) is
    /// removed from the folder too, so that [`SharedKeys::seed`] cannot
    /// put it back; unless the database holds no signing key yet (a first
    /// instance, moving a deployment mid-rotation, seeds it).
    pub fn pull(&self, store: &Store) -> Result<(), SharedKeyError> {
        let mut held = std::collections::HashSet::new();
        for name in SHARED {
            if self.pull_one(store, name)? {
                held.insert(*name);
            }
        }
        if held.contains("server.key") && !held.contains(RETIRING) {
            let path = self.root.join(RETIRING);
            remove_if_present(&path)
                .map_err(|e| SharedKeyError::Io(path.display().to_string(), e))?;
        }
        Ok(())
    }

    /// The key `name` as the database holds it, if it does.
    pub fn current(
        &self,
        store: &Store,
        name: &str,
    ) -> Result<Option<countersign_core::SecretBytes>, SharedKeyError> {
        let Some(sealed) = store.sealed_secret(name)? else {
            return Ok(None);
        };
        self.kek
            .open(&sealed, name.as_bytes())
            .map(Some)
            .map_err(|_| SharedKeyError::Unseal(name.to_string()))
    }

    /// Writes the key `name` the database holds (if any) into the folder;
    /// whether it held one.
    pub fn pull_one(&self, store: &Store, name: &str) -> Result<bool, SharedKeyError> {
        let Some(plain) = self.current(store, name)? else {
            return Ok(false);
        };
        let path = self.root.join(name);
        let local = std::fs::read(&path).ok().map(Zeroizing::new);
        if local.as_deref().map(Vec::as_slice) != Some(plain.expose()) {
            write_private(&path, plain.expose()).map_err(|e| {
                SharedKeyError::Io(
                    path.display().to_string(),
                    std::io::Error::other(e.to_string()),
                )
            })?;
        }
        Ok(true)
    }

    /// Adds the folder's keys the database lacks, then takes the
    /// database's (another instance may have added its own first).
    pub fn seed(&self, store: &Store, now: u64) -> Result<(), SharedKeyError> {
        for name in SHARED {
            // Once seeded, a start only reads: no sealing, no write.
            if self.root.join(name).exists() && store.sealed_secret(name)?.is_none() {
                self.adopt(store, name, now)?;
            }
        }
        Ok(())
    }

    /// Adds the folder's key `name` unless the database has one; then
    /// the folder holds the database's.
    pub fn adopt(&self, store: &Store, name: &str, now: u64) -> Result<(), SharedKeyError> {
        let path = self.root.join(name);
        let plain = std::fs::read(&path)
            .map(Zeroizing::new)
            .map_err(|e| SharedKeyError::Io(path.display().to_string(), e))?;
        let sealed = self.seal(name, &plain)?;
        if !store.write(now, |w| w.add_sealed_secret(name, &sealed, now))? {
            self.pull_one(store, name)?;
        }
        Ok(())
    }

    /// Puts the folder's key `name` into the database, replacing what it
    /// held, and tells the other instances (e.g. after a rotation).
    pub fn publish(&self, store: &Store, name: &str, now: u64) -> Result<(), SharedKeyError> {
        let path = self.root.join(name);
        let plain = std::fs::read(&path)
            .map(Zeroizing::new)
            .map_err(|e| SharedKeyError::Io(path.display().to_string(), e))?;
        let sealed = self.seal(name, &plain)?;
        store.write(now, |w| w.replace_sealed_secret(name, &sealed, now))?;
        Ok(())
    }

    /// `plain` sealed as the key `name`, to be stored in the database.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, SharedKeyError> {
        self.kek
            .seal(&SystemRandom::new(), plain, name.as_bytes())
            .map_err(|_| SharedKeyError::Seal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_under_its_kek_and_its_name() {
        let keys = SharedKeys {
            kek: crate::infra::keyfile::parse_key(&data_encoding::BASE64.encode(&[1u8; 32]))
                .unwrap(),
            root: PathBuf::new(),
        };
        let sealed = keys.seal("server.key", b"secret").unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"secret"),
            "sealed in clear"
        );
        assert_eq!(
            keys.kek.open(&sealed, b"server.key").unwrap().expose(),
            b"secret"
        );
        assert!(
            keys.kek.open(&sealed, b"master.key").is_err(),
            "bound to its name"
        );
        let other =
            crate::infra::keyfile::parse_key(&data_encoding::BASE64.encode(&[2u8; 32])).unwrap();
        assert!(other.open(&sealed, b"server.key").is_err());
    }
}

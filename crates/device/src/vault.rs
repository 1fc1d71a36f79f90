//! The vault: an SQLite file holding every account, with every secret
//! sealed. TOTP secrets and channel tokens are sealed under a random data
//! key; the data key is wrapped under the passcode-derived key; each device
//! signing key is sealed under the passcode-derived key itself, so approving
//! a sign-in needs the passcode even while the vault is unlocked.
//!
//! Failed passcodes are counted in the file and back off (30 s after 5,
//! doubling), so restarting the app does not reset them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::last_used::LastUsed;

use countersign_core::vault::{KdfParams, SealingKey, DEFAULT_ITERATIONS};
use countersign_core::{Passcode, SecretBytes};
use ring::rand::SystemRandom;
use rusqlite::{params, Connection, OptionalExtension};

use crate::Error;

/// Failures allowed before backing off.
pub const FREE_ATTEMPTS: u32 = 5;
/// First back-off, doubled at each further failure.
pub const FIRST_BACKOFF: u64 = 30;
/// Default idle time before the vault locks itself.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);
/// Shortest passcode.
pub const MIN_PASSCODE: usize = countersign_core::Passcode::MIN_LEN;

const SCHEMA: &[&str] = &[
    r#"
CREATE TABLE vault (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    kdf TEXT NOT NULL,
    data_key BLOB NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    backoff_until INTEGER NOT NULL DEFAULT 0,
    wipe_after INTEGER,
    idle_seconds INTEGER NOT NULL DEFAULT 300,
    created_at INTEGER NOT NULL
);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    issuer TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    digits INTEGER NOT NULL,
    period INTEGER NOT NULL,
    counter INTEGER NOT NULL DEFAULT 0,
    secret BLOB NOT NULL,
    fingerprint BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    server_url TEXT,
    server_key BLOB,
    pin BLOB,
    device_id TEXT,
    channel_token BLOB,
    signing_key BLOB
);
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    account TEXT NOT NULL,
    challenge_id TEXT NOT NULL,
    application TEXT NOT NULL,
    ip TEXT NOT NULL,
    location TEXT NOT NULL,
    decision TEXT NOT NULL,
    result TEXT NOT NULL
);
"#,
    r#"
ALTER TABLE accounts ADD COLUMN receipt_key BLOB;
"#,
    r#"
ALTER TABLE vault ADD COLUMN lock_when_hidden INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
ALTER TABLE accounts ADD COLUMN next_pin BLOB;
ALTER TABLE accounts ADD COLUMN pin_switch_at INTEGER;
"#,
];

/// When the vault locks by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoLock {
    /// Idle time before it locks.
    pub idle: Duration,
    /// Whether hiding the app's window locks it.
    pub when_hidden: bool,
}

/// The vault file and, while unlocked, its data key.
pub struct Vault {
    pub(crate) conn: Connection,
    path: PathBuf,
    pub(crate) rng: SystemRandom,
    unlocked: Option<Unlocked>,
}

struct Unlocked {
    data_key: SealingKey,
    last_used: LastUsed,
    idle: Duration,
}

impl Vault {
    /// The vault file inside `home`.
    pub fn file(home: &Path) -> PathBuf {
        home.join("vault.db")
    }

    /// Creates a vault protected by `passcode` at `iterations` rounds.
    pub fn create(
        home: &Path,
        passcode: &Passcode,
        iterations: u32,
        now: u64,
    ) -> Result<Self, Error> {
        if passcode.expose().chars().count() < MIN_PASSCODE {
            return Err(Error::WeakPasscode);
        }
        let path = Self::file(home);
        if path.exists() {
            return Err(Error::VaultExists(path.display().to_string()));
        }
        std::fs::create_dir_all(home).map_err(|source| Error::File {
            path: home.display().to_string(),
            source,
        })?;
        restrict(home);
        let rng = SystemRandom::new();
        let kdf = KdfParams::generate(&rng, iterations)?;
        let kek = kdf.derive(passcode)?;
        let data_key = SealingKey::generate(&rng)?;
        let wrapped = kek.wrap(&rng, &data_key, b"vault/data-key")?;
        let mut vault = Self::open_file(&path)?;
        vault.conn.execute(
            "INSERT INTO vault (id, kdf, data_key, created_at) VALUES (1, ?1, ?2, ?3)",
            params![
                serde_json::to_string(&kdf).unwrap_or_default(),
                wrapped,
                now
            ],
        )?;
        restrict(&path);
        vault.unlocked = Some(Unlocked {
            data_key,
            last_used: LastUsed::now(),
            idle: DEFAULT_IDLE,
        });
        Ok(vault)
    }

    /// Opens an existing vault, locked.
    pub fn open(home: &Path) -> Result<Self, Error> {
        let path = Self::file(home);
        if !path.exists() {
            return Err(Error::NoVault(path.display().to_string()));
        }
        let vault = Self::open_file(&path)?;
        let exists: Option<i64> = vault
            .conn
            .query_row("SELECT id FROM vault", [], |r| r.get(0))
            .optional()?;
        if exists.is_none() {
            return Err(Error::NoVault(path.display().to_string()));
        }
        Ok(vault)
    }

    fn open_file(path: &Path) -> Result<Self, Error> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in SCHEMA.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Vault {
            conn,
            path: path.to_path_buf(),
            rng: SystemRandom::new(),
            unlocked: None,
        })
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unlocks with the passcode. A wrong passcode is counted and changes
    /// nothing else; after [`FREE_ATTEMPTS`] failures each further try must
    /// wait, and with wipe-after set the vault is wiped at that count.
    pub fn unlock(&mut self, passcode: &Passcode, now: u64) -> Result<(), Error> {
        let kek = self.passcode_key(passcode, now)?;
        let wrapped: Vec<u8> = self
            .conn
            .query_row("SELECT data_key FROM vault", [], |r| r.get(0))?;
        match kek.unwrap_key(&wrapped, b"vault/data-key") {
            Ok(data_key) => {
                self.passcode_ok()?;
                let idle: u64 = self
                    .conn
                    .query_row("SELECT idle_seconds FROM vault", [], |r| r.get(0))?;
                self.unlocked = Some(Unlocked {
                    data_key,
                    last_used: LastUsed::now(),
                    idle: Duration::from_secs(idle),
                });
                Ok(())
            }
            Err(_) => Err(self.passcode_failed(now)?),
        }
    }

    /// Derives the passcode key, refusing while a back-off runs.
    pub(crate) fn passcode_key(&self, passcode: &Passcode, now: u64) -> Result<SealingKey, Error> {
        let (kdf, backoff_until): (String, u64) =
            self.conn
                .query_row("SELECT kdf, backoff_until FROM vault", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        if backoff_until > now {
            return Err(Error::Backoff(backoff_until - now));
        }
        let kdf: KdfParams = serde_json::from_str(&kdf)
            .map_err(|_| Error::NoVault("damaged vault header".into()))?;
        Ok(kdf.derive(passcode)?)
    }

    /// Records a wrong passcode; returns the error to report.
    pub(crate) fn passcode_failed(&mut self, now: u64) -> Result<Error, Error> {
        let (failures, wipe_after): (u32, Option<u32>) = self.conn.query_row(
            "UPDATE vault SET failures = failures + 1 RETURNING failures, wipe_after",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if wipe_after.is_some_and(|n| failures >= n) {
            self.wipe()?;
            return Ok(Error::Wiped);
        }
        if failures >= FREE_ATTEMPTS {
            let wait = FIRST_BACKOFF.saturating_mul(1u64 << (failures - FREE_ATTEMPTS).min(16));
            self.conn
                .execute("UPDATE vault SET backoff_until = ?1", [now + wait])?;
        }
        Ok(Error::WrongPasscode { failures })
    }

    /// A right passcode was typed: failures are forgotten, and it counts
    /// as the person's activity.
    pub(crate) fn passcode_ok(&mut self) -> Result<(), Error> {
        self.conn
            .execute("UPDATE vault SET failures = 0, backoff_until = 0", [])?;
        self.touch();
        Ok(())
    }

    fn wipe(&mut self) -> Result<(), Error> {
        self.unlocked = None;
        self.conn
            .execute_batch("DELETE FROM accounts; DELETE FROM history; DELETE FROM vault;")?;
        Ok(())
    }

    /// Failed passcodes since the last success.
    pub fn failures(&self) -> Result<u32, Error> {
        Ok(self
            .conn
            .query_row("SELECT failures FROM vault", [], |r| r.get(0))?)
    }

    /// Wipes the vault after `n` wrong passcodes (`None`: never, the default).
    pub fn set_wipe_after(&mut self, n: Option<u32>) -> Result<(), Error> {
        self.conn.execute("UPDATE vault SET wipe_after = ?1", [n])?;
        Ok(())
    }

    /// The auto-lock settings in force.
    pub fn auto_lock(&self) -> Result<AutoLock, Error> {
        let (idle, hidden): (u64, bool) = self.conn.query_row(
            "SELECT idle_seconds, lock_when_hidden FROM vault",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(AutoLock {
            idle: Duration::from_secs(idle),
            when_hidden: hidden,
        })
    }

    /// Stores the auto-lock settings (the idle time applies at once).
    pub fn set_auto_lock(&mut self, a: AutoLock) -> Result<(), Error> {
        self.conn
            .execute("UPDATE vault SET lock_when_hidden = ?1", [a.when_hidden])?;
        self.set_idle_timeout(a.idle)
    }

    /// Sets the idle time after which the vault locks itself.
    pub fn set_idle_timeout(&mut self, idle: Duration) -> Result<(), Error> {
        self.conn
            .execute("UPDATE vault SET idle_seconds = ?1", [idle.as_secs()])?;
        if let Some(u) = &mut self.unlocked {
            u.idle = idle;
        }
        Ok(())
    }

    /// Locks: forgets the data key.
    pub fn lock(&mut self) {
        self.unlocked = None;
    }

    /// Forgets the data key if the vault has been idle too long; true if it
    /// did (the caller then tells the person). A watchdog calls this, so an
    /// unattended vault locks on time even when nothing reads it.
    pub fn lock_if_idle(&mut self) -> bool {
        if self.unlocked.is_some() && !self.is_unlocked() {
            self.unlocked = None;
            return true;
        }
        false
    }

    /// True while unlocked and not idle too long.
    pub fn is_unlocked(&self) -> bool {
        self.unlocked
            .as_ref()
            .is_some_and(|u| u.last_used.elapsed() < u.idle)
    }

    /// The data key; `Locked` if idle too long. Using the key is not
    /// activity: a screen that reads codes by itself, or requests that
    /// arrive, must not keep an unattended vault open. Only what the person
    /// does counts ([`Vault::touch`], a right passcode).
    pub(crate) fn data_key(&mut self) -> Result<&SealingKey, Error> {
        if !self.is_unlocked() {
            self.unlocked = None;
            return Err(Error::Locked);
        }
        let u = self.unlocked.as_ref().ok_or(Error::Locked)?;
        Ok(&u.data_key)
    }

    /// The person did something (a tap, a key, an approval): the idle
    /// timer starts again, if the vault is still unlocked.
    pub fn touch(&mut self) {
        if self.is_unlocked() {
            if let Some(u) = self.unlocked.as_mut() {
                u.last_used = LastUsed::now();
            }
        } else {
            self.unlocked = None;
        }
    }

    /// Seals `secret` under the data key for `aad`.
    pub(crate) fn seal(&mut self, secret: &[u8], aad: &str) -> Result<Vec<u8>, Error> {
        let key = self.data_key()?;
        Ok(key.seal(&SystemRandom::new(), secret, aad.as_bytes())?)
    }

    /// Opens a blob sealed under the data key.
    pub(crate) fn open_sealed(&mut self, blob: &[u8], aad: &str) -> Result<SecretBytes, Error> {
        let key = self.data_key()?;
        Ok(key.open(blob, aad.as_bytes())?)
    }

    /// A keyed fingerprint of a secret, to spot duplicates without storing it.
    pub(crate) fn fingerprint(&mut self, secret: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.data_key()?;
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.expose());
        Ok(ring::hmac::sign(&mac, secret).as_ref().to_vec())
    }

    /// Changes the passcode: rewraps the data key and re-seals every
    /// device signing key, in one transaction.
    pub fn change_passcode(
        &mut self,
        old: &Passcode,
        new: &Passcode,
        now: u64,
    ) -> Result<(), Error> {
        if new.expose().chars().count() < MIN_PASSCODE {
            return Err(Error::WeakPasscode);
        }
        let old_kek = self.passcode_key(old, now)?;
        let wrapped: Vec<u8> = self
            .conn
            .query_row("SELECT data_key FROM vault", [], |r| r.get(0))?;
        let data_key = match old_kek.unwrap_key(&wrapped, b"vault/data-key") {
            Ok(k) => k,
            Err(_) => return Err(self.passcode_failed(now)?),
        };
        self.passcode_ok()?;
        let kdf = KdfParams::generate(
            &self.rng,
            DEFAULT_ITERATIONS.max(current_iterations(&self.conn)?),
        )?;
        let new_kek = kdf.derive(new)?;
        let tx = self.conn.transaction()?;
        let keys: Vec<(String, Vec<u8>)> = {
            let mut stmt =
                tx.prepare("SELECT id, signing_key FROM accounts WHERE signing_key IS NOT NULL")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows
        };
        for (id, blob) in keys {
            let aad = signing_key_aad(&id);
            let key = old_kek.open(&blob, aad.as_bytes())?;
            let resealed = new_kek.seal(&self.rng, key.expose(), aad.as_bytes())?;
            tx.execute(
                "UPDATE accounts SET signing_key = ?2 WHERE id = ?1",
                params![id, resealed],
            )?;
        }
        tx.execute(
            "UPDATE vault SET kdf = ?1, data_key = ?2",
            params![
                serde_json::to_string(&kdf).unwrap_or_default(),
                new_kek.wrap(&self.rng, &data_key, b"vault/data-key")?
            ],
        )?;
        tx.commit()?;
        self.unlocked = Some(Unlocked {
            data_key,
            last_used: LastUsed::now(),
            idle: DEFAULT_IDLE,
        });
        Ok(())
    }
}

fn current_iterations(conn: &Connection) -> Result<u32, Error> {
    let kdf: String = conn.query_row("SELECT kdf FROM vault", [], |r| r.get(0))?;
    Ok(serde_json::from_str::<KdfParams>(&kdf)
        .map(|k| k.iterations)
        .unwrap_or(DEFAULT_ITERATIONS))
}

/// Associated data of an account's sealed OTP secret.
pub(crate) fn secret_aad(id: &str) -> String {
    format!("account/{id}/secret")
}

/// Associated data of a push account's sealed channel token.
pub(crate) fn token_aad(id: &str) -> String {
    format!("account/{id}/channel-token")
}

/// Associated data of a push account's sealed receipt key.
pub(crate) fn receipt_key_aad(id: &str) -> String {
    format!("account/{id}/receipt-key")
}

/// Associated data of a push account's sealed signing key.
pub(crate) fn signing_key_aad(id: &str) -> String {
    format!("account/{id}/signing-key")
}

fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        // Best effort: a folder we cannot chmod still works.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
}

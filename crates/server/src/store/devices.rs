//! Activation codes and enrolled devices.

use serde::Serialize;

use super::db::{args, Row};
use super::{Store, StoreError, Write, HAS_METHOD};

/// A pending activation.
#[derive(Debug, Clone)]
pub struct ActivationRow {
    /// Public half of the code, used to find it.
    pub id: String,
    /// The user being enrolled.
    pub user_id: i64,
    /// SHA-256 of the secret half.
    pub secret_hash: Vec<u8>,
    /// Expiry.
    pub expires_at: u64,
    /// Wrong secrets tried.
    pub attempts: u32,
    /// When it was used, if it was.
    pub used_at: Option<u64>,
    /// Issued on the password alone (first registration): binds a device
    /// only while the user has no method at all.
    pub first_method: bool,
}

/// How binding a device to an activation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// The device is bound.
    Bound,
    /// The code was used meanwhile.
    CodeUsed,
    /// A first-method code, but the user has a method now.
    AccountHasMethod,
}

/// A device to bind.
pub struct NewDevice<'a> {
    /// New id.
    pub id: &'a str,
    /// Owner.
    pub user_id: i64,
    /// Name the person gave it.
    pub name: &'a str,
    /// Platform.
    pub platform: &'a str,
    /// App version.
    pub app_version: &'a str,
    /// Ed25519 public key.
    pub public_key: &'a [u8; 32],
    /// Ed25519 key of the device's delivery and shown receipts, which it
    /// can sign without the passcode.
    pub receipt_key: Option<&'a [u8; 32]>,
    /// SHA-256 of the channel token.
    pub token_hash: &'a [u8],
    /// TOTP secret sealed under the master key.
    pub totp_secret: &'a [u8],
    /// TOTP hash name.
    pub totp_algorithm: &'a str,
    /// TOTP digits.
    pub totp_digits: u32,
    /// TOTP period.
    pub totp_period: u32,
}

/// An enrolled device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Name.
    pub name: String,
    /// Platform.
    pub platform: String,
    /// App version.
    pub app_version: String,
    /// Ed25519 public key.
    #[serde(skip)]
    pub public_key: [u8; 32],
    /// SHA-256 of the channel token.
    #[serde(skip)]
    pub token_hash: Vec<u8>,
    /// Sealed TOTP secret.
    #[serde(skip)]
    pub totp_secret: Vec<u8>,
    /// TOTP hash.
    pub totp_algorithm: String,
    /// TOTP digits.
    pub totp_digits: u32,
    /// TOTP period.
    pub totp_period: u32,
    /// Last TOTP step accepted (replay guard), -1 if none.
    pub last_totp_step: i64,
    /// Enrolled.
    pub created_at: u64,
    /// Last contact.
    pub last_seen_at: u64,
    /// The receipt key, if the device registered one.
    #[serde(skip)]
    pub receipt_key: Option<[u8; 32]>,
}

pub(super) const COLUMNS: &str = "id, user_id, name, platform, app_version, public_key, token_hash, totp_secret, totp_algorithm, \
                       totp_digits, totp_period, last_totp_step, created_at, last_seen_at, receipt_key";

fn device(r: &Row<'_>) -> Result<DeviceRow, StoreError> {
    device_from(r, 0)
}

/// A device from [`COLUMNS`] starting at column `at` (after a join's
/// other columns).
pub(super) fn device_from(r: &Row<'_>, at: usize) -> Result<DeviceRow, StoreError> {
    let key: Vec<u8> = r.get(at + 5)?;
    let mut public_key = [0u8; 32];
    if key.len() == 32 {
        public_key.copy_from_slice(&key);
    }
    Ok(DeviceRow {
        id: r.get(at)?,
        user_id: r.get(at + 1)?,
        name: r.get(at + 2)?,
        platform: r.get(at + 3)?,
        app_version: r.get(at + 4)?,
        public_key,
        token_hash: r.get(at + 6)?,
        totp_secret: r.get(at + 7)?,
        totp_algorithm: r.get(at + 8)?,
        totp_digits: r.get(at + 9)?,
        totp_period: r.get(at + 10)?,
        last_totp_step: r.get(at + 11)?,
        created_at: r.get(at + 12)?,
        last_seen_at: r.get(at + 13)?,
        receipt_key: r
            .get::<Option<Vec<u8>>>(at + 14)?
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok()),
    })
}

impl Store {
    /// An activation by its public id.
    pub fn activation(&self, id: &str) -> Result<Option<ActivationRow>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT id, user_id, secret_hash, expires_at, attempts, used_at, first_method FROM activations WHERE id = ?1",
                args![id],
                |r| {
                    Ok(ActivationRow {
                        id: r.get(0)?,
                        user_id: r.get(1)?,
                        secret_hash: r.get(2)?,
                        expires_at: r.get(3)?,
                        attempts: r.get(4)?,
                        used_at: r.get(5)?,
                        first_method: r.get(6)?,
                    })
                },
            )
        })
    }

    /// An active (not removed) device.
    pub fn device(&self, id: &str) -> Result<Option<DeviceRow>, StoreError> {
        self.read(|db| {
            db.opt(
                &format!("SELECT {COLUMNS} FROM devices WHERE id = ?1 AND removed_at IS NULL"),
                args![id],
                device,
            )
        })
    }

    /// A user's active devices, newest first.
    pub fn devices_of(&self, user_id: i64) -> Result<Vec<DeviceRow>, StoreError> {
        self.read(|db| {
            db.all(&format!(
                "SELECT {COLUMNS} FROM devices WHERE user_id = ?1 AND removed_at IS NULL ORDER BY created_at DESC, rowid DESC"
            ), args![user_id], device)
        })
    }
}

impl Write<'_> {
    /// Every device's sealed TOTP secret, removed devices' included.
    pub fn all_totp_secrets(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.db().all(
            "SELECT id, totp_secret FROM devices ORDER BY id",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Replaces a device's sealed TOTP secret (a master-key rotation).
    pub fn set_totp_secret(&self, device_id: &str, sealed: &[u8]) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE devices SET totp_secret = ?2 WHERE id = ?1",
            args![device_id, sealed],
        )?;
        Ok(())
    }

    /// Stores a new activation code (its secret half hashed).
    pub fn insert_activation(
        &self,
        id: &str,
        user_id: i64,
        secret_hash: &[u8],
        first_method: bool,
        now: u64,
        ttl: u64,
    ) -> Result<(), StoreError> {
        self.db().exec(
            "INSERT INTO activations (id, user_id, secret_hash, created_at, expires_at, first_method) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            args![id, user_id, secret_hash, now, now + ttl, first_method],
        )?;
        Ok(())
    }

    /// Counts a wrong secret against an activation.
    pub fn count_activation_attempt(&self, id: &str) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE activations SET attempts = attempts + 1 WHERE id = ?1",
            args![id],
        )?;
        Ok(())
    }

    /// Marks the activation used and binds the device, atomically: if the
    /// code was used meanwhile, or is a first-method code and the user has
    /// a method now, nothing is written.
    pub fn complete_activation(
        &self,
        activation_id: &str,
        d: &NewDevice<'_>,
        now: u64,
    ) -> Result<Binding, StoreError> {
        let db = self.db();
        let first_method: bool = db.one(
            "SELECT first_method FROM activations WHERE id = ?1",
            args![activation_id],
            |r| r.get(0),
        )?;
        if first_method && db.one(HAS_METHOD, args![d.user_id], |r| r.get(0))? {
            return Ok(Binding::AccountHasMethod);
        }
        let used = db.exec(
            "UPDATE activations SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            args![activation_id, now],
        )?;
        if used == 0 {
            return Ok(Binding::CodeUsed);
        }
        db.exec(
            "INSERT INTO devices (id, user_id, name, platform, app_version, public_key, token_hash, totp_secret, \
             totp_algorithm, totp_digits, totp_period, created_at, last_seen_at, receipt_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)",
            args![
                d.id,
                d.user_id,
                d.name,
                d.platform,
                d.app_version,
                &d.public_key[..],
                d.token_hash,
                d.totp_secret,
                d.totp_algorithm,
                d.totp_digits,
                d.totp_period,
                now,
                d.receipt_key.map(|k| k.to_vec())
            ],
        )?;
        Ok(Binding::Bound)
    }

    /// Records contact from a device.
    pub fn touch_device(&self, id: &str, now: u64) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE devices SET last_seen_at = ?2 WHERE id = ?1",
            args![id, now],
        )?;
        Ok(())
    }

    /// Accepts TOTP step `step` for a device unless it, or a later one, was
    /// accepted before (replay guard). True when accepted.
    pub fn accept_totp_step(&self, device_id: &str, step: u64) -> Result<bool, StoreError> {
        let n = self.db().exec(
            "UPDATE devices SET last_totp_step = ?2 WHERE id = ?1 AND last_totp_step < ?2",
            args![device_id, step as i64],
        )?;
        Ok(n == 1)
    }

    /// Whether `id` is one of `user_id`'s active devices, as this write
    /// sees it.
    pub fn holds_device(&self, user_id: i64, id: &str) -> Result<bool, StoreError> {
        let n: i64 = self.db().one(
            "SELECT COUNT(*) FROM devices WHERE id = ?1 AND user_id = ?2 AND removed_at IS NULL",
            args![id, user_id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Removes a device (kept for the audit trail, no longer usable).
    pub fn remove_device(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let n = self.db().exec(
            "UPDATE devices SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
            args![id, now],
        )?;
        Ok(n == 1)
    }

    /// Removes every device of a user and voids unused activation codes.
    pub fn remove_devices_of(&self, user_id: i64, now: u64) -> Result<usize, StoreError> {
        let db = self.db();
        let n = db.exec(
            "UPDATE devices SET removed_at = ?2 WHERE user_id = ?1 AND removed_at IS NULL",
            args![user_id, now],
        )?;
        // Unused codes die by expiring: `used_at` means a device was bound
        // (a session that showed the code counts that as proving the app).
        db.exec(
            "UPDATE activations SET expires_at = ?2 WHERE user_id = ?1 AND used_at IS NULL AND expires_at > ?2",
            args![user_id, now],
        )?;
        Ok(n)
    }
}

//! Rotating keys without re-enrolling devices.
//!
//! The signing key, which signs every envelope: the server signs with a
//! new key at once and, until the old key retires, attaches the new key
//! vouched for by the old one ([`countersign_core::key_update`]), so each
//! device that receives a request in that time follows. The old key waits
//! in `server-key-retiring.json` until then.
//!
//! The TLS key, which devices pin: a new certificate for the same key
//! keeps every pin; a new key is staged and announced to devices with
//! each request, signed by the signing key, before the server presents it
//! ([`crate::infra::tls`]).
//!
//! The master key, which seals every device's stored TOTP secret: each
//! secret is opened under the old key and sealed under a new one in one
//! transaction, so no officer enrols again.
//!
//! On SQLite the new key is written beside the old one (`master.key.next`)
//! before the transaction, and moved into place after it. A check value sealed
//! under the new key is committed with the secrets, so a start after a
//! crash knows which key the database holds: [`settle_master_rotation`]
//! finishes a rotation that committed, and drops one that did not. On
//! PostgreSQL the database holds the key too, sealed under the KEK: it is
//! replaced in the transaction itself.

use std::path::PathBuf;

use countersign_core::key_update::KeyUpdate;
use countersign_core::vault::SealingKey;
use countersign_core::SigningKey;
use ring::rand::SystemRandom;

use crate::domain::activation::totp_aad;
use crate::domain::error::Error;
use crate::domain::shared_keys::{SharedKeys, RETIRING};
use crate::infra::datadir::{remove_if_present, write_private, DataDir};
use crate::store::{NewAudit, Store, StoreError};

/// The stored check value's name, and what it seals.
const CHECK: &str = "master-check";
const CHECK_AAD: &[u8] = b"countersign/master-check";

fn next_file(dir: &DataDir) -> PathBuf {
    dir.root().join("master.key.next")
}

/// The master key's file, and its name among the shared keys.
const MASTER: &str = "master.key";

fn current_file(dir: &DataDir) -> PathBuf {
    dir.root().join(MASTER)
}

/// Re-seals every stored TOTP secret (removed devices' too) under a new
/// master key; returns how many. No server may be running: each holds
/// the old key in memory. (The command holds the data folder's lock,
/// which a starting server takes too; on PostgreSQL it holds the database
/// alone, [`Store::exclude_instances`].)
///
/// On PostgreSQL the new key, sealed under the KEK (`shared`), replaces
/// the database's copy in the same transaction as the secrets, so the two
/// cannot part; the folder's file follows, and any instance takes the
/// database's copy when it starts.
pub fn rotate_master(
    dir: &DataDir,
    store: &Store,
    shared: Option<&SharedKeys>,
    actor: &str,
    now: u64,
) -> Result<usize, Error> {
    settle_master_rotation(dir, store)?;
    let rng = SystemRandom::new();
    let old = dir
        .master_key()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let new = SealingKey::generate(&rng)?;
    let in_database = match (store.is_postgres(), shared) {
        (false, _) => None,
        (true, Some(keys)) => Some(keys.seal(MASTER, new.expose()).map_err(internal)?),
        (true, None) => return Err(internal("the key-encryption key is needed")),
    };
    if in_database.is_none() {
        write_private(&next_file(dir), new.expose()).map_err(|e| Error::Internal(e.to_string()))?;
        sync_folder(dir)?;
    }
    let resealed = store.write(now, |w| {
        let decode = |e: countersign_core::Error| StoreError::Decode(e.to_string());
        let secrets = w.all_totp_secrets()?;
        for (device, sealed) in &secrets {
            let aad = totp_aad(device);
            let secret = old.open(sealed, aad.as_bytes()).map_err(decode)?;
            let again = new
                .seal(&rng, secret.expose(), aad.as_bytes())
                .map_err(decode)?;
            w.set_totp_secret(device, &again)?;
        }
        let check = new
            .seal(&rng, CHECK.as_bytes(), CHECK_AAD)
            .map_err(decode)?;
        w.replace_sealed_secret(CHECK, &check, now)?;
        if let Some(sealed) = &in_database {
            w.replace_sealed_secret(MASTER, sealed, now)?;
        }
        let detail = format!("{} TOTP secrets sealed again", secrets.len());
        w.audit(&NewAudit::of(actor, "keys.rotate_master", MASTER, "").with("ok", &detail))?;
        Ok(secrets.len())
    });
    match (resealed, in_database) {
        (Ok(n), Some(_)) => {
            // Committed: the database holds the new key whatever happens
            // here; a start takes it from there.
            write_private(&current_file(dir), new.expose()).map_err(committed)?;
            Ok(n)
        }
        (Ok(n), None) => {
            // The commit must be on disk before the old key's file is
            // replaced (the store syncs commits lazily). After a failure
            // from here on, `master.key.next` stays for the next start to
            // settle.
            store.flush()?;
            std::fs::rename(next_file(dir), current_file(dir)).map_err(|e| {
                Error::Internal(format!("putting the new master key in place: {e}"))
            })?;
            sync_folder(dir)?;
            Ok(n)
        }
        (Err(e), in_database) => {
            // Nothing committed: the old key still seals every secret.
            if in_database.is_none() {
                let _ = std::fs::remove_file(next_file(dir));
            }
            Err(e.into())
        }
    }
}

/// On PostgreSQL, a folder's key file not written (or not made durable)
/// after the rotation committed: the rotation stands (instances take the
/// database's keys).
fn committed(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!(
        "the rotation committed, but this folder's key files may not have been replaced ({e}); \
         each instance takes the new keys from the database when it starts"
    ))
}

/// Makes the data folder's renames and new files durable.
fn sync_folder(dir: &DataDir) -> Result<(), Error> {
    folder_synced(dir).map_err(|e| Error::Internal(format!("syncing the data folder: {e}")))
}

fn folder_synced(dir: &DataDir) -> std::io::Result<()> {
    std::fs::File::open(dir.root()).and_then(|f| f.sync_all())
}

/// After a crash during a rotation: if the database holds secrets sealed
/// under `master.key.next` (its check value opens), the file is moved into
/// place; otherwise the rotation never committed and the file goes.
pub fn settle_master_rotation(dir: &DataDir, store: &Store) -> Result<(), Error> {
    let next = next_file(dir);
    let Ok(bytes) = std::fs::read(&next) else {
        return Ok(());
    };
    let key = SealingKey::from_bytes(&zeroize::Zeroizing::new(bytes)).ok();
    let committed = match (key, store.sealed_secret(CHECK)?) {
        (Some(k), Some(check)) => k.open(&check, CHECK_AAD).is_ok(),
        _ => false,
    };
    if committed {
        std::fs::rename(&next, current_file(dir))
            .map_err(|e| Error::Internal(format!("putting the new master key in place: {e}")))?;
        sync_folder(dir)?;
        tracing::warn!("finished a master-key rotation interrupted after it committed");
    } else {
        std::fs::remove_file(&next)
            .map_err(|e| Error::Internal(format!("removing an unfinished master key: {e}")))?;
        tracing::warn!("dropped a master-key rotation that never committed");
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Retiring {
    /// The old key, PKCS#8, base64.
    pkcs8: String,
    /// Unix time after which it vouches no more.
    retire_at: u64,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// A rotation the operator asked for that cannot be done now.
fn refused(message: impl Into<String>) -> Error {
    Error::invalid("key_rotation", message)
}

/// The TLS rotation keeps its staged key and switch time in the data
/// folder, which instances on PostgreSQL do not share: refused there.
fn refuse_on_postgres(store: &Store, what: &str) -> Result<(), Error> {
    if store.is_postgres() {
        return Err(refused(format!(
            "rotating the {what} on PostgreSQL is not supported yet (docs/OPERATIONS.md)"
        )));
    }
    Ok(())
}

/// The retiring key and its end, if a rotation is under way.
fn retiring(dir: &DataDir) -> Result<Option<(SigningKey, u64)>, Error> {
    let Ok(bytes) = std::fs::read(dir.root().join(RETIRING)) else {
        return Ok(None);
    };
    let r: Retiring = serde_json::from_slice(&zeroize::Zeroizing::new(bytes))
        .map_err(|e| internal(format!("{RETIRING} is damaged: {e}")))?;
    let der = zeroize::Zeroizing::new(
        data_encoding::BASE64
            .decode(r.pkcs8.as_bytes())
            .map_err(|e| internal(format!("{RETIRING} is damaged: {e}")))?,
    );
    Ok(Some((SigningKey::from_pkcs8(&der)?, r.retire_at)))
}

/// What devices are sent while the old signing key retires: the current
/// key vouched for by the old one. `None` when no rotation is under way;
/// a retired key's file is removed, and so is one a rotation wrote before
/// it failed to put the new key in place. On PostgreSQL a `serving`
/// instance removes the database's copy too: it holds the lock that keeps
/// rotations away, so the row it removes is the one it read, never a
/// newer rotation's (a command may run beside a rotation).
pub fn signing_handover(
    dir: &DataDir,
    store: &Store,
    serving: bool,
    current: &SigningKey,
    now: u64,
) -> Result<Option<KeyUpdate>, Error> {
    let Some((old, retire_at)) = retiring(dir)? else {
        return Ok(None);
    };
    if old.public_key() == current.public_key() || now >= retire_at {
        if store.is_postgres() && serving {
            store.write(now, |w| w.remove_sealed_secret(RETIRING))?;
        }
        // Another process on this folder may have removed it first.
        remove_if_present(&dir.root().join(RETIRING)).map_err(internal)?;
        if now >= retire_at {
            tracing::info!("the previous server signing key is retired");
        }
        return Ok(None);
    }
    Ok(Some(KeyUpdate::sign(&old, current.public_key(), retire_at)))
}

/// Replaces the server's signing key; the old one vouches for the new one
/// for `grace_days`. Returns when it retires. No server may be running
/// (the command holds the folder's lock; on PostgreSQL, the database
/// alone). On PostgreSQL both keys, sealed under the KEK (`shared`),
/// replace the database's copies in the transaction of the audit row;
/// the folder's files follow, and each instance takes them at its start.
pub fn rotate_signing(
    dir: &DataDir,
    store: &Store,
    shared: Option<&SharedKeys>,
    actor: &str,
    grace_days: u64,
    now: u64,
) -> Result<u64, Error> {
    let current = dir.server_key().map_err(internal)?;
    if let Some((old, retire_at)) = retiring(dir)? {
        if old.public_key() != current.public_key() && now < retire_at {
            return Err(refused(format!(
                "the previous rotation's key retires at {}; rotate again after that",
                countersign_core::time::format_utc(retire_at)
            )));
        }
    }
    let retire_at = now + grace_days * 86_400;
    let old = Retiring {
        pkcs8: data_encoding::BASE64.encode(current.pkcs8().expose()),
        retire_at,
    };
    let json = zeroize::Zeroizing::new(serde_json::to_vec(&old).map_err(internal)?);
    let new = SigningKey::generate(&SystemRandom::new())?;
    let detail = format!(
        "new key {}; the old key {} vouches for it until {}",
        new.public_key(),
        current.public_key(),
        countersign_core::time::format_utc(retire_at)
    );
    let audit = |w: &mut crate::store::Write<'_>| {
        w.audit(&NewAudit::of(actor, "keys.rotate_signing", "server.key", "").with("ok", &detail))
    };
    if store.is_postgres() {
        let keys = shared.ok_or_else(|| internal("the key-encryption key is needed"))?;
        let sealed_new = keys
            .seal("server.key", new.pkcs8().expose())
            .map_err(internal)?;
        let sealed_old = keys.seal(RETIRING, &json).map_err(internal)?;
        store.write(now, |w| {
            w.replace_sealed_secret("server.key", &sealed_new, now)?;
            w.replace_sealed_secret(RETIRING, &sealed_old, now)?;
            audit(w)
        })?;
        write_private(&dir.root().join(RETIRING), &json).map_err(committed)?;
        write_private(&dir.root().join("server.key"), new.pkcs8().expose()).map_err(committed)?;
        // Durable as on SQLite, though an instance would also take the
        // keys from the database at its start.
        folder_synced(dir).map_err(|e| committed(format!("syncing the data folder: {e}")))?;
        return Ok(retire_at);
    }
    write_private(&dir.root().join(RETIRING), &json).map_err(internal)?;
    sync_folder(dir)?;
    write_private(&dir.root().join("server.key"), new.pkcs8().expose()).map_err(internal)?;
    sync_folder(dir)?;
    store.write(now, audit)?;
    Ok(retire_at)
}

/// What `keys rotate tls` did.
pub enum TlsRotation {
    /// A new certificate for the same key: every pin holds.
    Reissued,
    /// A new key, presented from the given time; until then devices are
    /// told its pin with each request.
    Staged(u64),
}

/// Issues a new self-signed certificate: for the same key at once, or,
/// with `new_key`, for a new key the server switches to after
/// `grace_days`. The server must not be running. SQLite only.
pub fn rotate_tls(
    dir: &DataDir,
    config: &crate::infra::config::Config,
    store: &Store,
    actor: &str,
    new_key: Option<u64>,
    now: u64,
) -> Result<TlsRotation, Error> {
    refuse_on_postgres(store, "TLS key")?;
    if config.tls.mode != crate::infra::config::TlsMode::SelfSigned {
        return Err(refused(
            "`tls.mode` is not `self_signed`: replace the certificate files yourself \
             (devices enrolled with a pin must be enrolled again after a new key)",
        ));
    }
    if !dir.tls_paths().1.exists() {
        return Err(refused(
            "this data folder has no TLS key yet: start the server once first",
        ));
    }
    if let Some(at) = crate::infra::tls::staged(dir).map_err(internal)? {
        if new_key.is_some() {
            return Err(refused(format!(
                "a new TLS key is already staged; the server switches to it at {}",
                countersign_core::time::format_utc(at)
            )));
        }
    }
    let (done, detail) = match new_key {
        None => {
            let pin = crate::infra::tls::reissue(config, dir).map_err(internal)?;
            let pin = data_encoding::BASE64URL_NOPAD.encode(&pin);
            (
                TlsRotation::Reissued,
                format!("new certificate, same key (pin {pin})"),
            )
        }
        Some(grace_days) => {
            let switch_at = now + grace_days * 86_400;
            let pin = crate::infra::tls::stage_new_key(config, dir, switch_at).map_err(internal)?;
            let pin = data_encoding::BASE64URL_NOPAD.encode(&pin);
            let detail = format!(
                "new key (pin {pin}) announced to devices; presented from {}",
                countersign_core::time::format_utc(switch_at)
            );
            (TlsRotation::Staged(switch_at), detail)
        }
    };
    sync_folder(dir)?;
    store.write(now, |w| {
        w.audit(&NewAudit::of(actor, "keys.rotate_tls", "tls", "").with("ok", &detail))
    })?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, DataDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let store = Store::open(&dir.database()).unwrap();
        (tmp, dir, store)
    }

    #[test]
    fn a_rotation_that_committed_is_finished_at_the_next_start() {
        let (_tmp, dir, store) = folder();
        let old = dir.master_key().unwrap().expose().to_vec();
        rotate_master(&dir, &store, None, "test", 1).unwrap();
        let new = std::fs::read(current_file(&dir)).unwrap();
        assert_ne!(new, old, "a new key is in place");
        // As if the machine stopped after the commit, before the rename.
        std::fs::write(next_file(&dir), &new).unwrap();
        std::fs::write(current_file(&dir), &old).unwrap();
        settle_master_rotation(&dir, &store).unwrap();
        assert_eq!(std::fs::read(current_file(&dir)).unwrap(), new);
        assert!(!next_file(&dir).exists());
    }

    #[test]
    fn a_rotation_that_never_committed_is_dropped_at_the_next_start() {
        let (_tmp, dir, store) = folder();
        let old = dir.master_key().unwrap().expose().to_vec();
        // As if the machine stopped after writing the new key, before the
        // transaction committed.
        std::fs::write(next_file(&dir), [9u8; 32]).unwrap();
        settle_master_rotation(&dir, &store).unwrap();
        assert_eq!(std::fs::read(current_file(&dir)).unwrap(), old);
        assert!(!next_file(&dir).exists());
    }
}

//! Rotating the master key, which seals every device's stored TOTP
//! secret: each secret is opened under the old key and sealed under a new
//! one in one transaction, so no officer enrols again.
//!
//! The new key is written beside the old one (`master.key.next`) before
//! the transaction, and moved into place after it. A check value sealed
//! under the new key is committed with the secrets, so a start after a
//! crash knows which key the database holds: [`settle_master_rotation`]
//! finishes a rotation that committed, and drops one that did not.

use std::path::PathBuf;

use countersign_core::vault::SealingKey;
use ring::rand::SystemRandom;

use crate::domain::activation::totp_aad;
use crate::domain::error::Error;
use crate::infra::datadir::{write_private, DataDir};
use crate::store::{NewAudit, Store, StoreError};

/// The stored check value's name, and what it seals.
const CHECK: &str = "master-check";
const CHECK_AAD: &[u8] = b"countersign/master-check";

fn next_file(dir: &DataDir) -> PathBuf {
    dir.root().join("master.key.next")
}

fn current_file(dir: &DataDir) -> PathBuf {
    dir.root().join("master.key")
}

/// Re-seals every stored TOTP secret (removed devices' too) under a new
/// master key; returns how many. The server must not be running: it holds
/// the old key in memory (the command holds the data folder's lock, which
/// a starting server takes too). SQLite only: on PostgreSQL every instance holds
/// the key, and the shared copy is sealed under the KEK.
pub fn rotate_master(dir: &DataDir, store: &Store, actor: &str, now: u64) -> Result<usize, Error> {
    if store.is_postgres() {
        return Err(Error::Internal(
            "rotating the master key on PostgreSQL is not supported yet (docs/OPERATIONS.md)"
                .into(),
        ));
    }
    settle_master_rotation(dir, store)?;
    let rng = SystemRandom::new();
    let old = dir
        .master_key()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let new = SealingKey::generate(&rng)?;
    write_private(&next_file(dir), new.expose()).map_err(|e| Error::Internal(e.to_string()))?;
    sync_folder(dir)?;
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
        let detail = format!("{} TOTP secrets sealed again", secrets.len());
        w.audit(&NewAudit::of(actor, "keys.rotate_master", "master.key", "").with("ok", &detail))?;
        Ok(secrets.len())
    });
    match resealed {
        Ok(n) => {
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
        Err(e) => {
            // Nothing committed: the old key still seals every secret.
            let _ = std::fs::remove_file(next_file(dir));
            Err(e.into())
        }
    }
}

/// Makes the data folder's renames and new files durable.
fn sync_folder(dir: &DataDir) -> Result<(), Error> {
    std::fs::File::open(dir.root())
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::Internal(format!("syncing the data folder: {e}")))
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
        rotate_master(&dir, &store, "test", 1).unwrap();
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

//! Keys several instances share, as sealed blobs (see
//! `domain::shared_keys`): the store never sees them in clear.

use super::db::args;
use super::{Event, Store, StoreError, Write};

impl Store {
    /// The sealed blob named `name`.
    pub fn sealed_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT sealed FROM sealed_secrets WHERE name = ?1",
                args![name],
                |r| r.get(0),
            )
        })
    }
}

impl Write<'_> {
    /// Stores `sealed` as `name` if there is none yet; `false` if another
    /// instance stored one first.
    pub fn add_sealed_secret(
        &self,
        name: &str,
        sealed: &[u8],
        now: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "INSERT INTO sealed_secrets (name, sealed, updated_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            args![name, sealed, now],
        )? == 1)
    }

    /// Removes `name` (a retired key), if stored.
    pub fn remove_sealed_secret(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .exec("DELETE FROM sealed_secrets WHERE name = ?1", args![name])?
            == 1)
    }

    /// Replaces `name` with `sealed` and tells the other instances.
    pub fn replace_sealed_secret(
        &mut self,
        name: &str,
        sealed: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        self.db().exec(
            "INSERT INTO sealed_secrets (name, sealed, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            args![name, sealed, now],
        )?;
        self.announce(Event::Secret(name.to_string()));
        Ok(())
    }
}

//! Limits several instances share (PostgreSQL): failures per network
//! address, and things that may be used once (a CAPTCHA picture). One
//! instance on SQLite keeps them in memory instead (`domain::limits`).

use super::db::args;
use super::{Store, StoreError, Write};

impl Store {
    /// Events of `kind` from `network` at or after `since`: how many, and
    /// the oldest's time.
    pub fn address_events(
        &self,
        kind: &str,
        network: &str,
        since: u64,
    ) -> Result<(u32, Option<u64>), StoreError> {
        self.read(|db| {
            db.one(
                "SELECT COUNT(*), MIN(at) FROM address_events WHERE kind = ?1 AND network = ?2 AND at >= ?3",
                args![kind, network, since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }
}

impl Write<'_> {
    /// Counts an event of `kind` from `network` at `at`.
    pub fn add_address_event(&self, kind: &str, network: &str, at: u64) -> Result<(), StoreError> {
        self.db().exec(
            "INSERT INTO address_events (kind, network, at) VALUES (?1, ?2, ?3)",
            args![kind, network, at],
        )?;
        Ok(())
    }

    /// Counts an event of `kind` from `network` at `at` if fewer than `max`
    /// happened since `since`; `false` (nothing counted) otherwise.
    pub fn take_address_event(
        &self,
        kind: &str,
        network: &str,
        since: u64,
        max: u32,
        at: u64,
    ) -> Result<bool, StoreError> {
        let n: u32 = self.db().one(
            "SELECT COUNT(*) FROM address_events WHERE kind = ?1 AND network = ?2 AND at >= ?3",
            args![kind, network, since],
            |r| r.get(0),
        )?;
        if n >= max {
            return Ok(false);
        }
        self.add_address_event(kind, network, at)?;
        Ok(true)
    }

    /// Forgets events of `kind` before `before`, and used-once keys past
    /// their time.
    pub fn purge_limits(&self, kind: &str, before: u64, now: u64) -> Result<(), StoreError> {
        let db = self.db();
        db.exec(
            "DELETE FROM address_events WHERE kind = ?1 AND at < ?2",
            args![kind, before],
        )?;
        db.exec("DELETE FROM used_once WHERE until <= ?1", args![now])?;
        Ok(())
    }

    /// Records `key` as used until `until`; `false` if it was used before.
    pub fn first_use(&self, key: &str, until: u64) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "INSERT INTO used_once (key, until) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![key, until],
        )? == 1)
    }
}

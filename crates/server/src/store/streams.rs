//! Which serving instance holds streams of which device (PostgreSQL), so
//! that the help desk's "connected now" and a push's "connected when
//! asked" count the streams of every live instance, not only the one
//! asked. Each instance reports every few seconds; one that stops
//! reporting (killed, cut off) no longer counts after
//! [`INSTANCE_ALIVE_SECONDS`], and its rows are removed a minute later.
//!
//! The rows are written without the write lock: each instance writes only
//! its own, and nothing is decided from them inside a write. On SQLite
//! one instance holds every stream and nothing is written.

use super::db::args;
use super::{Store, StoreError};

/// How long an instance counts as serving after its last report.
pub const INSTANCE_ALIVE_SECONDS: u32 = 10;

/// How long after its last report an instance's rows are removed.
const INSTANCE_GONE_SECONDS: u32 = 60;

/// Rows of serving instances other than this one (`?1`).
fn elsewhere() -> String {
    format!(
        "instance <> ?1 AND instance IN (SELECT id FROM instances \
         WHERE seen_at > now() - interval '{INSTANCE_ALIVE_SECONDS} seconds')"
    )
}

impl Store {
    /// Reports this instance serving, and the devices streaming from it:
    /// `now`, all of them, and `change`, the devices whose streams began
    /// and ended since the last report, when the database holds that
    /// report. Without `change` (the first report, or the last one
    /// failed), or when the database no longer knew this instance (a
    /// break long enough for the others to remove its rows), its rows are
    /// made to be `now`. Every few seconds, even with nothing changed: the
    /// report is what keeps the instance counted. Nothing on SQLite.
    pub fn report_streams(
        &self,
        now: &[&str],
        change: Option<(&[&str], &[&str])>,
    ) -> Result<(), StoreError> {
        if !self.is_postgres() {
            return Ok(());
        }
        let list = |ids: &[&str]| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        self.own_rows(|db| {
            let seen = "UPDATE instances SET seen_at = now() WHERE id = ?1";
            let fresh = db.exec(seen, args![self.origin])? == 0;
            if fresh {
                let new = "INSERT INTO instances (id, seen_at) VALUES (?1, now())";
                db.exec(new, args![self.origin])?;
            }
            let (opened, closed) = match change.filter(|_| !fresh) {
                Some((opened, closed)) => (list(opened), list(closed)),
                None => {
                    let now = list(now);
                    db.exec(
                        "DELETE FROM instance_streams WHERE instance = ?1 \
                         AND device_id NOT IN (SELECT jsonb_array_elements_text(CAST(?2 AS TEXT)::jsonb))",
                        args![self.origin, now],
                    )?;
                    (now, "[]".to_string())
                }
            };
            if closed != "[]" {
                db.exec(
                    "DELETE FROM instance_streams WHERE instance = ?1 \
                     AND device_id IN (SELECT jsonb_array_elements_text(CAST(?2 AS TEXT)::jsonb))",
                    args![self.origin, closed],
                )?;
            }
            if opened != "[]" {
                db.exec(
                    "INSERT INTO instance_streams (device_id, instance) \
                     SELECT jsonb_array_elements_text(CAST(?2 AS TEXT)::jsonb), ?1 ON CONFLICT DO NOTHING",
                    args![self.origin, opened],
                )?;
            }
            Ok(())
        })
    }

    /// Removes this instance and its rows (it stops serving), and those
    /// of instances that stopped reporting a minute ago. Nothing on SQLite.
    pub fn withdraw_streams(&self, this_instance: bool) -> Result<(), StoreError> {
        if !self.is_postgres() {
            return Ok(());
        }
        self.own_rows(|db| {
            db.exec(
                &format!(
                    "DELETE FROM instances WHERE (id = ?1 AND ?2) \
                     OR seen_at < now() - interval '{INSTANCE_GONE_SECONDS} seconds'"
                ),
                args![self.origin, this_instance],
            )?;
            Ok(())
        })
    }

    /// Streams on other serving instances, of `device` or of every
    /// device, each device counted once per instance (0 on SQLite).
    pub fn streams_elsewhere(&self, device: Option<&str>) -> Result<usize, StoreError> {
        if !self.is_postgres() {
            return Ok(0);
        }
        let elsewhere = elsewhere();
        self.read(|db| {
            // Two statements, not one with an optional device: the one a
            // push asks must stay a look-up by key whatever plan the other
            // would make PostgreSQL choose.
            let n: i64 = match device {
                Some(device) => db.one(
                    &format!("SELECT COUNT(*) FROM instance_streams WHERE device_id = ?2 AND {elsewhere}"),
                    args![self.origin, device],
                    |r| r.get(0),
                )?,
                None => db.one(
                    &format!("SELECT COUNT(*) FROM instance_streams WHERE {elsewhere}"),
                    args![self.origin],
                    |r| r.get(0),
                )?,
            };
            Ok(n as usize)
        })
    }
}

impl Store {
    /// Runs `f`'s statements outside the write lock, each committed on
    /// its own: for rows only this instance writes.
    fn own_rows<T>(
        &self,
        f: impl FnOnce(&super::db::Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.timed(super::Access::Write, || self.pool.read(false, f))
    }
}

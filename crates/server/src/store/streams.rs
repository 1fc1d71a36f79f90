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
    /// Reports this instance serving, and the devices whose streams here
    /// began (`opened`) or ended (`closed`) since its last report. Every
    /// few seconds, even with nothing changed: the report is what keeps
    /// the instance counted. `true` when the database did not know this
    /// instance (its first report, or its rows were removed after a long
    /// break): every device streaming here must then be reported as
    /// opened. Nothing on SQLite.
    pub fn report_streams(&self, opened: &[&str], closed: &[&str]) -> Result<bool, StoreError> {
        if !self.is_postgres() {
            return Ok(false);
        }
        let list = |ids: &[&str]| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        self.own_rows(|db| {
            let fresh = db.exec("UPDATE instances SET seen_at = now() WHERE id = ?1", args![self.origin])? == 0;
            if fresh {
                db.exec("INSERT INTO instances (id, seen_at) VALUES (?1, now())", args![self.origin])?;
            }
            if !closed.is_empty() {
                db.exec(
                    "DELETE FROM instance_streams WHERE instance = ?1 \
                     AND device_id IN (SELECT jsonb_array_elements_text(CAST(?2 AS TEXT)::jsonb))",
                    args![self.origin, list(closed)],
                )?;
            }
            if !opened.is_empty() {
                db.exec(
                    "INSERT INTO instance_streams (device_id, instance) \
                     SELECT jsonb_array_elements_text(CAST(?2 AS TEXT)::jsonb), ?1 ON CONFLICT DO NOTHING",
                    args![self.origin, list(opened)],
                )?;
            }
            Ok(fresh)
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
        self.read(|db| {
            let n: i64 = db.one(
                &format!(
                    "SELECT COUNT(*) FROM instance_streams WHERE (CAST(?2 AS TEXT) IS NULL OR device_id = ?2) AND {}",
                    elsewhere()
                ),
                args![self.origin, device],
                |r| r.get(0),
            )?;
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

//! Push challenges.

use super::db::{args, Row};
use super::{DeviceRow, Store, StoreError, Write};
use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::{Challenge, ChallengeKind};

/// A challenge to store.
pub struct NewChallenge<'a> {
    /// The protocol view (sent to the device).
    pub challenge: &'a Challenge,
    /// Owner.
    pub user_id: i64,
    /// The number shown on the sign-in page (never sent to the device).
    pub number: u8,
    /// Creation, in Unix milliseconds (for delivery latency).
    pub created_ms: u64,
    /// The device had a stream open when the challenge was created.
    pub connected: bool,
}

/// A stored challenge.
#[derive(Debug, Clone)]
pub struct ChallengeRow {
    /// What the device sees.
    pub challenge: Challenge,
    /// Owner.
    pub user_id: i64,
    /// The number on the sign-in page.
    pub number: u8,
    /// Stored status (a pending row past its expiry is expired: see
    /// [`ChallengeRow::status_at`]).
    pub status: ChallengeStatus,
    /// Device acknowledged receipt.
    pub delivered_at: Option<u64>,
    /// Prompt opened on the device.
    pub shown_at: Option<u64>,
    /// Answered.
    pub answered_at: Option<u64>,
    /// Creation, Unix milliseconds.
    pub created_ms: u64,
    /// First delivery receipt, Unix milliseconds (server clock).
    pub delivered_ms: Option<u64>,
    /// First shown receipt, Unix milliseconds.
    pub shown_ms: Option<u64>,
    /// Answer, Unix milliseconds.
    pub answered_ms: Option<u64>,
    /// The device's signed answer (JSON), once answered.
    pub response: Option<String>,
    /// The device had a stream open when the challenge was created (unknown
    /// for challenges stored before this was recorded).
    pub connected_when_asked: Option<bool>,
}

impl ChallengeRow {
    /// The status as of `now`.
    pub fn status_at(&self, now: u64) -> ChallengeStatus {
        if self.status == ChallengeStatus::Pending && now >= self.challenge.expires_at {
            ChallengeStatus::Expired
        } else {
            self.status
        }
    }
}

const COLUMNS: &str = "id, device_id, application, ip, location, kind, created_at, expires_at, user_id, number, status, \
                       delivered_at, shown_at, answered_at, (SELECT username FROM users WHERE users.id = challenges.user_id), \
                       created_ms, delivered_ms, response, shown_ms, answered_ms, connected_when_asked";

/// A device's pending challenges: `status = 'pending'` lets both back
/// ends use the index of pending challenges alone.
fn pending_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM challenges WHERE device_id = ?1 AND status = 'pending' AND expires_at > ?2 \
         ORDER BY created_at, rowid"
    )
}

/// Pending challenges past their expiry, marked expired.
fn overdue_sql() -> String {
    format!(
        "UPDATE challenges SET status = 'expired' WHERE status = 'pending' AND expires_at <= ?1 \
         RETURNING {COLUMNS}"
    )
}

fn row(r: &Row<'_>) -> Result<ChallengeRow, StoreError> {
    let kind: String = r.get(5)?;
    let status: String = r.get(10)?;
    Ok(ChallengeRow {
        challenge: Challenge {
            id: r.get(0)?,
            device_id: r.get(1)?,
            account: r.get(14)?,
            application: r.get(2)?,
            ip: r.get(3)?,
            location: r.get(4)?,
            kind: if kind == "test" {
                ChallengeKind::Test
            } else {
                ChallengeKind::SignIn
            },
            created_at: r.get(6)?,
            expires_at: r.get(7)?,
        },
        user_id: r.get(8)?,
        number: r.get(9)?,
        status: ChallengeStatus::parse(&status).unwrap_or(ChallengeStatus::Expired),
        delivered_at: r.get(11)?,
        shown_at: r.get(12)?,
        answered_at: r.get(13)?,
        created_ms: r.get(15)?,
        delivered_ms: r.get(16)?,
        response: r.get(17)?,
        shown_ms: r.get(18)?,
        answered_ms: r.get(19)?,
        connected_when_asked: r.get(20)?,
    })
}

impl Store {
    /// A challenge by id.
    pub fn challenge(&self, id: &str) -> Result<Option<ChallengeRow>, StoreError> {
        self.read(|db| {
            db.opt(
                &format!("SELECT {COLUMNS} FROM challenges WHERE id = ?1"),
                args![id],
                row,
            )
        })
    }

    /// A challenge and the device it was sent to (`None` once removed),
    /// in one read: what an answer or a receipt is checked against.
    pub fn challenge_and_device(
        &self,
        id: &str,
    ) -> Result<Option<(ChallengeRow, Option<DeviceRow>)>, StoreError> {
        let sql = format!(
            "WITH ch AS (SELECT {COLUMNS} FROM challenges WHERE id = ?1) SELECT ch.*, d.* FROM ch \
             LEFT JOIN (SELECT {} FROM devices WHERE removed_at IS NULL) d ON d.id = ch.device_id",
            super::devices::COLUMNS
        );
        self.read(|db| {
            db.opt(&sql, args![id], |r| {
                // The device's columns follow the challenge's 21.
                let device = match r.get::<Option<String>>(21)? {
                    Some(_) => Some(super::devices::device_from(r, 21)?),
                    None => None,
                };
                Ok((row(r)?, device))
            })
        })
    }

    /// A device's challenges still open at `now`, oldest first.
    pub fn pending_for_device(
        &self,
        device_id: &str,
        now: u64,
    ) -> Result<Vec<ChallengeRow>, StoreError> {
        self.read(|db| db.all(&pending_sql(), args![device_id, now], row))
    }

    /// A user's challenges, newest first (a scan: every one of the user's
    /// challenges is sorted).
    pub fn challenges_of(
        &self,
        user_id: i64,
        limit: usize,
    ) -> Result<Vec<ChallengeRow>, StoreError> {
        self.scan(|db| {
            db.all(&format!(
                "SELECT {COLUMNS} FROM challenges WHERE user_id = ?1 ORDER BY created_ms DESC, rowid DESC LIMIT ?2"
            ), args![user_id, limit], row)
        })
    }

    /// Every challenge created since `since` (Unix seconds), oldest first.
    pub fn challenges_created_since(&self, since: u64) -> Result<Vec<ChallengeRow>, StoreError> {
        self.scan(|db| {
            db.all(
                &format!(
                    "SELECT {COLUMNS} FROM challenges WHERE created_at >= ?1 ORDER BY created_at"
                ),
                args![since],
                row,
            )
        })
    }
}

/// The first key of each account's push lock ("Cp").
const PUSH_LOCK: i64 = 0x4370;

impl Write<'_> {
    /// Challenges created for a user since `since` (the push limit's count,
    /// made in the write that adds the next one). On PostgreSQL this first
    /// takes the account's push lock, held until the commit, so the counts
    /// and the challenges they admit go one write at a time per account,
    /// on every instance, also in concurrent writes (SQLite has one writer).
    pub fn challenges_since(&self, user_id: i64, since: u64) -> Result<u32, StoreError> {
        if self.db().is_pg() {
            // Two-key advisory locks are apart from the store's one-key
            // ones; accounts whose ids share 31 bits share a lock.
            self.db().exec(
                "SELECT pg_advisory_xact_lock(?1, ?2)",
                args![PUSH_LOCK, user_id & 0x7fff_ffff],
            )?;
        }
        self.db().one(
            "SELECT COUNT(*) FROM challenges WHERE user_id = ?1 AND created_at >= ?2",
            args![user_id, since],
            |r| r.get(0),
        )
    }

    /// Stores a new pending challenge.
    pub fn insert_challenge(&self, c: &NewChallenge<'_>) -> Result<(), StoreError> {
        let ch = c.challenge;
        let kind = ch.kind.as_str();
        self.db().exec(
            "INSERT INTO challenges (id, user_id, device_id, number, kind, application, ip, location, created_at, expires_at, created_ms, connected_when_asked) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            args![ch.id, c.user_id, ch.device_id, c.number, kind, ch.application, ch.ip, ch.location, ch.created_at, ch.expires_at, c.created_ms, c.connected],
        )?;
        Ok(())
    }

    /// Records the answer if the challenge is still pending and unexpired.
    /// False when it was answered or expired meanwhile (a replay).
    pub fn answer_challenge(
        &self,
        id: &str,
        status: ChallengeStatus,
        response_json: &str,
        now: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let n = self.db().exec(
            "UPDATE challenges SET status = ?2, response = ?3, answered_at = ?4, answered_ms = ?5 \
             WHERE id = ?1 AND status = 'pending' AND expires_at > ?4",
            args![id, status.as_str(), response_json, now, now_ms],
        )?;
        Ok(n == 1)
    }
}

impl Write<'_> {
    /// Records a delivery or shown receipt at `at_ms` (Unix ms); only
    /// the first of each kind counts. True if this one was the first.
    pub fn record_receipt(&self, id: &str, shown: bool, at_ms: u64) -> Result<bool, StoreError> {
        let sql = if shown {
            "UPDATE challenges SET shown_at = ?2, shown_ms = ?3, delivered_at = COALESCE(delivered_at, ?2), \
             delivered_ms = COALESCE(delivered_ms, ?3) WHERE id = ?1 AND shown_at IS NULL"
        } else {
            "UPDATE challenges SET delivered_at = ?2, delivered_ms = ?3 WHERE id = ?1 AND delivered_at IS NULL"
        };
        Ok(self.db().exec(sql, args![id, at_ms / 1000, at_ms])? == 1)
    }

    /// Marks pending challenges past their expiry as expired; returns them.
    pub fn expire_challenges(&self, now: u64) -> Result<Vec<ChallengeRow>, StoreError> {
        self.db().all(&overdue_sql(), args![now], row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::plan;

    #[test]
    fn pending_challenges_are_found_through_the_index_of_the_pending() {
        let store = Store::open_in_memory().unwrap();
        let pending = plan(&store, &pending_sql(), args!["d1", 100u64]);
        assert!(
            pending.contains("INDEX challenges_device_pending (device_id=?)"),
            "{pending}"
        );
        let overdue = plan(&store, &overdue_sql(), args![100u64]);
        assert!(
            overdue.contains("INDEX challenges_expiring (expires_at<?)"),
            "{overdue}"
        );
    }
}

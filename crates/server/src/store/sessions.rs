//! Browser sessions of the sign-in pages. Only a hash of the session id is
//! stored, so a copy of the database does not hand out live sessions.

use rusqlite::{params, Row};

use super::{optional, Store, StoreError};

/// A browser's place in the sign-in flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    /// Token every form must carry.
    pub csrf: String,
    /// The account being signed in (empty before the email step).
    pub username: String,
    /// `start`, `password`, `change`, `mfa`, `register`, `stay`, `done`;
    /// recovery: `recover`, `recover_reset`.
    pub stage: String,
    /// The step in progress within the stage: the phone code being waited
    /// for, the security questions asked, the CAPTCHA's answer hash.
    pub pending: String,
    /// A second factor was proven in this session (registration may then
    /// add methods to an account that has some).
    pub verified: bool,
    /// The push challenge being waited for.
    pub challenge_id: String,
    /// Where to go after signing in (already checked against the allow-list).
    pub return_to: String,
    /// "Stay signed in".
    pub persistent: bool,
    /// Created.
    pub created_at: u64,
    /// Ends.
    pub expires_at: u64,
}

fn session(r: &Row<'_>) -> rusqlite::Result<WebSession> {
    Ok(WebSession {
        id_hash: r.get(0)?,
        csrf: r.get(1)?,
        username: r.get(2)?,
        stage: r.get(3)?,
        challenge_id: r.get(4)?,
        return_to: r.get(5)?,
        persistent: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        pending: r.get(9)?,
        verified: r.get(10)?,
    })
}

impl Store {
    /// Stores a session (insert or replace).
    pub fn save_session(&self, s: &WebSession) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO web_sessions (id_hash, csrf, username, stage, challenge_id, return_to, persistent, created_at, expires_at, pending, verified) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![s.id_hash, s.csrf, s.username, s.stage, s.challenge_id, s.return_to, s.persistent, s.created_at, s.expires_at, s.pending, s.verified],
        )?;
        Ok(())
    }

    /// A live session by id hash.
    pub fn session(&self, id_hash: &[u8], now: u64) -> Result<Option<WebSession>, StoreError> {
        optional(self.conn().query_row(
            "SELECT id_hash, csrf, username, stage, challenge_id, return_to, persistent, created_at, expires_at, pending, verified \
             FROM web_sessions WHERE id_hash = ?1 AND expires_at > ?2",
            params![id_hash, now],
            session,
        ))
    }

    /// Ends a session.
    pub fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    /// Drops expired sessions.
    pub fn purge_sessions(&self, now: u64) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])?)
    }
}

//! What happened to each sign-in request the device saw.

use rusqlite::params;
use serde::Serialize;

use crate::vault::Vault;
use crate::Error;

/// One request and what was done with it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Device time.
    pub at: u64,
    /// Account label.
    pub account: String,
    /// Challenge id.
    pub challenge_id: String,
    /// Application.
    pub application: String,
    /// Client IP.
    pub ip: String,
    /// Location.
    pub location: String,
    /// `approve`, `deny`, `report`, `expired`, `seen` or `dropped`.
    pub decision: String,
    /// The server's verdict, or why nothing was sent.
    pub result: String,
}

impl Vault {
    /// Records an entry.
    pub fn record(&mut self, account_id: &str, e: &HistoryEntry) -> Result<(), Error> {
        self.conn.execute(
            "INSERT INTO history (at, account_id, account, challenge_id, application, ip, location, decision, result) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![e.at, account_id, e.account, e.challenge_id, e.application, e.ip, e.location, e.decision, e.result],
        )?;
        Ok(())
    }

    /// Every entry, newest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, Error> {
        let mut stmt = self.conn.prepare(
            "SELECT at, account, challenge_id, application, ip, location, decision, result FROM history ORDER BY at DESC, id DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(HistoryEntry {
                    at: r.get(0)?,
                    account: r.get(1)?,
                    challenge_id: r.get(2)?,
                    application: r.get(3)?,
                    ip: r.get(4)?,
                    location: r.get(5)?,
                    decision: r.get(6)?,
                    result: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

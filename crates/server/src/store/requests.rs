//! New User Registration requests, queued for an administrator.

use serde::{Deserialize, Serialize};

use super::db::{args, Row};
use super::{Store, StoreError, Write};

/// A request's fields: as the form sent them (`serde` reads a form body
/// into one, any field missing left empty), and once
/// `domain::registration::validate` has checked them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewRegistration {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Work email to reach the requester.
    pub email: String,
    /// Agency or department.
    pub agency: String,
    /// Work phone (may be empty).
    pub phone: String,
    /// Why the account is needed.
    pub reason: String,
}

/// A stored request.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationRequest {
    /// Its number.
    pub id: i64,
    /// What the requester sent.
    #[serde(flatten)]
    pub form: NewRegistration,
    /// Where it came from.
    pub ip: String,
    /// When.
    pub created_at: u64,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The administrator who decided.
    pub decided_by: String,
    /// When it was decided (0 while pending).
    pub decided_at: u64,
    /// The account created on approval.
    pub username: String,
    /// The administrator's note (the reason of a rejection).
    pub note: String,
}

const COLUMNS: &str = "id, first_name, last_name, email, agency, phone, reason, ip, created_at, \
                       status, decided_by, decided_at, username, note";

fn request(r: &Row<'_>) -> Result<RegistrationRequest, StoreError> {
    Ok(RegistrationRequest {
        id: r.get(0)?,
        form: NewRegistration {
            first_name: r.get(1)?,
            last_name: r.get(2)?,
            email: r.get(3)?,
            agency: r.get(4)?,
            phone: r.get(5)?,
            reason: r.get(6)?,
        },
        ip: r.get(7)?,
        created_at: r.get(8)?,
        status: r.get(9)?,
        decided_by: r.get(10)?,
        decided_at: r.get(11)?,
        username: r.get(12)?,
        note: r.get(13)?,
    })
}

impl Store {
    /// Requests, oldest first: the pending ones, or all.
    pub fn registrations(&self, all: bool) -> Result<Vec<RegistrationRequest>, StoreError> {
        self.scan(|db| {
            let sql = if all {
                format!("SELECT {COLUMNS} FROM registration_requests ORDER BY created_at, id")
            } else {
                format!(
                    "SELECT {COLUMNS} FROM registration_requests WHERE status = 'pending' ORDER BY created_at, id"
                )
            };
            db.all(&sql, args![], request)
        })
    }

    /// One request.
    pub fn registration(&self, id: i64) -> Result<Option<RegistrationRequest>, StoreError> {
        self.read(|db| {
            db.opt(
                &format!("SELECT {COLUMNS} FROM registration_requests WHERE id = ?1"),
                args![id],
                request,
            )
        })
    }
}

impl Write<'_> {
    /// Requests sent from `ip` since `since`, counted in the write that
    /// adds the next one.
    pub fn registrations_from(&self, ip: &str, since: u64) -> Result<u64, StoreError> {
        self.db().one(
            "SELECT COUNT(*) FROM registration_requests WHERE ip = ?1 AND created_at >= ?2",
            args![ip, since],
            |r| r.get(0),
        )
    }

    /// Queues a request; returns its number.
    pub fn add_registration(
        &self,
        r: &NewRegistration,
        ip: &str,
        now: u64,
    ) -> Result<i64, StoreError> {
        self.db().one(
            "INSERT INTO registration_requests (first_name, last_name, email, agency, phone, reason, ip, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            args![r.first_name, r.last_name, r.email, r.agency, r.phone, r.reason, ip, now],
            |row| row.get(0),
        )
    }

    /// Decides a pending request; false when it was not pending (decided
    /// already, or no such request).
    pub fn decide_registration(
        &self,
        id: i64,
        status: &str,
        by: &str,
        username: &str,
        note: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let changed = self.db().exec(
            "UPDATE registration_requests SET status = ?2, decided_by = ?3, username = ?4, note = ?5, decided_at = ?6 \
             WHERE id = ?1 AND status = 'pending'",
            args![id, status, by, username, note, now],
        )?;
        Ok(changed == 1)
    }
}

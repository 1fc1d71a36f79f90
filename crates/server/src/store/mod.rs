//! SQLite storage (WAL): schema migrations and the queries the server
//! needs. Every multi-step change runs in one transaction, so a crash never
//! leaves half of it behind. Times are Unix seconds.

mod audit;
mod challenges;
mod devices;
mod methods;
mod oidc;
mod pool;
mod requests;
mod sessions;
mod stage;
mod users;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

pub use audit::{csv_field, AuditEntry, AuditFilter, NewAudit, Write};
pub use challenges::{ChallengeRow, NewChallenge};
pub use devices::{ActivationRow, Binding, DeviceRow, NewDevice};
pub use methods::{Methods, PhoneCode};
pub use oidc::{ClientRow, CodeRow, TakenCode, TokenRow, WaitingRequest};
pub use requests::{NewRegistration, RegistrationRequest};
pub use sessions::{Factor, FactorMethod, WebSession};
pub use stage::{Proving, Registering, Stage, StageKind};
pub use users::{NewUser, Role, UserRow};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer version.
    #[error("the database has schema version {0}, newer than this server understands")]
    TooNew(i64),
}

/// Schema, one migration per entry; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'officer',
    password_hash TEXT NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 1,
    password_changed_at INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    push_blocked INTEGER NOT NULL DEFAULT 0,
    skip_setup_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE password_history (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX password_history_user ON password_history(user_id, created_at);
CREATE TABLE activations (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used_at INTEGER
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    app_version TEXT NOT NULL,
    public_key BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    totp_secret BLOB NOT NULL,
    totp_algorithm TEXT NOT NULL,
    totp_digits INTEGER NOT NULL,
    totp_period INTEGER NOT NULL,
    last_totp_step INTEGER NOT NULL DEFAULT -1,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL DEFAULT 0,
    removed_at INTEGER
);
CREATE INDEX devices_user ON devices(user_id);
CREATE TABLE challenges (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    application TEXT NOT NULL,
    ip TEXT NOT NULL,
    location TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    delivered_at INTEGER,
    shown_at INTEGER,
    answered_at INTEGER,
    response TEXT
);
CREATE INDEX challenges_device ON challenges(device_id, status);
CREATE INDEX challenges_user ON challenges(user_id, created_at);
CREATE INDEX challenges_pending ON challenges(status, expires_at);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX audit_target ON audit(target, at);
"#,
    r#"
CREATE TABLE web_sessions (
    id_hash BLOB PRIMARY KEY,
    csrf TEXT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    stage TEXT NOT NULL,
    challenge_id TEXT NOT NULL DEFAULT '',
    return_to TEXT NOT NULL DEFAULT '',
    persistent INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);
"#,
    r#"
CREATE TABLE registration_requests (
    id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    email TEXT NOT NULL,
    agency TEXT NOT NULL,
    phone TEXT NOT NULL,
    reason TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at INTEGER NOT NULL DEFAULT 0,
    username TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX registration_requests_status ON registration_requests(status, created_at);
CREATE INDEX registration_requests_ip ON registration_requests(ip, created_at);
"#,
    r#"
ALTER TABLE web_sessions ADD COLUMN pending TEXT NOT NULL DEFAULT '';
ALTER TABLE web_sessions ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
CREATE TABLE phones (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    verified_at INTEGER NOT NULL
);
CREATE TABLE security_answers (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    question INTEGER NOT NULL,
    answer_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, question)
);
CREATE TABLE phone_codes (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    used_at INTEGER
);
CREATE INDEX phone_codes_user ON phone_codes(user_id, created_at);
"#,
    r#"
ALTER TABLE devices ADD COLUMN receipt_key BLOB;
ALTER TABLE challenges ADD COLUMN created_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE challenges ADD COLUMN delivered_ms INTEGER;
ALTER TABLE challenges ADD COLUMN shown_ms INTEGER;
ALTER TABLE challenges ADD COLUMN answered_ms INTEGER;
CREATE INDEX challenges_created ON challenges(created_at);
"#,
    r#"
ALTER TABLE challenges ADD COLUMN connected_when_asked INTEGER;
"#,
    r#"
ALTER TABLE web_sessions ADD COLUMN factor TEXT NOT NULL DEFAULT '';
ALTER TABLE web_sessions ADD COLUMN factor_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX web_sessions_user ON web_sessions(username);
ALTER TABLE activations ADD COLUMN first_method INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN temporary_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX audit_target_seq ON audit(target, seq);
CREATE INDEX audit_actor_seq ON audit(actor, seq);
UPDATE users SET temporary_until = CAST(strftime('%s', 'now') AS INTEGER) + 7 * 86400 WHERE must_change = 1;
"#,
    oidc::SCHEMA,
    oidc::API_CHALLENGES,
];

/// SQL: whether user `?1` has any sign-in method (an app, a phone or
/// security answers). Used inside the transaction that registers one, so
/// "only while the account has none" cannot race another browser.
const HAS_METHOD: &str =
    "SELECT EXISTS (SELECT 1 FROM devices WHERE user_id = ?1 AND removed_at IS NULL) \
     OR EXISTS (SELECT 1 FROM phones WHERE user_id = ?1) \
     OR EXISTS (SELECT 1 FROM security_answers WHERE user_id = ?1)";

/// The database: a writer and read-only connections (see [`pool`]).
pub struct Store {
    pool: pool::Pool,
}

impl Store {
    /// Opens (creating if needed) the database and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Self::setup(Connection::open(path)?)?;
        Ok(Store {
            pool: pool::Pool::new(conn, Some(path))?,
        })
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Self::setup(Connection::open_in_memory()?)?;
        Ok(Store {
            pool: pool::Pool::new(conn, None)?,
        })
    }

    fn setup(mut conn: Connection) -> Result<Connection, StoreError> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew(version));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(conn)
    }

    /// Runs `f` (statements that only read) on a read-only connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        self.pool.read(f)
    }

    /// Schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }
}

/// Statements kept prepared per connection: every query the store makes
/// is one of a few dozen fixed texts, so none is compiled twice.
const STATEMENT_CACHE: usize = 128;

/// `execute` on a statement kept prepared.
fn exec<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` on a statement kept prepared.
fn one<T, P, F>(conn: &Connection, sql: &str, params: P, f: F) -> rusqlite::Result<T>
where
    P: rusqlite::Params,
    F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// `query_row` that maps "no rows" to `None`.
fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>, StoreError> {
    Ok(r.optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            MIGRATIONS.len() as i64
        );
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn a_newer_database_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew(99))));
    }
}

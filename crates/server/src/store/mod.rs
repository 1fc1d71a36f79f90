//! Storage: SQLite (WAL), the embedded default, or PostgreSQL, shared by
//! several instances. Schema migrations and the queries the server needs,
//! each written once for both (see [`db`]). Every multi-step change runs
//! in one transaction, so a crash never leaves half of it behind. Times
//! are Unix seconds.

mod audit;
mod batch;
mod bus;
mod challenges;
mod checkpoint;
mod copy;
mod db;
mod devices;
mod export;
mod limits;
mod methods;
mod oidc;
mod pg;
mod pg_conn;
mod pg_tls;
mod pool;
pub mod request;
mod requests;
mod schema;
mod secrets;
mod sessions;
mod stage;
mod streams;
mod users;
mod write;
mod writer;

use std::path::Path;

use rusqlite::Connection;

use db::Db;
use schema::MIGRATIONS;

pub use audit::{csv_field, AuditEntry, AuditFilter, NewAudit};
pub use batch::settled;
pub use bus::Event;
pub use challenges::{ChallengeRow, NewChallenge};
pub use checkpoint::Checkpoints;
pub use copy::Copied;
pub use devices::{ActivationRow, Binding, DeviceRow, NewDevice};
pub use export::{AuditExport, EXPORT_PAGE};
pub use methods::{Methods, PhoneCode};
pub use oidc::{ClientRow, CodeRow, TakenCode, TokenRow, WaitingRequest};
pub use pg::Presence;
pub use requests::{NewRegistration, RegistrationRequest};
pub use sessions::{Factor, FactorMethod, WebSession};
pub use stage::{Proving, Registering, Stage, StageKind};
pub use streams::INSTANCE_ALIVE_SECONDS;
pub use users::{NewUser, Role, UserRow};
pub use write::{Order, Write};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error, or could not be reached.
    #[error("database error: {}", pg::explain(.0))]
    Postgres(#[from] postgres::Error),
    /// Writes made while serving a request were lost with the batch that
    /// held them (see [`settled`]): its commit failed, or SQLite rolled
    /// it back.
    #[error("database error: the write was not committed: {0}")]
    NotCommitted(String),
    /// A stored value, or one to store, did not have the expected type or
    /// range.
    #[error("database error: {0}")]
    Decode(String),
    /// A row that must exist did not.
    #[error("database error: an expected row is missing")]
    NoRow,
    /// The PostgreSQL store was used on a current-thread async runtime,
    /// which cannot lend its only thread to a blocking call.
    #[error("the PostgreSQL store needs a multi-threaded runtime")]
    CurrentThreadRuntime,
    /// A copy's target holds data already.
    #[error("the target store is not empty (it holds users or audit rows); pass --replace to empty it first")]
    TargetNotEmpty,
    /// The store URL names no back end this server has.
    #[error("unsupported store URL (expected postgres://... or postgresql://...)")]
    UnsupportedUrl,
    /// The PostgreSQL URL asks for a connection this server will not
    /// make, or names a CA file it cannot read.
    #[error("the PostgreSQL URL is refused: {0}")]
    BadUrl(String),
    /// The database lacks migrations this version would run.
    #[error("the database has schema version {0}; this version expects {1} (starting the server migrates it)")]
    Older(i64, i64),
    /// The database was written by a newer version.
    #[error("the database has schema version {0}, newer than this server understands")]
    TooNew(i64),
}

/// SQL: whether user `?1` has any sign-in method (an app, a phone or
/// security answers). Used inside the transaction that registers one, so
/// "only while the account has none" cannot race another browser.
const HAS_METHOD: &str =
    "SELECT EXISTS (SELECT 1 FROM devices WHERE user_id = ?1 AND removed_at IS NULL) \
     OR EXISTS (SELECT 1 FROM phones WHERE user_id = ?1) \
     OR EXISTS (SELECT 1 FROM security_answers WHERE user_id = ?1)";

/// The database (see [`pool`]).
pub struct Store {
    pool: pool::Pool,
    /// This instance, in its announcements (see [`bus`]).
    origin: String,
    /// Where the latency of each call goes (reads, writes), once the
    /// server asks; looked up once, not on every call.
    latency: std::sync::OnceLock<[prometheus::Histogram; 2]>,
}

/// What a timed store call does, for its latency label.
#[derive(Clone, Copy)]
enum Access {
    Read = 0,
    Write = 1,
}

impl Access {
    fn label(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// PostgreSQL connections each instance keeps.
pub const PG_CONNECTIONS: usize = 8;

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and runs
    /// pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Self::setup(Connection::open(path)?)?;
        private(path);
        Ok(Store {
            pool: pool::Pool::Lite(pool::Lite::new(conn, Some(path))?),
            origin: String::new(),
            latency: Default::default(),
        })
    }

    /// Connects to the PostgreSQL database at `url`
    /// (`postgres://user@host/db`) and runs pending migrations.
    pub fn open_url(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::UnsupportedUrl);
        }
        let mut origin = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut origin)
            .map_err(|_| StoreError::Decode("the random generator failed".into()))?;
        Ok(Store {
            pool: pool::Pool::Pg(Box::new(pg::Pg::open(url, PG_CONNECTIONS)?)),
            origin: data_encoding::HEXLOWER.encode(&origin),
            latency: Default::default(),
        })
    }

    /// Whether the PostgreSQL database at `url` answers, reached as the
    /// server reaches it (TLS included); nothing is migrated.
    pub fn ping_url(url: &str) -> Result<(), StoreError> {
        pg::ping(url)
    }

    /// Opens an existing SQLite database read-only, to inspect it: no
    /// migration runs, and a database of another schema version is
    /// refused rather than changed.
    /// `immutable`: the file is read as it stands, with no locking and no
    /// journal files made beside it; only for a database nobody has open
    /// (no `-wal` file).
    pub fn open_read_only(path: &Path, immutable: bool) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            let absolute = std::fs::canonicalize(path)
                .map_err(|e| StoreError::Decode(format!("{}: {e}", path.display())))?;
            let mut uri = url::Url::from_file_path(&absolute)
                .map_err(|()| StoreError::Decode(format!("{}: not a file path", path.display())))?;
            uri.set_query(Some("immutable=1"));
            Connection::open_with_flags(uri.as_str(), flags | OpenFlags::SQLITE_OPEN_URI)?
        } else {
            Connection::open_with_flags(path, flags)?
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let expected = MIGRATIONS.len() as i64;
        if version > expected {
            return Err(StoreError::TooNew(version));
        }
        if version < expected {
            return Err(StoreError::Older(version, expected));
        }
        Ok(Store {
            pool: pool::Pool::Lite(pool::Lite::new(conn, None)?),
            origin: String::new(),
            latency: Default::default(),
        })
    }

    /// An in-memory SQLite database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Self::setup(Connection::open_in_memory()?)?;
        Ok(Store {
            pool: pool::Pool::Lite(pool::Lite::new(conn, None)?),
            origin: String::new(),
            latency: Default::default(),
        })
    }

    /// Held by a serving instance for its life: on PostgreSQL, a key
    /// rotation refuses to run while any instance holds it (waited for
    /// while a rotation runs). Holds nothing on SQLite, where the data
    /// folder's lock does this.
    pub fn hold_serving(&self) -> Result<Presence, StoreError> {
        match &self.pool {
            pool::Pool::Pg(pg) => pg.hold_shared(),
            pool::Pool::Lite(_) => Ok(Presence::none()),
        }
    }

    /// The database to one command, for a key rotation: `None` while an
    /// instance serves from it (PostgreSQL; on SQLite always granted, the
    /// data folder's lock does this).
    pub fn exclude_instances(&self) -> Result<Option<Presence>, StoreError> {
        match &self.pool {
            pool::Pool::Pg(pg) => pg.hold_alone(),
            pool::Pool::Lite(_) => Ok(Some(Presence::none())),
        }
    }

    /// The serving instances that keep a rotation away (PostgreSQL: each
    /// one's address, application name and start; none on SQLite).
    pub fn serving_instances(&self) -> Result<Vec<String>, StoreError> {
        match &self.pool {
            pool::Pool::Pg(pg) => pg.lock_holders(),
            pool::Pool::Lite(_) => Ok(Vec::new()),
        }
    }

    /// Whether this store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, pool::Pool::Pg(_))
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
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(m.lite)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(conn)
    }

    /// Runs `f` (statements that only read, a few rows by key) on a
    /// connection that need not be the writer.
    fn read<T>(&self, f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.timed(Access::Read, || self.pool.read(false, f))
    }

    /// Runs `f` (statements that only read, and may read a whole table)
    /// on a connection other than SQLite's writer when the store has
    /// readers (a file; not an in-memory store), so no write waits.
    fn scan<T>(&self, f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.timed(Access::Read, || self.pool.read(true, f))
    }

    /// Makes every commit so far durable on disk (SQLite: a full WAL
    /// checkpoint; commits are otherwise synced lazily). PostgreSQL's
    /// commits are durable already.
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.pool {
            pool::Pool::Lite(p) => p.write(|c| {
                // Busy, or stopped short, while another checkpoint runs (a
                // serving process's thread; the one caller, the master
                // key's rotation, runs with the server stopped, so this is
                // a safeguard): tried again for 5 s, each try waiting up
                // to the busy timeout.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let (busy, log, copied) = checkpoint::checkpoint(c, "FULL")?;
                    if !busy && log == copied {
                        return Ok(());
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Decode(
                            "the database's log could not be written back: another checkpoint or a reader held it too long".into(),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }),
            pool::Pool::Pg(_) => Ok(()),
        }
    }

    /// Starts checkpointing SQLite's log on a thread of its own (see
    /// [`checkpoint`]) until the returned value is dropped: for a server,
    /// whose async workers must not wait for the log's sync. The writer's
    /// own checkpoint is then a backstop at [`checkpoint::BACKSTOP`]
    /// pages, and stays so. `None` on PostgreSQL and for a database with
    /// no file.
    pub fn checkpoint_in_background(&self) -> Result<Option<Checkpoints>, StoreError> {
        match &self.pool {
            pool::Pool::Lite(p) => {
                let Some(path) = p.path() else {
                    return Ok(None);
                };
                let checkpoints = Checkpoints::start(path)?;
                // The writer's own checkpoint becomes the rare backstop.
                p.write(|c| c.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP))?;
                Ok(Some(checkpoints))
            }
            pool::Pool::Pg(_) => Ok(None),
        }
    }

    /// Records each call's latency (waiting for a connection included) in
    /// `histogram`, labelled by access (`read`, `write`). Set once.
    pub fn observe_latency(&self, histogram: prometheus::HistogramVec) {
        let _ = self
            .latency
            .set([Access::Read, Access::Write].map(|a| histogram.with_label_values(&[a.label()])));
    }

    fn timed<T>(&self, access: Access, f: impl FnOnce() -> T) -> T {
        let Some(h) = self.latency.get() else {
            return f();
        };
        let start = std::time::Instant::now();
        let out = f();
        h[access as usize].observe(start.elapsed().as_secs_f64());
        out
    }

    /// Follows what other instances announce, calling `on` for each event,
    /// until `alive` says stop (checked every second) or the connection
    /// breaks (an error: call again). The connection holds the serving
    /// lock ([`Store::hold_serving`]): `first`'s, if given. `connected`
    /// runs once listening. Returns at once on SQLite, where there are no
    /// other instances.
    pub fn listen(
        &self,
        first: Option<Presence>,
        alive: &dyn Fn() -> bool,
        connected: &mut dyn FnMut(),
        on: &mut dyn FnMut(Event),
    ) -> Result<(), StoreError> {
        match &self.pool {
            pool::Pool::Pg(pg) => bus::listen(pg, &self.origin, first, alive, connected, on),
            pool::Pool::Lite(_) => Ok(()),
        }
    }

    /// Schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|db| match db {
            Db::Lite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
            Db::Pg(_) => pg::schema_version(db),
        })
    }
}

/// Statements kept prepared per SQLite connection: every query the store
/// makes is one of a few dozen fixed texts, so none is compiled twice.
const STATEMENT_CACHE: usize = 128;

/// Makes the database file and its journals readable by their owner
/// only (SQLite creates them after the umask; its journals copy the
/// database file's mode). The data folder is private too; this keeps a
/// copied or moved file private as well.
fn private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// How SQLite would run `sql` (EXPLAIN QUERY PLAN), one step a line.
    pub(in crate::store) fn plan(store: &Store, sql: &str, args: &[db::Value<'_>]) -> String {
        let steps: Vec<String> = store
            .read(|db| db.all(&format!("EXPLAIN QUERY PLAN {sql}"), args, |r| r.get(3)))
            .unwrap();
        steps.join("\n")
    }

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
    fn a_flush_that_a_reader_keeps_from_the_end_of_the_log_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let store = Store::open(&path).unwrap();
        store.flush().unwrap();
        // A reader in the middle of a read holds the log as it was.
        let reader = Connection::open(&path).unwrap();
        reader
            .execute_batch("BEGIN; SELECT COUNT(*) FROM users;")
            .unwrap();
        let user = NewUser {
            username: "cs0501",
            first_name: "",
            last_name: "",
            password_hash: "x",
            temporary_until: 0,
        };
        store.write(1, |w| w.insert_user(&user, 1)).unwrap();
        let err = store.flush().unwrap_err();
        assert!(
            err.to_string().contains("could not be written back"),
            "{err}"
        );
        reader.execute_batch("COMMIT").unwrap();
        store.flush().unwrap();
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

//! The PostgreSQL back end: a fixed set of connections, each opened when
//! first needed and opened again after it breaks (the database restarted,
//! a proxy dropped it), so an instance rides out a database failover
//! without a restart.
//!
//! Serialised writes ([`super::Store::write`]) take one transaction-scoped
//! advisory lock first, on every instance. That keeps the rule SQLite's
//! single writer gave for free: a check made inside such a write ("only
//! while the account has no method") cannot race a write on another
//! instance. Concurrent writes ([`super::Store::concurrent_write`]: a
//! push's creation, receipts and answer, a device's contact, writes that
//! only audit) need no such check, take no such lock and run beside all
//! others. The audit chain has its own lock, taken by every write with
//! audit rows only as it commits: the chain has one tail, and no write
//! holds it for longer than its commit. Reads take no lock.
//!
//! The store is synchronous (the domain calls it in place), so this uses
//! the blocking client of rust-postgres (tokio-postgres underneath, on its
//! own small runtime per connection). On a worker of the server's
//! runtime, every call is announced as blocking (`block_in_place`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use super::db::{args, Db, PgConn};
use super::pg_tls::Target;
use super::schema::MIGRATIONS;
use super::{Order, StoreError};

/// The advisory lock every serialised write holds from its start
/// ("Countrsg"); see [`super::Store::write`].
const WRITE_LOCK: i64 = 0x436f_756e_7472_7367;
/// The advisory lock held while migrating, so that instances starting
/// together migrate once.
const MIGRATE_LOCK: i64 = WRITE_LOCK + 1;

/// The advisory lock each serving instance holds, shared, for its life,
/// and a key rotation takes alone: a rotation never runs beside an
/// instance that holds the old key in memory.
const RUNNING_LOCK: i64 = WRITE_LOCK + 2;

/// A connection of its own holding [`RUNNING_LOCK`] (none on SQLite);
/// the lock goes with it.
pub struct Presence(Option<postgres::Client>);

impl Presence {
    /// A guard that holds nothing (SQLite, where the data folder's lock
    /// does this).
    pub fn none() -> Self {
        Presence(None)
    }

    /// The connection holding the lock, to listen on.
    pub(super) fn into_client(mut self) -> Option<postgres::Client> {
        self.0.take()
    }
}

impl Drop for Presence {
    /// As for [`Pg`]: a blocking client closes on a thread of its own.
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// Connections to one PostgreSQL database.
pub(super) struct Pg {
    target: Target,
    slots: Vec<Mutex<Option<PgConn>>>,
    next: AtomicUsize,
}

impl Pg {
    /// Connects, runs pending migrations, and keeps up to `size`
    /// connections.
    pub(super) fn open(url: &str, size: usize) -> Result<Self, StoreError> {
        let target = Target::parse(url)?;
        if target.tls.is_none() && !target.crosses_no_network() {
            tracing::warn!(
                "the connection to PostgreSQL is not encrypted: add sslmode=verify-full and \
                 sslrootcert to the store URL (docs/OPERATIONS.md)"
            );
        }
        let pg = Pg {
            target,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        };
        pg.with(migrate)?;
        Ok(pg)
    }

    /// Runs `f` (statements that only read) outside any transaction.
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| f(&Db::Pg(c)))
    }

    /// Runs `f` in one transaction, holding the write lock from its start
    /// when serialised: committed when it returns `Ok`, rolled back
    /// otherwise. `f` also returns statements to run just before the
    /// commit, sent with it in one round trip (the audit rows, which take
    /// the chain's lock: it is held until the commit is durable, so it is
    /// taken only then). READ COMMITTED whatever the database's default:
    /// a statement after a lock must see what committed before the lock
    /// was granted (the chain's last row, the push limit's count).
    pub(super) fn transaction<T>(
        &self,
        order: Order,
        f: impl FnOnce(&Db<'_>) -> Result<(T, String), StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| {
            let db = Db::Pg(c);
            let begun = match order {
                Order::Serialised => db.batch(&format!(
                    "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
                )),
                // Sent with the first statement (see `pg_conn`).
                Order::Concurrent => {
                    c.borrow_mut()
                        .defer("BEGIN ISOLATION LEVEL READ COMMITTED".into());
                    Ok(())
                }
            };
            let out = begun
                .and_then(|()| f(&db))
                .and_then(|(v, tail)| db.batch(&format!("{tail}COMMIT")).map(|()| v));
            // A `BEGIN` never sent began nothing: there is nothing to end.
            let unsent = c.borrow_mut().forget_begin();
            if out.is_err() && !unsent {
                // A broken connection is dropped afterwards; otherwise this
                // ends the transaction (left aborted when a statement sent
                // with the commit failed, and so the commit was skipped)
                // before the next user; a connection that cannot is
                // closed, lest the next user's writes join this one.
                if db.batch("ROLLBACK").is_err() {
                    c.borrow_mut().spoiled = true;
                }
            }
            out
        })
    }

    /// Runs `f` on a connection (opened if needed), off the async workers.
    /// The connection is out of its slot meanwhile: if `f` panics, perhaps
    /// inside a transaction, it is dropped (the server rolls back) and the
    /// slot opens a new one next time.
    fn with<T>(
        &self,
        f: impl FnOnce(&RefCell<PgConn>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut slot = self.slot();
            let conn = match slot.take() {
                Some(c) if !c.client.is_closed() => c,
                _ => PgConn::new(connect(&self.target)?),
            };
            let cell = RefCell::new(conn);
            let out = f(&cell);
            let conn = cell.into_inner();
            if !conn.client.is_closed() && !conn.spoiled {
                *slot = Some(conn);
            }
            out
        })
    }

    /// A free connection slot, or the next one, waited for.
    fn slot(&self) -> MutexGuard<'_, Option<PgConn>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        for i in 0..n {
            match self.slots[(start + i) % n].try_lock() {
                Ok(g) => return g,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.slots[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Pg {
    /// Who holds [`RUNNING_LOCK`]: each connection's client address (or
    /// "a local socket"), application name and start, for a refusal.
    pub(super) fn lock_holders(&self) -> Result<Vec<String>, StoreError> {
        // A bigint advisory key shows as two 32-bit halves in pg_locks.
        let (high, low) = (RUNNING_LOCK >> 32, RUNNING_LOCK & 0xffff_ffff);
        self.read(|db| {
            db.all(
                "SELECT coalesce(host(a.client_addr), 'a local socket') || ' (' || \
                 coalesce(a.application_name, '') || ', since ' || \
                 to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC)' \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND l.classid::bigint = ?1 AND l.objid::bigint = ?2 AND l.objsubid = 1 \
                 ORDER BY a.backend_start",
                args![high, low],
                |r| r.get(0),
            )
        })
    }

    /// Holds [`RUNNING_LOCK`] shared, for a serving instance, waiting (and
    /// saying so) while a rotation runs.
    pub(super) fn hold_shared(&self) -> Result<Presence, StoreError> {
        off_runtime(|| {
            let mut client = connect(&self.target)?;
            let held: bool = client
                .query_one("SELECT pg_try_advisory_lock_shared($1)", &[&RUNNING_LOCK])?
                .get(0);
            if !held {
                tracing::warn!("a key rotation is running on this database: waiting for it to end");
                client.execute("SELECT pg_advisory_lock_shared($1)", &[&RUNNING_LOCK])?;
            }
            Ok(Presence(Some(client)))
        })
    }

    /// Holds [`RUNNING_LOCK`] alone, for a key rotation; `None` while an
    /// instance still holds it after 5 s (one that is stopping lets go
    /// within a second).
    pub(super) fn hold_alone(&self) -> Result<Option<Presence>, StoreError> {
        off_runtime(|| {
            let mut client = connect(&self.target)?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let held: bool = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&RUNNING_LOCK])?
                    .get(0);
                if held {
                    return Ok(Some(Presence(Some(client))));
                }
                if std::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        })
    }
}

impl Drop for Pg {
    /// Closing a blocking client runs its own runtime, which a worker of
    /// the server's runtime (where the last `Server` is often dropped)
    /// may not do: the connections close on a thread of their own.
    fn drop(&mut self) {
        let conns: Vec<PgConn> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.get_mut().unwrap_or_else(|p| p.into_inner()).take())
            .collect();
        if !conns.is_empty() {
            let _ = std::thread::spawn(move || drop(conns)).join();
        }
    }
}

/// Connects to `url` as the store would and asks for nothing but an
/// answer (no migration), for `doctor`.
pub(super) fn ping(url: &str) -> Result<(), StoreError> {
    let target = Target::parse(url)?;
    off_runtime(|| {
        connect(&target)?.simple_query("SELECT 1")?;
        Ok(())
    })
}

/// What went wrong, with its causes: the driver's own text names only
/// the kind ("error performing TLS handshake"). For an error PostgreSQL
/// reported, its severity, message and code, but not its detail, which
/// may quote the values of a row.
pub(super) fn explain(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

fn connect(target: &Target) -> Result<postgres::Client, StoreError> {
    Ok(match &target.tls {
        Some(tls) => target.config.connect(tls.clone())?,
        None => target.config.connect(postgres::NoTls)?,
    })
}

/// Brings the schema to the newest version, once across instances.
fn migrate(c: &RefCell<PgConn>) -> Result<(), StoreError> {
    let db = Db::Pg(c);
    db.exec("SELECT pg_advisory_lock(?1)", args![MIGRATE_LOCK])?;
    let out = (|| {
        db.batch("CREATE TABLE IF NOT EXISTS countersign_schema (version BIGINT NOT NULL)")?;
        let version: i64 = db
            .opt("SELECT version FROM countersign_schema", args![], |r| {
                r.get(0)
            })?
            .unwrap_or(0);
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew(version));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            db.batch("BEGIN")?;
            let step = db.batch(m.pg).and_then(|_| {
                db.exec("DELETE FROM countersign_schema", args![])?;
                db.exec(
                    "INSERT INTO countersign_schema (version) VALUES (?1)",
                    args![(i + 1) as i64],
                )
            });
            match step {
                Ok(_) => db.batch("COMMIT")?,
                Err(e) => {
                    let _ = db.batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(())
    })();
    db.exec("SELECT pg_advisory_unlock(?1)", args![MIGRATE_LOCK])?;
    out
}

/// The schema version of a PostgreSQL store.
pub(super) fn schema_version(db: &Db<'_>) -> Result<i64, StoreError> {
    db.one("SELECT version FROM countersign_schema", args![], |r| {
        r.get(0)
    })
}

/// Runs `f` where it may block: directly off the runtime, announced on a
/// worker of a multi-threaded runtime. A current-thread runtime cannot
/// lend its only thread to the blocking client: refused with an error.
fn off_runtime<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => f(),
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => Err(StoreError::CurrentThreadRuntime),
    }
}

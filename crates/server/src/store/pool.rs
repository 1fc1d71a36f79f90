//! The store's connections. On SQLite: one writer (SQLite serialises
//! writers anyway) and a few read-only connections. In WAL mode a reader
//! sees every commit made before its statement started and never waits
//! for the writer, so pages, device streams and long help-desk queries do
//! not queue behind writes or behind each other. On PostgreSQL: see
//! [`super::pg`].
//!
//! A short read takes the writer when it is free and no write waits for
//! it (its page cache is the warm one); a read that may scan a whole table
//! does not, unless the store has no readers (in memory).
//!
//! An async worker never waits for a SQLite connection: when every one it
//! could use is busy, the wait and the statements run as blocking work
//! (`block_in_place`), and the worker's other tasks move to another thread.
//! When one is free, the statements (microseconds) run in place: handing
//! each of them to another thread measured slower (docs/PERFORMANCE.md).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use rusqlite::{Connection, OpenFlags};

use super::batch::{self, Mine};
use super::db::Db;
use super::pg::Pg;
use super::writer::{Then, Writer};
use super::{Order, StoreError};

/// Either back end's connections.
pub(super) enum Pool {
    /// The embedded default.
    Lite(Lite),
    /// Shared by several instances.
    Pg(Box<Pg>),
}

impl Pool {
    /// Runs `f` (statements that only read). `whole_table` marks a read
    /// that may go through a whole table: on SQLite it never takes the
    /// writer, so that no write waits behind it.
    pub(super) fn read<T>(
        &self,
        whole_table: bool,
        f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Pool::Lite(p) => p.read(whole_table, |c| f(&Db::Lite(c))),
            Pool::Pg(p) => p.read(f),
        }
    }

    /// Runs `f` in one transaction, serialised with every other
    /// serialised write: committed when it returns `Ok` (on SQLite, inside
    /// a request, with the request's batch: see [`super::batch`]), rolled
    /// back otherwise.
    pub(super) fn transaction<T>(
        &self,
        f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction_then(Order::Serialised, |db| Ok((f(db)?, String::new())))
    }

    /// [`Pool::transaction`], where `f` also returns statements (SQL text,
    /// PostgreSQL only) to send with the commit. A concurrent one runs
    /// beside other writers on PostgreSQL (SQLite has one writer).
    pub(super) fn transaction_then<T>(
        &self,
        order: Order,
        f: impl FnOnce(&Db<'_>) -> Result<(T, String), StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Pool::Lite(p) => p.transaction(|c| Ok(f(&Db::Lite(c))?.0)),
            Pool::Pg(p) => p.transaction(order, f),
        }
    }
}

/// Read-only connections opened beside the writer.
const READERS: usize = 4;

/// SQLite's writer and readers.
pub(super) struct Lite {
    writer: Arc<Mutex<Writer>>,
    /// Empty for an in-memory database, which only its own connection
    /// sees: reads then use the writer.
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Writes waiting for the writer: while there are any, reads leave it
    /// to them (a free writer would otherwise go to whichever read tries
    /// first, ahead of the write woken to take it).
    waiting: AtomicUsize,
    /// The database file, when there is one (not in memory).
    path: Option<PathBuf>,
}

impl Lite {
    /// Wraps the (migrated) writer and opens readers on the file at `path`.
    pub(super) fn new(writer: Connection, path: Option<&Path>) -> Result<Self, StoreError> {
        let mut readers = Vec::new();
        if let Some(path) = path {
            for _ in 0..READERS {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                conn.set_prepared_statement_cache_capacity(super::STATEMENT_CACHE);
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                readers.push(Mutex::new(conn));
            }
        }
        Ok(Lite {
            writer: Arc::new(Mutex::new(Writer::new(writer))),
            readers,
            next: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            path: path.map(Path::to_path_buf),
        })
    }

    /// The database file, if any: `None` for an in-memory database and
    /// for one opened read-only to inspect it.
    pub(super) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes made and transactions committed on the writer so far.
    pub(super) fn commits(&self) -> (u64, u64) {
        self.on_writer(|w| w.counts())
    }

    /// Runs `f` on the writer, any open batch committed first.
    pub(super) fn write<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        self.on_writer(|w| f(w.settled()))
    }

    /// Runs `f` in a transaction on the writer: inside a request, as part
    /// of the open batch (see [`batch`]); elsewhere committed before this
    /// returns.
    pub(super) fn transaction<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // An in-memory store (tests of the domain) has no reader to serve
        // reads from outside a batch: it commits every write at once.
        let deferring = !self.readers.is_empty();
        self.on_writer(|w| w.write(&self.writer, deferring, f))
    }

    /// Runs `f` with the writer, waiting for it if need be (counted in
    /// [`Lite::waiting`]).
    pub(super) fn on_writer<T>(&self, f: impl FnOnce(&mut Writer) -> T) -> T {
        with_writer(&self.writer, Some(&self.waiting), f)
    }

    /// Runs `then` once the running request's writes have committed: now
    /// if they have (or there are none), never if they were lost.
    pub(super) fn after_commit(&self, then: Then) {
        match batch::mine() {
            Mine::Committed => then(),
            Mine::Lost(_) => {}
            Mine::Open(mine) => {
                if let Some(then) = self.on_writer(|w| w.after(&mine, then)) {
                    // The batch ended meanwhile.
                    if mine.failure().is_none() {
                        then();
                    }
                }
            }
        }
    }

    /// Commits the running request's writes now, if they wait for their
    /// batch's commit: `Err` if they, or earlier ones, were lost.
    pub(super) fn commit_now(&self) -> Result<(), StoreError> {
        match batch::mine() {
            Mine::Committed => Ok(()),
            Mine::Lost(e) => Err(StoreError::NotCommitted(e)),
            Mine::Open(mine) => {
                self.on_writer(|w| w.commit_if(&mine))?;
                match mine.failure() {
                    Some(e) => Err(StoreError::NotCommitted(e)),
                    None => Ok(()),
                }
            }
        }
    }

    /// Runs `f` on the writer when nobody holds it and `whole_table` is
    /// false, else on a free reader, waiting for one if need be (always
    /// the writer for an in-memory database). The writer first: its page
    /// cache is warm, while a reader's whole cache is dropped whenever a
    /// commit came between two of its reads (SQLite's WAL mode), which
    /// under load is every time, and its pages are read again from the
    /// file.
    ///
    /// A scan always runs as blocking work, free reader or not: it may
    /// take long, and with one worker (the default on two cores) every
    /// stream and page would wait for it. Except in a request whose
    /// writes wait for their batch's commit: only the writer sees them,
    /// so its reads, scans too, run there. A read outside any request
    /// never sees an open batch (see [`super::batch`]).
    pub(super) fn read<T>(&self, whole_table: bool, f: impl FnOnce(&Connection) -> T) -> T {
        if self.readers.is_empty() {
            return self.write(|c| f(c));
        }
        if matches!(batch::mine(), Mine::Open(_)) {
            // This request's writes are not committed yet: only the
            // writer sees them (and a request may read there).
            return self.on_writer(|w| {
                w.for_read();
                f(&w.conn)
            });
        }
        if whole_table {
            return blocking(|| self.on_reader(f));
        }
        if self.waiting.load(Ordering::SeqCst) == 0 {
            if let Some(mut w) = free(&self.writer) {
                if let Some(conn) = w.for_read() {
                    return f(conn);
                }
            }
        }
        self.on_reader(f)
    }

    /// Runs `f` on a free reader, else waits for one.
    fn on_reader<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Some(conn) = free(&self.readers[(start + i) % n]) {
                return f(&conn);
            }
        }
        blocking(|| f(&take(&self.readers[start % n])))
    }
}

/// Counts a write out of [`Lite::waiting`] however it ends (a panic in
/// `f` included).
struct Waited<'a>(&'a AtomicUsize);

impl Drop for Waited<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection if nobody holds it.
fn free<C>(conn: &Mutex<C>) -> Option<MutexGuard<'_, C>> {
    match conn.try_lock() {
        Ok(c) => Some(c),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The connection, waiting for it. A poisoned lock (a panic while holding
/// it) is taken over: a reader's transaction ended with its statement,
/// and a panicking write's savepoint was undone as it unwound.
fn take<C>(conn: &Mutex<C>) -> MutexGuard<'_, C> {
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` with the writer, waiting for it as blocking work if another
/// thread holds it; then, with the writer let go, what a commit `f` made
/// set off, and only then are the batch's waiters let go on (a request's
/// answer comes after what its commit set off).
pub(super) fn with_writer<T>(
    writer: &Mutex<Writer>,
    waiting: Option<&AtomicUsize>,
    f: impl FnOnce(&mut Writer) -> T,
) -> T {
    let run = |w: &mut Writer| (f(w), std::mem::take(&mut w.ready));
    let (out, ready) = match free(writer) {
        Some(mut w) => run(&mut w),
        None => {
            // Counted while it waits, and runs (see [`Lite::waiting`]).
            let _waited = waiting.map(|n| {
                n.fetch_add(1, Ordering::SeqCst);
                Waited(n)
            });
            blocking(|| run(&mut take(writer)))
        }
    };
    let (actions, ended) = ready;
    for then in actions {
        then();
    }
    for batch in ended {
        batch.tell();
    }
    out
}

/// Runs `f`, announcing to the runtime that it blocks when called on a
/// worker of a multi-threaded one. (`block_in_place` is refused on a
/// current-thread runtime, which tests use; there it simply blocks.)
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    let on_worker = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_worker {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::store::{NewAudit, Store};

    const HELD: Duration = Duration::from_secs(2);

    /// A store on a file, and a thread holding its writer for [`HELD`].
    fn busy_store() -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let (held, wait) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || {
            let crate::store::pool::Pool::Lite(lite) = &s.pool else {
                unreachable!("a file store is SQLite")
            };
            lite.write(|_| {
                held.send(()).unwrap();
                std::thread::sleep(HELD);
            })
        });
        wait.recv().unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_waiting_for_the_writer_do_not_stall_the_workers() {
        let (_dir, store) = busy_store();
        // More writers than workers wait for the connection...
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.write(1, |w| w.audit(&NewAudit::of("t", "test", "t", "")))
                        .unwrap()
                })
            })
            .collect();
        // ...and tasks that need no database still run on time.
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = tokio::spawn(tokio::time::sleep(Duration::from_millis(50)));
        probe.await.unwrap();
        let waited = t.elapsed();
        assert!(waited < HELD / 2, "a free task waited {waited:?}");
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(store.verify_audit().unwrap(), Ok(4));
    }

    #[test]
    fn a_read_takes_the_writer_when_it_is_free_and_no_write_waits_and_a_scan_never_does() {
        let on_writer = |lite: &super::Lite, whole_table| {
            lite.read(whole_table, |c| {
                !c.is_readonly(rusqlite::DatabaseName::Main).unwrap()
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let crate::store::pool::Pool::Lite(lite) = &store.pool else {
            unreachable!("a file store is SQLite")
        };
        assert!(on_writer(lite, false), "a free writer serves the read");
        let read_while_writing = lite.write(|_| on_writer(lite, false));
        assert!(
            !read_while_writing,
            "a held writer leaves the read to a reader"
        );
        assert!(!on_writer(lite, true), "a scan is left to a reader");
        // A write waiting for the writer (counted as `write` counts it)
        // goes first: the read is left to a reader though the writer is
        // free this instant.
        let waiting = super::Waited(&lite.waiting);
        lite.waiting
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        assert!(!on_writer(lite, false), "a waiting write goes first");
        drop(waiting);
        assert!(on_writer(lite, false), "and then reads take it again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_long_scan_does_not_hold_up_a_lone_worker() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        // Everything below runs on the runtime's only worker, as a
        // server's requests do: a task starts a scan, and then needs the
        // worker for a moment itself.
        let waited = tokio::spawn(async move {
            let s = store.clone();
            let scan = tokio::spawn(async move {
                s.scan(|_| {
                    std::thread::sleep(HELD);
                    Ok(())
                })
            });
            let t = Instant::now();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let waited = t.elapsed();
            scan.await.unwrap().unwrap();
            waited
        })
        .await
        .unwrap();
        assert!(
            waited < HELD / 2,
            "a task beside the scan waited {waited:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_do_not_wait_for_the_writer() {
        let (_dir, store) = busy_store();
        let t = Instant::now();
        assert!(store.user_by_name("nobody").unwrap().is_none());
        assert!(t.elapsed() < HELD / 2, "a read waited {:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_request_reads_its_own_writes_though_reads_would_go_to_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let s = store.clone();
        let seen = crate::store::settled(async move {
            s.write(1, |w| w.audit(&NewAudit::of("t", "test", "mine", "")))?;
            let crate::store::pool::Pool::Lite(lite) = &s.pool else {
                unreachable!("a file store is SQLite")
            };
            // A write waiting for the writer sends reads to the readers,
            // which see only what is committed.
            lite.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _waiting = super::Waited(&lite.waiting);
            s.read(|db| {
                db.one(
                    "SELECT COUNT(*) FROM audit",
                    crate::store::db::args![],
                    |r| r.get::<i64>(0),
                )
            })
        })
        .await
        .unwrap();
        assert_eq!(seen.unwrap(), 1);
    }
}

//! Group commit on SQLite: the writes made while serving requests share
//! one transaction, committed once for all of them.
//!
//! A commit costs the same few locks and log writes however little it
//! holds, and the writes a push makes (the challenge, its receipts, the
//! answer, each with an audit row) touch the same few pages: the audit
//! chain's tail and its indexes. Committed one by one, each write copies
//! those pages into the log again (about half of the server's CPU went
//! to commits under load; docs/PERFORMANCE.md, "Group commit").
//!
//! So a write made inside a request ([`settled`]) opens, or joins, the
//! writer's open transaction (a batch), inside a savepoint of its own: a
//! write that fails undoes only itself. The batch is committed by a task
//! that runs once the worker has run every other task ready meanwhile,
//! so the requests served in that turn share the commit. A request's
//! answer waits for the commit of every batch it wrote in, or read from
//! (a read on the writer sees the batch's writes): nothing is answered
//! that is not on disk as a commit is, and if the commit fails, so does
//! the answer. A write outside any request (a command, a timer, a
//! device's stream) commits at once, with the open batch if there is one.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::watch;

use super::StoreError;

tokio::task_local! {
    /// What the request being served wrote in or read from.
    static JOINED: RefCell<Joined>;
}

/// The batches a request saw: the last one, and why an earlier one, if
/// any, did not commit.
#[derive(Default)]
struct Joined {
    last: Option<Arc<Batch>>,
    failed: Option<String>,
}

/// A transaction that several writes share, and how it ended.
#[derive(Debug)]
pub(super) struct Batch {
    /// `None` while open; then whether it committed, or why not.
    ended: watch::Sender<Option<Result<(), String>>>,
}

impl Batch {
    fn new() -> Arc<Self> {
        Arc::new(Batch {
            ended: watch::Sender::new(None),
        })
    }

    /// Whether the batch has been committed or rolled back.
    fn ended(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// Why the batch did not commit, once it ended so.
    fn failure(&self) -> Option<String> {
        match self.ended.borrow().as_ref() {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Waits for the batch's end: why it did not commit, if it did not.
    async fn wait(&self) -> Option<String> {
        // The sender lives as long as the batch: the wait ends with it.
        let _ = self.ended.subscribe().wait_for(Option::is_some).await;
        self.failure()
    }
}

/// Runs `f` (a request being served) so that its writes join the open
/// batch, then waits until every batch it wrote in or read from has
/// committed: `Err` if one did not.
pub async fn settled<F: Future>(f: F) -> Result<F::Output, StoreError> {
    JOINED
        .scope(RefCell::new(Joined::default()), async {
            let out = f.await;
            let Joined { last, mut failed } = JOINED.with(|j| j.take());
            if let Some(batch) = last {
                failed = failed.or(batch.wait().await);
            }
            match failed {
                None => Ok(out),
                Some(e) => Err(StoreError::Decode(format!(
                    "the write was not committed: {e}"
                ))),
            }
        })
        .await
}

/// Whether the running task serves a request ([`settled`]).
fn in_request() -> bool {
    JOINED.try_with(|_| ()).is_ok()
}

/// Records that the running task's request saw `batch` (nothing outside
/// a request). A batch it saw before has ended once the writer holds
/// another: only its failure, if it failed, is kept.
fn join(batch: &Arc<Batch>) {
    let _ = JOINED.try_with(|j| {
        let mut j = j.borrow_mut();
        if let Some(before) = j.last.replace(batch.clone()) {
            if j.failed.is_none() && !Arc::ptr_eq(&before, batch) {
                j.failed = before.failure();
            }
        }
    });
}

/// Whether the running task's request joined a batch that is still
/// open: its reads must then see the writer's transaction.
pub(super) fn joined_open() -> bool {
    JOINED
        .try_with(|j| j.borrow().last.as_ref().is_some_and(|b| !b.ended()))
        .unwrap_or(false)
}

/// How many times the commit task lets the worker's other tasks run
/// before it commits. The first turn runs the tasks ready when the batch
/// opened; the second also those woken by what arrived meanwhile. Under
/// the load driver (8 in flight) one turn gave 2.6 writes per commit, two
/// gave 4.0 and about 4 % less CPU per round trip at the same p99; three
/// gave no less CPU (docs/PERFORMANCE.md, "Group commit").
const TURNS: usize = 2;

/// SQLite's one writing connection and its open batch.
pub(super) struct Writer {
    pub(super) conn: Connection,
    open: Option<Arc<Batch>>,
    /// Writes made and transactions committed on this connection.
    counts: (u64, u64),
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Self {
        Writer {
            conn,
            open: None,
            counts: (0, 0),
        }
    }

    /// Writes made and transactions committed so far: their ratio is how
    /// many writes a commit carried on average.
    pub(super) fn counts(&self) -> (u64, u64) {
        self.counts
    }

    /// The connection, any open batch committed first (for statements
    /// that manage their own transaction).
    pub(super) fn settled(&mut self) -> &mut Connection {
        let _ = self.commit();
        &mut self.conn
    }

    /// The connection, to read on. A request that reads the open batch
    /// joins it: its answer waits for the commit.
    pub(super) fn for_read(&self) -> &Connection {
        if let Some(b) = &self.open {
            join(b);
        }
        &self.conn
    }

    /// Runs `f` in a savepoint of the open batch (opened if need be):
    /// undone alone if it fails. Inside a request the batch is left open
    /// for `writer`'s commit task (one per batch); elsewhere it is
    /// committed now.
    pub(super) fn write<T>(
        &mut self,
        writer: &Arc<Mutex<Writer>>,
        deferring: bool,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The commit task needs a runtime to run on.
        let deferring = deferring && in_request() && tokio::runtime::Handle::try_current().is_ok();
        if self.open.is_none() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let batch = Batch::new();
            if deferring {
                tokio::spawn(commit_later(writer.clone(), batch.clone()));
            }
            self.open = Some(batch);
        }
        let out = savepoint(&self.conn, f);
        self.counts.0 += 1;
        if deferring {
            if let Some(b) = &self.open {
                join(b);
            }
            return out;
        }
        let committed = self.commit();
        let out = out?;
        committed.map(|()| out)
    }

    /// Commits the open batch, if any, and tells its waiters how it went.
    fn commit(&mut self) -> Result<(), StoreError> {
        let Some(batch) = self.open.take() else {
            return Ok(());
        };
        self.counts.1 += 1;
        let done = self.conn.execute_batch("COMMIT");
        if done.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        batch
            .ended
            .send_replace(Some(done.as_ref().map(|_| ()).map_err(|e| e.to_string())));
        Ok(done?)
    }
}

/// Commits `batch` once the worker has run the tasks ready now (their
/// writes join it), unless something committed it meanwhile.
async fn commit_later(writer: Arc<Mutex<Writer>>, batch: Arc<Batch>) {
    for _ in 0..TURNS {
        tokio::task::yield_now().await;
    }
    let commit = |w: &mut Writer| {
        if w.open.as_ref().is_some_and(|b| Arc::ptr_eq(b, &batch)) {
            if let Err(e) = w.commit() {
                tracing::error!(error = %e, "a batch of writes could not be committed");
            }
        }
    };
    match super::pool::free(&writer) {
        Some(mut w) => commit(&mut w),
        None => super::pool::blocking(|| commit(&mut super::pool::take(&writer))),
    }
}

/// Runs `f` in a savepoint: kept if it returns `Ok`, undone if it
/// returns `Err` or panics.
fn savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    /// Undoes the savepoint unless released.
    struct Undo<'c>(Option<&'c Connection>);
    impl Drop for Undo<'_> {
        fn drop(&mut self) {
            if let Some(c) = self.0 {
                let _ = c.execute_batch("ROLLBACK TO write; RELEASE write");
            }
        }
    }
    conn.prepare_cached("SAVEPOINT write")?.execute([])?;
    let mut undo = Undo(Some(conn));
    let out = f(conn)?;
    undo.0 = None;
    conn.prepare_cached("RELEASE write")?.execute([])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::settled;
    use crate::store::db::args;
    use crate::store::{NewAudit, Store, StoreError};

    /// A store on a file, and a way to count its audit rows as another
    /// process would see them: from a connection of its own.
    fn store() -> (
        tempfile::TempDir,
        Arc<Store>,
        impl Fn() -> i64 + Clone + Send + Sync + 'static,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Arc::new(Store::open(&path).unwrap());
        let committed = move || {
            rusqlite::Connection::open(&path)
                .unwrap()
                .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
                .unwrap()
        };
        (dir, store, committed)
    }

    fn row(s: &Store, target: &str) -> Result<(), StoreError> {
        s.write(1, |w| w.audit(&NewAudit::of("t", "test", target, "")))
    }

    /// Serves `n` requests at once, each making `each(i)`; returns their
    /// answers in order.
    async fn serve<T: Send + 'static>(
        n: usize,
        each: impl Fn(usize) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Vec<Result<T, StoreError>> {
        let each = Arc::new(each);
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let each = each.clone();
                tokio::spawn(async move { settled(async { each(i) }).await.and_then(|r| r) })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn requests_served_together_share_one_commit_and_each_answer_waits_for_it() {
        let (_dir, store, committed) = store();
        let before = store.commits().unwrap();
        let (s, c) = (store.clone(), committed.clone());
        let answers = serve(4, move |i| {
            row(&s, &format!("r{i}"))?;
            // Written, not yet committed: another connection sees none of
            // the batch.
            Ok(c())
        })
        .await;
        for a in answers {
            assert_eq!(a.unwrap(), 0, "a write was committed before its batch");
        }
        assert_eq!(committed(), 4, "every answered write is committed");
        let after = store.commits().unwrap();
        assert_eq!((after.0 - before.0, after.1 - before.1), (4, 1));
        assert_eq!(store.verify_audit().unwrap(), Ok(4));
    }

    #[tokio::test]
    async fn a_write_outside_any_request_commits_at_once_with_the_open_batch() {
        let (_dir, store, committed) = store();
        let (s, c) = (store.clone(), committed.clone());
        let answers = serve(1, move |_| {
            row(&s, "in a request")?;
            let seen = c();
            // A thread of its own serves no request.
            let o = s.clone();
            std::thread::spawn(move || row(&o, "outside"))
                .join()
                .unwrap()?;
            Ok((seen, c()))
        })
        .await;
        assert_eq!(answers[0].as_ref().unwrap(), &(0, 2));
        assert_eq!(store.verify_audit().unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn a_write_that_fails_in_a_batch_undoes_only_itself() {
        let (_dir, store, committed) = store();
        let s = store.clone();
        let answers = serve(3, move |i| {
            s.write(1, |w| {
                w.audit(&NewAudit::of("t", "test", &format!("r{i}"), ""))?;
                match i {
                    1 => Err(StoreError::Decode("refused after writing".into())),
                    _ => Ok(()),
                }
            })
        })
        .await;
        assert!(answers[0].is_ok() && answers[2].is_ok());
        assert!(answers[1].is_err());
        assert_eq!(committed(), 2);
        let targets = store
            .read(|db| {
                db.all("SELECT target FROM audit ORDER BY seq", args![], |r| {
                    r.get::<String>(0)
                })
            })
            .unwrap();
        assert_eq!(targets, ["r0", "r2"]);
        assert_eq!(
            store.verify_audit().unwrap(),
            Ok(2),
            "the chain skips the undone row"
        );
    }

    #[tokio::test]
    async fn a_batch_that_cannot_commit_fails_every_answer_that_waited_for_it() {
        let (_dir, store, committed) = store();
        let s = store.clone();
        let answers = serve(2, move |i| match i {
            0 => doomed(&s),
            _ => row(&s, "r1"),
        })
        .await;
        for a in &answers {
            let e = a.as_ref().unwrap_err().to_string();
            assert!(e.contains("not committed"), "{e}");
        }
        assert_eq!(committed(), 0, "nothing of the batch is kept");
        // The writer is usable again, in a request or not.
        row(&store, "after").unwrap();
        let s = store.clone();
        assert!(serve(1, move |_| row(&s, "later")).await[0].is_ok());
        assert_eq!(committed(), 2);
        assert_eq!(store.verify_audit().unwrap(), Ok(2));
    }

    /// A write whose commit fails: it leaves a row whose user does not
    /// exist, checked only as the whole transaction commits.
    fn doomed(s: &Store) -> Result<(), StoreError> {
        s.write(1, |w| {
            w.db().exec("PRAGMA defer_foreign_keys = ON", args![])?;
            w.db().exec(
                "INSERT INTO password_history (user_id, hash, created_at) VALUES (999, 'x', 1)",
                args![],
            )?;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_request_whose_earlier_batch_failed_fails_though_its_last_committed() {
        let (_dir, store, committed) = store();
        let s = store.clone();
        let answer = settled(async move {
            doomed(&s)?;
            // The batch's commit task runs, and fails, meanwhile.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            row(&s, "later")
        })
        .await;
        let e = answer.unwrap_err().to_string();
        assert!(e.contains("not committed"), "{e}");
        assert_eq!(committed(), 1, "the later batch did commit");
    }

    #[tokio::test]
    async fn a_request_that_reads_another_requests_write_waits_for_its_commit() {
        let (_dir, store, committed) = store();
        let (s, r) = (store.clone(), store.clone());
        let writer = tokio::spawn(settled(async move { row(&s, "written") }));
        let reader = tokio::spawn(settled(async move {
            r.read(|db| db.one("SELECT COUNT(*) FROM audit", args![], |r| r.get::<i64>(0)))
        }));
        // The reader ran after the write, before the commit: it saw the
        // row, and was answered only once the row was committed.
        let seen = reader.await.unwrap().unwrap().unwrap();
        assert_eq!((seen, committed()), (1, 1));
        writer.await.unwrap().unwrap().unwrap();
    }
}

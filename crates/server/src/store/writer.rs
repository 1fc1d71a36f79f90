//! SQLite's one writing connection and the batch of writes it holds open
//! (see [`super::batch`]).

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::batch::{self, Batch};
use super::StoreError;

/// How many times the commit task lets the worker's other tasks run
/// before it commits. The first turn runs the tasks ready when the batch
/// opened; the second also those woken by what arrived meanwhile. Under
/// the load driver (8 in flight) one turn gave 2.6 writes per commit and
/// two 4.0, with less CPU per round trip at the same p99; three gave no
/// less CPU (docs/PERFORMANCE.md, "Group commit").
const TURNS: usize = 2;

/// What to run once a batch has committed (see [`super::Store::after_commit`]).
pub(super) type Then = Box<dyn FnOnce() + Send>;

/// SQLite's writing connection and its open batch.
pub(super) struct Writer {
    pub(super) conn: Connection,
    open: Option<Arc<Batch>>,
    /// Whether a task will commit the open batch.
    scheduled: bool,
    /// What to run once the open batch commits.
    then: Vec<Then>,
    /// What to run now that a batch has committed, once the connection is
    /// let go (so that it may use the store), and then the batches whose
    /// waiters may go on.
    pub(super) ready: (Vec<Then>, Vec<Arc<Batch>>),
    /// Writes made and transactions committed on this connection.
    counts: (u64, u64),
}

impl Writer {
    pub(super) fn new(conn: Connection) -> Self {
        Writer {
            conn,
            open: None,
            scheduled: false,
            then: Vec::new(),
            ready: (Vec::new(), Vec::new()),
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

    /// The connection to read on, if this read may see the open batch: a
    /// request may, and then waits for its commit; a read outside any
    /// request may not (`None`: read on a reader). A batch that no task
    /// will commit (a panicking write opened it) is committed first.
    pub(super) fn for_read(&mut self) -> Option<&Connection> {
        if self.open.is_some() && !self.scheduled {
            let _ = self.commit();
        }
        match &self.open {
            Some(b) if !batch::join(b, false) => None,
            _ => Some(&self.conn),
        }
    }

    /// Runs `f` in a savepoint of the open batch (opened if need be):
    /// undone alone if it fails. Inside a request the batch is left open
    /// for a task that commits it (see [`TURNS`]) on `writer`; elsewhere
    /// it is committed now.
    pub(super) fn write<T>(
        &mut self,
        writer: &Arc<Mutex<Writer>>,
        deferring: bool,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The commit task needs a runtime to run on.
        let deferring =
            deferring && batch::in_request() && tokio::runtime::Handle::try_current().is_ok();
        if self.open.is_none() {
            if !self.conn.is_autocommit() {
                // A transaction a failed commit could not roll back.
                self.conn.execute_batch("ROLLBACK")?;
            }
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.open = Some(Batch::new());
        }
        let out = savepoint(&self.conn, f);
        self.counts.0 += 1;
        if let Err(e) = &out {
            if self.conn.is_autocommit() {
                // SQLite rolled the whole transaction back (a full disk,
                // an I/O error): every write in the batch is lost.
                self.end(Err(format!("rolled back: {e}")));
                return out;
            }
        }
        if !deferring {
            let committed = self.commit();
            let out = out?;
            return committed.map(|()| out);
        }
        if let Some(b) = &self.open {
            batch::join(b, true);
            if !self.scheduled {
                self.scheduled = true;
                tokio::spawn(commit_later(writer.clone(), b.clone()));
            }
        }
        out
    }

    /// Runs `then` once `mine`, the running request's open batch, has
    /// committed: given back if that batch has already ended.
    pub(super) fn after(&mut self, mine: &Arc<Batch>, then: Then) -> Option<Then> {
        if !self.holds(mine) {
            return Some(then);
        }
        self.then.push(then);
        None
    }

    /// Commits `mine` now if it is the open batch.
    pub(super) fn commit_if(&mut self, mine: &Arc<Batch>) -> Result<(), StoreError> {
        match self.holds(mine) {
            true => self.commit(),
            false => Ok(()),
        }
    }

    /// Whether `mine` is the open batch.
    fn holds(&self, mine: &Arc<Batch>) -> bool {
        self.open.as_ref().is_some_and(|b| Arc::ptr_eq(b, mine))
    }

    /// Commits the open batch, if any, and tells its waiters how it went.
    fn commit(&mut self) -> Result<(), StoreError> {
        if self.open.is_none() {
            return Ok(());
        }
        self.counts.1 += 1;
        let done = self.conn.execute_batch("COMMIT");
        if done.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.end(done.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        Ok(done?)
    }

    /// Ends the open batch as `outcome` says: what waited for its commit
    /// runs if it committed, and is dropped if not.
    fn end(&mut self, outcome: Result<(), String>) {
        let Some(batch) = self.open.take() else {
            return;
        };
        self.scheduled = false;
        let then = std::mem::take(&mut self.then);
        if outcome.is_ok() {
            self.ready.0.extend(then);
        }
        batch.end(outcome);
        self.ready.1.push(batch);
    }
}

/// Commits `batch` once the worker has run the tasks ready now (their
/// writes join it), unless something committed it meanwhile.
async fn commit_later(writer: Arc<Mutex<Writer>>, batch: Arc<Batch>) {
    for _ in 0..TURNS {
        tokio::task::yield_now().await;
    }
    super::pool::with_writer(&writer, None, |w| {
        if let Err(e) = w.commit_if(&batch) {
            tracing::error!(error = %e, "a batch of writes could not be committed");
        }
    });
}

/// Runs `f` in a savepoint: kept if it returns `Ok` and the savepoint is
/// released, undone if not, or if `f` panics.
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
    conn.prepare_cached("RELEASE write")?.execute([])?;
    undo.0 = None;
    Ok(out)
}

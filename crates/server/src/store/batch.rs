//! Group commit on SQLite: the writes made while serving requests share
//! one transaction, committed once for all of them.
//!
//! A commit costs the same few locks and log writes however little it
//! holds, and the writes a push makes (the challenge, its receipts, the
//! answer, each with an audit row) touch the same few pages: the audit
//! chain's tail and its indexes. Committed one by one, each write copies
//! those pages into the log again (docs/PERFORMANCE.md, "Group commit").
//!
//! So a write made inside a request ([`settled`]) opens, or joins, the
//! writer's open transaction (a batch; [`super::writer`]), inside a
//! savepoint of its own: a write that fails undoes only itself. A task
//! commits the batch once the worker has run the other tasks ready
//! meanwhile, so the requests served in that turn share the commit.
//!
//! Nothing leaves the server before its batch commits:
//! - a request's answer waits for every batch it wrote in, or read from
//!   (a read on the writer sees the batch), and is an error if one did
//!   not commit;
//! - what a write tells other tasks (a new challenge to a device's
//!   stream, an answer to the sign-in page) waits for the commit too
//!   ([`super::Store::after_commit`]), and what a request does outside
//!   the server (a text message sent) first commits its writes
//!   ([`super::Store::commit_now`]);
//! - reads outside any request go to a reader, which sees only commits.
//!
//! A write outside any request (a command, a timer, a device's stream, a
//! password check on its thread) commits at once, with the open batch.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use super::StoreError;

tokio::task_local! {
    /// What the request being served wrote in or read from.
    static JOINED: RefCell<Joined>;
}

/// The batches a request saw, written in or read from (its answer waits
/// for them), and those it wrote in (what follows its writes waits for
/// these alone): the last of each, and why an earlier one, if any, did
/// not commit.
#[derive(Default)]
struct Joined {
    seen: Seen,
    written: Seen,
}

/// The last batch of a kind, and the failure of an earlier one.
#[derive(Default)]
struct Seen {
    last: Option<Arc<Batch>>,
    failed: Option<String>,
}

impl Seen {
    /// Records `batch`. A batch recorded before has ended once the writer
    /// holds another: only its failure, if it failed, is kept.
    fn record(&mut self, batch: &Arc<Batch>) {
        if let Some(before) = self.last.replace(batch.clone()) {
            if self.failed.is_none() && !Arc::ptr_eq(&before, batch) {
                self.failed = before.failure();
            }
        }
    }
}

/// A transaction that several writes share, and how it ended.
#[derive(Debug)]
pub(super) struct Batch {
    /// Unset while open; then whether it committed, or why not (set once,
    /// with the writer held).
    ended: OnceLock<Result<(), String>>,
    /// Whether those waiting for the batch may go on: once what its
    /// commit set off has run, so that an answer comes after it.
    told: watch::Sender<bool>,
}

impl Batch {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Batch {
            ended: OnceLock::new(),
            told: watch::Sender::new(false),
        })
    }

    /// Records how the batch ended.
    pub(super) fn end(&self, outcome: Result<(), String>) {
        let _ = self.ended.set(outcome);
    }

    /// Lets those waiting for the batch go on.
    pub(super) fn tell(&self) {
        self.told.send_replace(true);
    }

    /// Whether the batch has been committed or rolled back.
    fn ended(&self) -> bool {
        self.ended.get().is_some()
    }

    /// Why the batch did not commit, once it ended so.
    pub(super) fn failure(&self) -> Option<String> {
        self.ended.get()?.clone().err()
    }

    /// Waits until the batch's waiters are told (after what its commit
    /// set off has run): why it did not commit, if it did not.
    async fn wait(&self) -> Option<String> {
        // `self` owns the sender: the wait cannot fail, and ends at `tell`.
        let _ = self.told.subscribe().wait_for(|told| *told).await;
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
            let Seen { last, mut failed } = JOINED.with(|j| j.take().seen);
            if let Some(batch) = last {
                failed = failed.or(batch.wait().await);
            }
            match failed {
                None => Ok(out),
                Some(e) => Err(StoreError::NotCommitted(e)),
            }
        })
        .await
}

/// Whether the running task serves a request ([`settled`]).
pub(super) fn in_request() -> bool {
    JOINED.try_with(|_| ()).is_ok()
}

/// Records that the running task's request read from `batch`, or wrote
/// in it: `false` outside a request.
pub(super) fn join(batch: &Arc<Batch>, wrote: bool) -> bool {
    JOINED
        .try_with(|j| {
            let mut j = j.borrow_mut();
            j.seen.record(batch);
            if wrote {
                j.written.record(batch);
            }
        })
        .is_ok()
}

/// Where the running task's writes stand.
pub(super) enum Mine {
    /// Committed, or there were none (or none outside this request).
    Committed,
    /// In `batch`, still open.
    Open(Arc<Batch>),
    /// Lost: a batch holding some of them did not commit (why).
    Lost(String),
}

/// Where the running task's writes stand (see [`Mine`]).
pub(super) fn mine() -> Mine {
    JOINED
        .try_with(|j| {
            let j = &j.borrow().written;
            if let Some(e) = &j.failed {
                return Mine::Lost(e.clone());
            }
            match &j.last {
                Some(b) if !b.ended() => Mine::Open(b.clone()),
                Some(b) => b.failure().map_or(Mine::Committed, Mine::Lost),
                None => Mine::Committed,
            }
        })
        .unwrap_or(Mine::Committed)
}

impl super::Store {
    /// Runs `then` once the writes the running request made so far have
    /// committed: at once when they have (always on PostgreSQL, and
    /// outside a request), never if they were lost. For what tells other
    /// tasks of a write (a device's stream, a sign-in page waiting for an
    /// answer), which must not hear of a write that may yet be lost (see
    /// [`settled`]).
    pub fn after_commit(&self, then: impl FnOnce() + Send + 'static) {
        match &self.pool {
            super::pool::Pool::Lite(p) => p.after_commit(Box::new(then)),
            super::pool::Pool::Pg(_) => then(),
        }
    }

    /// Commits the writes the running request made so far, if they still
    /// wait for their batch's commit: before something that cannot be
    /// taken back happens outside the server (a message sent). `Err` if
    /// they were lost.
    pub fn commit_now(&self) -> Result<(), StoreError> {
        match &self.pool {
            super::pool::Pool::Lite(p) => p.commit_now(),
            super::pool::Pool::Pg(_) => Ok(()),
        }
    }

    /// Commits the open batch, if any, whoever's writes it holds (as the
    /// server stops).
    pub fn commit_pending(&self) {
        if let super::pool::Pool::Lite(p) = &self.pool {
            p.write(|_| ());
        }
    }

    /// SQLite: the writes made and the transactions committed since the
    /// store opened; their ratio is how many writes a commit carried (see
    /// [`settled`]). `None` on PostgreSQL, where each write commits alone.
    pub fn commits(&self) -> Option<(u64, u64)> {
        match &self.pool {
            super::pool::Pool::Lite(p) => Some(p.commits()),
            super::pool::Pool::Pg(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;

//! SQLite checkpoints on a thread of their own, while the server serves.
//!
//! In WAL mode a commit is appended to the `-wal` file and synced only
//! when a checkpoint copies the log back into the database file. SQLite
//! runs that checkpoint inside the commit that takes the log past 1,000
//! pages, so the async worker that made the commit waits for the sync of
//! the whole log (about 10 ms here for 4 MB), and with one worker every
//! stream and request waits with it (docs/PERFORMANCE.md, "Checkpoints
//! off the worker").
//!
//! This thread checkpoints on its own connection, in SQLite's passive
//! mode: it never waits for a reader or the writer, and neither waits for
//! it (a checkpoint the writer tries meanwhile is skipped, and tried again
//! at its next commit). It turns every [`INTERVAL`] while there is
//! something to copy, less often, down to once a second, while there is
//! not. The writer's own checkpoint stays as a backstop, moved to
//! [`BACKSTOP`] pages: the log starts over only once a checkpoint has
//! reached its end with nothing written behind it, which under steady
//! writes the writer's backstop, run right after its commit, may be the
//! first to do; it then finds little left to copy. SQLite syncs the
//! database file only then, so that sync (on the worker) still carries
//! the pages copied since the last one.
//!
//! The thread never opens the database file other than through SQLite:
//! closing any other descriptor of it would drop every lock this process
//! holds on it (POSIX), with the server's connections still open.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// How often the thread checkpoints while there is something to copy.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// The longest wait between two turns, while nothing is written.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// Pages in the log past which the writer checkpoints itself, while the
/// thread runs (SQLite's default: 1,000). It stays so once the thread
/// stops: a server's store ends with it.
pub const BACKSTOP: u32 = 10_000;

/// The checkpointing thread: stopped, and waited for, when dropped.
pub struct Checkpoints {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    /// Opens a connection to the database at `path` and starts the thread.
    pub(super) fn start(path: &Path) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        // As the writer's: the log is synced before it is copied, the
        // database file once a checkpoint reaches the log's end.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoints".into())
            .spawn(move || run(&conn, &stopped))
            .map_err(|e| StoreError::Decode(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpoints {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a checkpoint reports: whether it was busy (another checkpoint
/// ran), the pages in the log and how many of them are copied back.
pub(super) type Progress = (bool, i64, i64);

/// Runs a checkpoint in `mode` (`PASSIVE`, `FULL`...) on `conn` and says
/// how far it got. A busy checkpoint is a row, not an error.
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Progress> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
    })
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut failing = false;
    let mut last: Progress = (false, 0, 0);
    let mut wait = INTERVAL;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
        match checkpoint(conn, "PASSIVE") {
            Ok(now) => {
                failing = false;
                wait = next_wait(wait, last, now);
                last = now;
            }
            Err(e) => {
                // Said once per spell of failures, not at every turn; the
                // writer's own checkpoints go on meanwhile.
                if !failing {
                    tracing::warn!(error = %e, "background checkpoint failed");
                }
                failing = true;
                wait = (wait * 2).min(IDLE_INTERVAL);
            }
        }
    }
}

/// The wait before the next turn: [`INTERVAL`] when the log moved since
/// the last turn or the checkpoint found another running, else twice the
/// last wait, up to [`IDLE_INTERVAL`].
fn next_wait(wait: Duration, last: Progress, now: Progress) -> Duration {
    if now.0 || now != last {
        INTERVAL
    } else {
        (wait * 2).min(IDLE_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// The users the database file itself holds, ignoring the log (none
    /// while even the schema is only in the log). An error while the
    /// thread may be copying pages in: the file can be half written.
    fn users_in_file(path: &Path) -> rusqlite::Result<i64> {
        let uri = url::Url::from_file_path(path).unwrap();
        let conn = Connection::open_with_flags(
            format!("{uri}?immutable=1"),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )?;
        let schema: i64 = conn.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'",
            [],
            |r| r.get(0),
        )?;
        if schema == 0 {
            return Ok(0);
        }
        conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
    }

    fn add_user(store: &Store, name: &str) {
        let user = crate::store::NewUser {
            username: name,
            first_name: "",
            last_name: "",
            password_hash: "x",
            temporary_until: 0,
        };
        store.write(1, |w| w.insert_user(&user, 1)).unwrap();
    }

    #[test]
    fn a_commit_reaches_the_database_file_without_another_write() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("db");
        let store = Store::open(&path).unwrap();
        add_user(&store, "before");
        // Without the thread the commit stays in the log.
        std::thread::sleep(INTERVAL * 4);
        assert_eq!(
            users_in_file(&path).unwrap(),
            0,
            "a commit was checkpointed with no thread"
        );
        let checkpoints = store.checkpoint_in_background().unwrap().unwrap();
        add_user(&store, "after");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while users_in_file(&path).map_or(true, |n| n < 2) {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was never copied back"
            );
            std::thread::sleep(INTERVAL);
        }
        // Dropped, the thread ends: what comes after stays in the log.
        drop(checkpoints);
        add_user(&store, "later");
        std::thread::sleep(INTERVAL * 4);
        assert_eq!(users_in_file(&path).unwrap(), 2);
        assert_eq!(store.list_users().unwrap().len(), 3);
    }

    #[test]
    fn the_writer_checkpoints_itself_only_as_a_backstop_while_the_thread_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("db")).unwrap();
        let own = || match &store.pool {
            crate::store::pool::Pool::Lite(p) => p
                .write(|c| c.pragma_query_value(None, "wal_autocheckpoint", |r| r.get::<_, u32>(0)))
                .unwrap(),
            crate::store::pool::Pool::Pg(_) => unreachable!("a SQLite store"),
        };
        assert_eq!(own(), 1000);
        let _checkpoints = store.checkpoint_in_background().unwrap().unwrap();
        assert_eq!(own(), BACKSTOP);
    }

    #[test]
    fn turns_come_often_while_the_log_moves_and_slow_down_while_it_does_not() {
        let quiet = (false, 40, 40);
        // Moved, or another checkpoint running: soon again.
        assert_eq!(next_wait(IDLE_INTERVAL, quiet, (false, 45, 40)), INTERVAL);
        assert_eq!(next_wait(IDLE_INTERVAL, quiet, (true, -1, -1)), INTERVAL);
        assert_eq!(
            next_wait(IDLE_INTERVAL, (true, -1, -1), (true, -1, -1)),
            INTERVAL
        );
        // A log that started over moved too.
        assert_eq!(next_wait(IDLE_INTERVAL, quiet, (false, 3, 0)), INTERVAL);
        // Unchanged: twice as long each turn, up to a second.
        assert_eq!(next_wait(INTERVAL, quiet, quiet), INTERVAL * 2);
        let mut wait = INTERVAL;
        for _ in 0..20 {
            wait = next_wait(wait, quiet, quiet);
        }
        assert_eq!(wait, IDLE_INTERVAL);
    }

    #[test]
    fn an_in_memory_store_has_no_thread() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.checkpoint_in_background().unwrap().is_none());
    }
}

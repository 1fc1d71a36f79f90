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
//! This thread checkpoints every [`INTERVAL`] on its own connection, in
//! SQLite's passive mode: it never waits for, or holds up, a reader or
//! the writer. The writer's own checkpoint stays, moved to
//! [`BACKSTOP`] pages: the log starts over only after a checkpoint that
//! nothing was written behind, which under steady writes only the writer
//! makes, and it then finds little left to copy or sync. Commits also
//! reach the disk within about [`INTERVAL`], not whenever the log next
//! passes 1,000 pages.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// How often the thread checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// Pages in the log past which the writer checkpoints itself, while the
/// thread runs (SQLite's default: 1,000).
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
        // database file after.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let file = std::fs::File::open(path)
            .map_err(|e| StoreError::Decode(format!("{}: {e}", path.display())))?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoints".into())
            .spawn(move || run(&conn, &file, &stopped))
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

/// Where a checkpoint left the log: its pages, and how many of them are
/// copied into the database file.
type Progress = (i64, i64);

fn run(conn: &Connection, file: &std::fs::File, stopped: &mpsc::Receiver<()>) {
    let mut failing = false;
    let mut last: Progress = (0, 0);
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
        match turn(conn, file, &mut last) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                // Said once per spell of failures, not at every turn; the
                // writer's own checkpoints go on meanwhile.
                tracing::warn!(error = %e, "background checkpoint failed");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// One passive checkpoint (a busy answer, when another checkpoint runs,
/// is a row, not an error: the next turn catches up), then the database
/// file's sync if the checkpoint copied pages into it but stopped short
/// of the log's end (commits came meanwhile). SQLite syncs the file only
/// when a checkpoint reaches the end, which under steady writes only the
/// writer's backstop does, and that sync would then carry every page
/// copied since, on the worker.
fn turn(conn: &Connection, file: &std::fs::File, last: &mut Progress) -> Result<(), String> {
    let now: Progress = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
        .map_err(|e| e.to_string())?;
    let copied = now.1 > 0 && now != *last;
    *last = now;
    if copied && now.1 < now.0 {
        file.sync_data()
            .map_err(|e| format!("cannot sync the database file: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// The users the database file itself holds, ignoring the log (none
    /// while even the schema is only in the log).
    fn users_in_file(path: &Path) -> i64 {
        let uri = url::Url::from_file_path(path).unwrap();
        let conn = Connection::open_with_flags(
            format!("{uri}?immutable=1"),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        let schema: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if schema == 0 {
            return 0;
        }
        conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .unwrap()
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
            users_in_file(&path),
            0,
            "a commit was checkpointed with no thread"
        );
        let checkpoints = store.checkpoint_in_background().unwrap().unwrap();
        add_user(&store, "after");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while users_in_file(&path) < 2 {
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
        assert_eq!(users_in_file(&path), 2);
        assert_eq!(store.list_users().unwrap().len(), 3);
    }

    #[test]
    fn an_in_memory_store_has_no_thread() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.checkpoint_in_background().unwrap().is_none());
    }
}

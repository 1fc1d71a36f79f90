//! On PostgreSQL, a task tells the database every few seconds which
//! devices stream from this instance and that it still serves (see
//! `store/streams.rs`), and withdraws both when serving stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::domain::instances::Reported;
use crate::Server;

/// How often the instance reports; well inside
/// [`crate::store::INSTANCE_ALIVE_SECONDS`].
const EVERY: Duration = Duration::from_secs(2);

/// How long a stop waits for the last report and the withdrawal.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Reports between two removals of instances gone for a minute.
const FORGET_EVERY: u64 = 30;

/// The running task (none on SQLite).
#[derive(Default)]
pub struct Reporting {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Starts reporting on PostgreSQL.
pub fn start(server: &Arc<Server>) -> Reporting {
    if !server.store.is_postgres() {
        return Reporting::default();
    }
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(report(server.clone(), stopped));
    Reporting {
        stop: Some(stop),
        task: Some(task),
    }
}

impl Reporting {
    /// Stops reporting and removes this instance's rows, waiting at most
    /// [`STOP_WAIT`] for a database that does not answer (the rows then
    /// age out as a killed instance's do).
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
                tracing::warn!(
                    "the database did not answer: this instance's streams age out instead"
                );
                task.abort();
            }
        }
    }
}

impl Drop for Reporting {
    /// Dropped without [`Reporting::stop`] (a test's server, say): the
    /// rows age out as a killed instance's would.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn report(server: Arc<Server>, mut stopped: oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported: Reported = None;
    for n in 0u64.. {
        tokio::select! {
            _ = &mut stopped => break,
            _ = tick.tick() => {}
        }
        // Off the async workers: the set may be large, and the database
        // calls block.
        let s = server.clone();
        let last = std::mem::take(&mut reported);
        reported = tokio::task::spawn_blocking(move || {
            let now = s.report_streams(last);
            if n % FORGET_EVERY == FORGET_EVERY - 1 {
                s.withdraw_streams(false);
            }
            now
        })
        .await
        // It panicked: what the database holds is not known.
        .unwrap_or(None);
    }
    let _ = tokio::task::spawn_blocking(move || server.withdraw_streams(true)).await;
}

//! A few threads of their own for password and answer hashing (Argon2id:
//! tens of milliseconds of CPU and 19 MiB of memory each). Sign-in bursts
//! queue here instead of stalling the async workers that carry device
//! streams and pages; and since the same few threads do all the hashing,
//! the allocator keeps at most their few arenas, not one per thread of a
//! growing blocking pool.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads, started on first use.
#[derive(Default)]
pub struct Hashing {
    jobs: OnceLock<Mutex<Sender<Job>>>,
}

impl Hashing {
    /// Runs `work` on a hashing thread and waits for its result; `None`
    /// if the threads are gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.sender()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .ok()?;
        rx.await.ok()
    }

    fn sender(&self) -> &Mutex<Sender<Job>> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..threads() {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("hashing-{i}"))
                    .spawn(move || work(&rx));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a hashing thread");
                }
            }
            Mutex::new(tx)
        })
    }
}

/// One hashing thread's loop: jobs until the server goes. A job that
/// panics fails its own request only (its result never comes): the
/// thread goes on, or every later sign-in would fail with it.
fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match job {
            Ok(job) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                    tracing::error!("a hashing job panicked; its request failed");
                }
            }
            Err(_) => return,
        }
    }
}

/// Half the cores, at least one: the rest stay with the async workers.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn work_runs_on_a_hashing_thread_and_comes_back() {
        let h = Hashing::default();
        let name = h
            .run(|| std::thread::current().name().map(str::to_string))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("hashing-"));
        let all: Vec<u32> = futures_util::future::join_all((0..8).map(|i| h.run(move || i * 2)))
            .await
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert_eq!(all, [0, 2, 4, 6, 8, 10, 12, 14]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_job_that_panics_fails_alone_and_the_threads_go_on() {
        let h = Hashing::default();
        // One panic per thread: were each to end its thread, none would
        // be left.
        for _ in 0..threads() {
            let failed: Option<u32> = h.run(|| panic!("a job's own bug")).await;
            assert_eq!(failed, None, "the panicking job has no result");
        }
        assert_eq!(h.run(|| 7).await, Some(7), "the threads go on");
    }
}

//! The request an audit row is written for. The HTTP layer runs each
//! request inside [`scope`]; work handed to other threads carries the id
//! with [`on_thread`]. Rows written outside any request (commands, the
//! expiry timer) get an empty id.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static REQUEST: String;
}

thread_local! {
    static ON_THREAD: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` as request `id`.
pub async fn scope<F: Future>(id: String, f: F) -> F::Output {
    REQUEST.scope(id, f).await
}

/// Runs `f` on this thread as request `id` (a thread that does work for a
/// request, such as hashing a password).
pub fn on_thread<T>(id: String, f: impl FnOnce() -> T) -> T {
    /// Puts the thread's previous id back, even if `f` panics.
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = std::mem::take(&mut self.0);
            ON_THREAD.with(|r| *r.borrow_mut() = before);
        }
    }
    let _restore = Restore(ON_THREAD.with(|r| r.replace(id)));
    f()
}

/// The request being served here, or an empty string.
pub fn current() -> String {
    REQUEST
        .try_with(Clone::clone)
        .unwrap_or_else(|_| ON_THREAD.with(|r| r.borrow().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_follows_the_request_and_its_threads() {
        assert_eq!(current(), "");
        let seen = scope("r1".into(), async {
            let id = current();
            let on_worker = std::thread::spawn(move || on_thread(id, current))
                .join()
                .unwrap();
            (current(), on_worker)
        })
        .await;
        assert_eq!(seen, ("r1".to_string(), "r1".to_string()));
        assert_eq!(current(), "", "nothing leaks after the request");
    }
}

//! On PostgreSQL, a thread listens to what other instances announce for
//! as long as this one serves, connecting again after a break (the
//! database restarted or failed over) and catching up on what it missed.
//!
//! Its connection also holds the lock that keeps key rotations away
//! ([`crate::store::Store::hold_serving`]), taken again with each new
//! connection. A rotation can only run while that connection is broken;
//! the instance then holds keys the database no longer has, so on
//! reconnecting it checks, and stops if they changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::Event;
use crate::Server;

/// What the serving side and the following thread share.
#[derive(Default)]
pub struct Following {
    /// Set when serving stops: the thread ends within a second, and its
    /// lock goes with its connection.
    stopped: AtomicBool,
    /// Why the thread stopped the server, if it did.
    fatal: Mutex<Option<String>>,
}

impl Following {
    /// Ends the thread (within a second).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Why the instance stopped itself, if it did.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Starts the thread on PostgreSQL; `shut` stops the server.
pub fn start(server: &Arc<Server>, shut: axum_server::Handle) -> Arc<Following> {
    let following = Arc::new(Following::default());
    if !server.store.is_postgres() {
        return following;
    }
    let weak = Arc::downgrade(server);
    let (store, state) = (server.store.clone(), following.clone());
    let mut first = server.take_presence();
    let spawned = std::thread::Builder::new()
        .name("countersign-follow".into())
        .spawn(move || {
            let alive = || weak.strong_count() > 0 && !state.stopped.load(Ordering::Relaxed);
            // The keys this instance holds are no longer the database's:
            // it stops, and its next start takes the new ones.
            let keys_changed = |s: &Server| {
                let Err(e) = s.check_keys_current() else {
                    return;
                };
                tracing::error!(error = %e, "stopping");
                *state.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                state.stop();
                shut.graceful_shutdown(Some(Duration::from_secs(2)));
            };
            while alive() {
                let with_server = |f: &mut dyn FnMut(&Server)| {
                    if let Some(s) = weak.upgrade() {
                        f(&s);
                    }
                };
                let outcome = store.listen(
                    first.take(),
                    &alive,
                    &mut || {
                        with_server(&mut |s| {
                            keys_changed(s);
                            if let Err(e) = s.catch_up(crate::now()) {
                                tracing::error!(error = %e, "catching up with other instances failed");
                            }
                        })
                    },
                    &mut |event| {
                        with_server(&mut |s| {
                            let secret = matches!(event, Event::Secret(_));
                            if let Err(e) = s.on_event(event.clone()) {
                                tracing::error!(error = %e, "an announcement from another instance failed");
                            }
                            if secret {
                                keys_changed(s);
                            }
                        })
                    },
                );
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "following other instances: connection lost; again in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the thread that follows other instances");
    }
    following
}

//! What the app holds between commands: the vault, the waiting requests and
//! which push accounts are listened to.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use countersign_device::inbox::Inbox;
use countersign_device::vault::Vault;

/// The app's state, managed by Tauri.
pub struct AppState {
    /// The home folder holding `vault.db`.
    pub home: PathBuf,
    /// The open vault, once there is one.
    pub vault: tokio::sync::Mutex<Option<Vault>>,
    /// Verified requests waiting for the person.
    pub inbox: Mutex<Inbox>,
    /// Push accounts whose request channel runs.
    pub listening: Mutex<HashSet<String>>,
    /// Lock when the window is hidden.
    pub lock_when_hidden: AtomicBool,
}

impl AppState {
    /// State for the vault in `home`.
    pub fn new(home: PathBuf) -> Self {
        AppState {
            home,
            vault: tokio::sync::Mutex::new(None),
            inbox: Mutex::new(Inbox::default()),
            listening: Mutex::new(HashSet::new()),
            lock_when_hidden: AtomicBool::new(false),
        }
    }

    /// The window was hidden: lock if the setting asks for it, waiting
    /// for a command that holds the vault to finish rather than skipping.
    /// True if it locked (the window is then told, to clear what it shows).
    pub async fn hidden(&self) -> bool {
        if !self.lock_when_hidden.load(Ordering::Relaxed) {
            return false;
        }
        match self.vault.lock().await.as_mut() {
            Some(v) => {
                v.lock();
                true
            }
            None => false,
        }
    }

    /// The inbox, even if a panicking thread poisoned its lock.
    pub fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks every second whether the vault has been idle too long: if so its
/// key is forgotten at once (not at the next read, which may be a period
/// away) and the window is told (`locked`) to show the lock screen.
pub fn watch_idle<R: tauri::Runtime>(app: tauri::AppHandle<R>) {
    use tauri::{Emitter, Manager};
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let locked = app
                .state::<AppState>()
                .vault
                .lock()
                .await
                .as_mut()
                .is_some_and(Vault::lock_if_idle);
            if locked {
                tracing::info!("locked after the idle time");
                let _ = app.emit("locked", ());
            }
        }
    });
}

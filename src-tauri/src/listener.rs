//! Listens on every push account's request channel while the app runs:
//! verifies each request with the engine, queues it, tells the window,
//! raises it and shows a system notification.

use countersign_device::channel::{self, ChannelEvent};
use countersign_device::{now, push};
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_notification::Notification;
use tokio::sync::mpsc;

use crate::commands::RequestView;
use crate::AppState;

/// Starts channels for push accounts not listened to yet. Needs the vault
/// unlocked (channel tokens are sealed under the data key).
pub async fn start<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let mut guard = state.vault.lock().await;
    let Some(vault) = guard.as_mut() else { return };
    let Ok(accounts) = vault.accounts() else {
        return;
    };
    let (tx, rx) = mpsc::channel(64);
    let mut started = 0;
    for a in accounts.iter().filter(|a| a.push.is_some()) {
        let listening = || state.listening.lock().unwrap_or_else(|p| p.into_inner());
        if listening().contains(&a.id) {
            continue;
        }
        // Marked as listening only once its channel runs: an account that
        // cannot start now (a damaged account, a token not unsealed) is
        // tried again at the next start, and the window is told why.
        match channel::start(vault, a, tx.clone()) {
            Ok(_) => {
                listening().insert(a.id.clone());
                started += 1;
            }
            Err(e) => {
                tracing::warn!(account = %a.label(), error = %e, "cannot listen for requests");
                let _ = app.emit(
                    "channel",
                    serde_json::json!({"account_id": a.id, "connected": false, "error": e.to_string()}),
                );
            }
        }
    }
    drop(guard);
    if started > 0 {
        tauri::async_runtime::spawn(receive(app.clone(), rx));
    }
}

async fn receive<R: Runtime>(app: AppHandle<R>, mut rx: mpsc::Receiver<ChannelEvent>) {
    while let Some(event) = rx.recv().await {
        match event {
            ChannelEvent::Connected { account_id } => {
                let _ = app.emit(
                    "channel",
                    serde_json::json!({"account_id": account_id, "connected": true}),
                );
            }
            ChannelEvent::Disconnected {
                account_id, error, ..
            } => {
                let _ = app.emit(
                    "channel",
                    serde_json::json!({"account_id": account_id, "connected": false, "error": error}),
                );
            }
            ChannelEvent::Envelope {
                account_id,
                envelope,
            } => {
                let state = app.state::<AppState>();
                if state.inbox().has_seen(&envelope.challenge.id) {
                    continue;
                }
                let request = {
                    let mut guard = state.vault.lock().await;
                    let Some(vault) = guard.as_mut() else {
                        continue;
                    };
                    push::receive(vault, &account_id, *envelope, now()).await
                };
                let Some(request) = request else { continue };
                let view = RequestView::from(&request);
                if !state.inbox().offer(request) {
                    continue;
                }
                let _ = app.emit("request", &view);
                raise(&app);
                // The plugin is absent in command tests; the prompt still shows.
                if let Some(n) = app.try_state::<Notification<R>>() {
                    let _ = n
                        .builder()
                        .title("Are you trying to sign in?")
                        .body(format!("{} — {}", view.application, view.account))
                        .show();
                }
            }
        }
    }
}

/// Shows, unminimises and focuses the main window.
pub fn raise<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

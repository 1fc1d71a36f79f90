//! Listens on every push account's request channel while the app runs:
//! verifies each request with the engine, queues it, tells the window,
//! raises it and shows a system notification.

use countersign_core::protocol::ReceiptEvent;
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
        if !state
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(a.id.clone())
        {
            continue;
        }
        let (Ok(token), Ok(client)) = (vault.channel_token_for(&a.id), push::client_for(a)) else {
            continue;
        };
        let device_id = a
            .push
            .as_ref()
            .map(|p| p.device_id.clone())
            .unwrap_or_default();
        channel::spawn(a.id.clone(), client, device_id, token, tx.clone());
        started += 1;
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
                let request = {
                    let mut guard = state.vault.lock().await;
                    let Some(vault) = guard.as_mut() else {
                        continue;
                    };
                    let Ok(account) = vault.find(&account_id) else {
                        continue;
                    };
                    let request = push::accept(vault, &account, *envelope, now());
                    if let Some(r) = &request {
                        push::acknowledge(vault, r, ReceiptEvent::Delivered, now()).await;
                    }
                    request
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

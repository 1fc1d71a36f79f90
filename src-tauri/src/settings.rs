//! The settings screen: what is in force is read from the vault, and
//! what the person chooses is written there.

use std::sync::atomic::Ordering;
use std::time::Duration;

use countersign_device::vault::AutoLock;
use serde::Serialize;
use tauri::State;

use crate::commands::{bad_input, with_vault, Result};
use crate::AppState;

/// The auto-lock settings, as the screen shows them.
#[derive(Serialize)]
pub struct AutoLockView {
    /// Idle seconds before the app locks.
    pub seconds: u64,
    /// Whether hiding the window locks it.
    pub when_hidden: bool,
}

/// The auto-lock settings in force.
#[tauri::command]
pub async fn auto_lock(state: State<'_, AppState>) -> Result<AutoLockView> {
    let a = with_vault(&state, |v| v.auto_lock()).await?;
    Ok(AutoLockView {
        seconds: a.idle.as_secs(),
        when_hidden: a.when_hidden,
    })
}

/// Sets the idle time before the app locks, and whether hiding the
/// window locks it; both are kept in the vault.
#[tauri::command]
pub async fn set_auto_lock(
    state: State<'_, AppState>,
    seconds: u64,
    when_hidden: bool,
) -> Result<()> {
    if !(30..=86_400).contains(&seconds) {
        return Err(bad_input(
            "auto-lock must be between 30 seconds and 24 hours",
        ));
    }
    let chosen = AutoLock {
        idle: Duration::from_secs(seconds),
        when_hidden,
    };
    with_vault(&state, |v| v.set_auto_lock(chosen)).await?;
    state.lock_when_hidden.store(when_hidden, Ordering::Relaxed);
    Ok(())
}

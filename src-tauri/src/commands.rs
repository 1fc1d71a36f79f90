//! The window's commands. Each one converts data between the UI and the
//! engine; errors reach the UI as `{code, message}`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use countersign_core::protocol::ReceiptEvent;
use countersign_core::{Answer, Passcode};
use countersign_device::accounts::AccountKind;
use countersign_device::history::HistoryEntry;
use countersign_device::push::{self, Pending};
use countersign_device::vault::Vault;
use countersign_device::{now, Error};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};

use crate::AppState;

/// A command's failure as the UI receives it.
#[derive(Debug, Serialize)]
pub struct CommandError {
    /// Stable code the UI maps to a message (the engine's codes, plus
    /// `bad_input`).
    pub code: &'static str,
    /// The engine's own message, shown when the UI has none better.
    pub message: String,
}

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        CommandError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

pub(crate) fn bad_input(message: impl Into<String>) -> CommandError {
    CommandError {
        code: "bad_input",
        message: message.into(),
    }
}

pub(crate) type Result<T> = std::result::Result<T, CommandError>;

/// Where the app stands, for choosing the first screen.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `none` (first run), `locked` or `unlocked`.
    pub vault: &'static str,
    /// Wrong passcodes since the last success.
    pub failures: u32,
    /// The data folder.
    pub home: String,
    /// The app version.
    pub version: &'static str,
}

/// An account row.
#[derive(Debug, Serialize)]
pub struct AccountView {
    /// Vault id.
    pub id: String,
    /// Issuer, if any.
    pub issuer: Option<String>,
    /// Account name.
    pub name: String,
    /// `totp`, `hotp` or `push`.
    pub kind: AccountKind,
    /// Current code (TOTP and push accounts; HOTP codes are made on request).
    pub code: Option<String>,
    /// The code after it, shown from `changes_at`: the list needs the
    /// engine once a period, not every second.
    pub next_code: Option<String>,
    /// When `code` gives way to `next_code`, in milliseconds since the
    /// epoch (0 without a code).
    pub changes_at: u64,
    /// Seconds until the code changes.
    pub seconds_left: u64,
    /// The code's period.
    pub period: u32,
}

/// A waiting sign-in request as the prompt shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    /// Challenge id.
    pub id: String,
    /// The account it is for.
    pub account: String,
    /// The application signing in.
    pub application: String,
    /// Where from.
    pub ip: String,
    /// Location, if known.
    pub location: String,
    /// Created (server time, Unix seconds).
    pub created_at: u64,
    /// Expires (server time, Unix seconds).
    pub expires_at: u64,
    /// Seconds left by this device's clock, corrected for drift.
    pub seconds_left: i64,
    /// A clock warning, if any.
    pub drift_warning: Option<String>,
}

impl From<&Pending> for RequestView {
    fn from(p: &Pending) -> Self {
        let c = &p.envelope.challenge;
        RequestView {
            id: c.id.clone(),
            account: p.account.clone(),
            application: c.application.clone(),
            ip: c.ip.clone(),
            location: c.location.clone(),
            created_at: c.created_at,
            expires_at: c.expires_at,
            seconds_left: c.expires_at as i64 - (now() as i64 + p.drift),
            drift_warning: p.drift_warning(),
        }
    }
}

/// Runs `f` on the open vault, opening it from disk first if needed.
pub(crate) async fn with_vault<T>(
    state: &AppState,
    f: impl FnOnce(&mut Vault) -> std::result::Result<T, Error>,
) -> Result<T> {
    let mut guard = state.vault.lock().await;
    if guard.is_none() {
        *guard = Some(Vault::open(&state.home)?);
    }
    let vault = guard.as_mut().ok_or(Error::Locked)?;
    Ok(f(vault)?)
}

/// Where the app stands.
#[tauri::command]
pub async fn status(state: State<'_, AppState>) -> Result<Status> {
    let mut guard = state.vault.lock().await;
    if guard.is_none() && Vault::file(&state.home).exists() {
        *guard = Some(Vault::open(&state.home)?);
    }
    let (vault, failures) = match guard.as_ref() {
        None => ("none", 0),
        Some(v) if v.is_unlocked() => ("unlocked", 0),
        Some(v) => ("locked", v.failures()?),
    };
    Ok(Status {
        vault,
        failures,
        home: state.home.display().to_string(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// First run: creates the vault under a new passcode.
#[tauri::command]
pub async fn create_vault<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passcode: String,
    confirm: String,
) -> Result<()> {
    // Moved into wiped types at once: neither copy outlives the call.
    let (passcode, confirm) = (Passcode::new(passcode), Passcode::new(confirm));
    if !passcode.matches(&confirm) {
        return Err(bad_input("the two passcodes differ"));
    }
    let vault = Vault::create(
        &state.home,
        &passcode,
        countersign_core::vault::DEFAULT_ITERATIONS,
        now(),
    )?;
    *state.vault.lock().await = Some(vault);
    crate::listener::start(&app).await;
    Ok(())
}

/// Unlocks with the passcode and starts listening for requests.
#[tauri::command]
pub async fn unlock<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    passcode: String,
) -> Result<()> {
    let passcode = Passcode::new(passcode);
    let auto = with_vault(&state, |v| {
        v.unlock(&passcode, now())?;
        v.auto_lock()
    })
    .await?;
    state
        .lock_when_hidden
        .store(auto.when_hidden, Ordering::Relaxed);
    crate::listener::start(&app).await;
    Ok(())
}

/// Locks now.
#[tauri::command]
pub async fn lock(state: State<'_, AppState>) -> Result<()> {
    if let Some(v) = state.vault.lock().await.as_mut() {
        v.lock();
    }
    Ok(())
}

/// A tap or a key in the window: the auto-lock timer starts again (codes
/// read and requests arriving do not count: an unattended window locks).
#[tauri::command]
pub async fn activity(state: State<'_, AppState>) -> Result<()> {
    if let Some(v) = state.vault.lock().await.as_mut() {
        v.touch();
    }
    Ok(())
}

/// Every account with its current code.
#[tauri::command]
pub async fn accounts(state: State<'_, AppState>) -> Result<Vec<AccountView>> {
    with_vault(&state, |v| {
        let t = now();
        v.accounts()?
            .into_iter()
            .map(|a| {
                let (code, next) = match a.kind {
                    AccountKind::Hotp => (None, None),
                    _ => {
                        let code = v.code(&a, t)?;
                        let next = v.code(&a, t + code.seconds_left)?;
                        (Some(code), Some(next))
                    }
                };
                Ok(AccountView {
                    seconds_left: code.as_ref().map_or(0, |c| c.seconds_left),
                    changes_at: code.as_ref().map_or(0, |c| (t + c.seconds_left) * 1000),
                    code: code.map(|c| c.code),
                    next_code: next.map(|c| c.code),
                    id: a.id,
                    issuer: a.issuer,
                    name: a.name,
                    kind: a.kind,
                    period: a.period,
                })
            })
            .collect()
    })
    .await
}

/// Makes the next code of a counter-based account.
#[tauri::command]
pub async fn next_hotp(state: State<'_, AppState>, id: String) -> Result<String> {
    with_vault(&state, |v| {
        let a = v.find(&id)?;
        Ok(v.code(&a, now())?.code)
    })
    .await
}

/// Renames an account.
#[tauri::command]
pub async fn rename(state: State<'_, AppState>, id: String, name: String) -> Result<()> {
    with_vault(&state, |v| v.rename(&id, &name)).await
}

/// Moves an account to `position` (from 0).
#[tauri::command]
pub async fn move_account(state: State<'_, AppState>, id: String, position: usize) -> Result<()> {
    with_vault(&state, |v| v.move_to(&id, position)).await
}

/// Removes an account (a push account is removed from its server too);
/// returns a warning when the server could not be told.
#[tauri::command]
pub async fn remove(state: State<'_, AppState>, id: String) -> Result<Option<String>> {
    let mut guard = state.vault.lock().await;
    let vault = guard.as_mut().ok_or(Error::Locked)?;
    let account = vault.find(&id)?;
    let warning = push::remove_account(vault, &account).await?;
    state
        .listening
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    Ok(warning.map(|e| e.to_string()))
}

/// Waiting sign-in requests, oldest first; expired ones leave the queue.
#[tauri::command]
pub fn requests(state: State<'_, AppState>) -> Vec<RequestView> {
    let mut inbox = state.inbox();
    inbox.expire(now());
    inbox.waiting().iter().map(RequestView::from).collect()
}

/// The prompt for request `id` is on screen: the server is told (signed
/// "shown" receipt), so the help desk sees the request reached the person.
#[tauri::command]
pub async fn request_shown(state: State<'_, AppState>, id: String) -> Result<()> {
    let request = state
        .inbox()
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::NoChallenge(id.clone()))?;
    let mut guard = state.vault.lock().await;
    let vault = guard.as_mut().ok_or(Error::Locked)?;
    push::acknowledge(vault, &request, ReceiptEvent::Shown, now()).await;
    Ok(())
}

/// The verdict on an answer.
#[derive(Debug, Serialize)]
pub struct AnswerView {
    /// The server's verdict: approved, denied, reported, number_mismatch, expired.
    pub status: String,
}

/// Answers a request: `approve` (with the number), `deny`, `report` or
/// `cannot_see_number` (see [`Answer::parse`]). Needs the passcode, which
/// unseals the device key.
#[tauri::command]
pub async fn answer(
    state: State<'_, AppState>,
    id: String,
    decision: String,
    number: Option<String>,
    passcode: String,
) -> Result<AnswerView> {
    let answer =
        Answer::parse(&decision, number.as_deref()).map_err(|e| bad_input(e.to_string()))?;
    let request = state
        .inbox()
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::NoChallenge(id.clone()))?;
    let passcode = Passcode::new(passcode);
    let verdict = {
        let mut guard = state.vault.lock().await;
        let vault = guard.as_mut().ok_or(Error::Locked)?;
        push::answer(vault, &request, answer, &passcode, now()).await
    };
    match verdict {
        Ok(v) => {
            state.inbox().remove(&id);
            Ok(AnswerView {
                status: v.status.as_str().to_string(),
            })
        }
        // A wrong passcode keeps the request so the person can retry.
        Err(e) => Err(e.into()),
    }
}

/// The activity history, newest first.
#[tauri::command]
pub async fn history(state: State<'_, AppState>) -> Result<Vec<HistoryEntry>> {
    with_vault(&state, |v| v.history()).await
}

/// Changes the passcode.
#[tauri::command]
pub async fn change_passcode(
    state: State<'_, AppState>,
    old: String,
    new: String,
    confirm: String,
) -> Result<()> {
    let (old, new, confirm) = (
        Passcode::new(old),
        Passcode::new(new),
        Passcode::new(confirm),
    );
    if !new.matches(&confirm) {
        return Err(bad_input("the two new passcodes differ"));
    }
    with_vault(&state, |v| v.change_passcode(&old, &new, now())).await
}

/// Writes an encrypted backup; returns how many accounts it holds.
#[tauri::command]
pub async fn export_backup(
    state: State<'_, AppState>,
    path: String,
    passphrase: String,
) -> Result<usize> {
    let passphrase = Passcode::new(passphrase);
    with_vault(&state, |v| v.export(&PathBuf::from(path), &passphrase)).await
}

/// Reads an encrypted backup; returns the labels added and skipped.
#[tauri::command]
pub async fn import_backup(
    state: State<'_, AppState>,
    path: String,
    passphrase: String,
) -> Result<(Vec<String>, Vec<String>)> {
    let passphrase = Passcode::new(passphrase);
    with_vault(&state, |v| {
        let r = v.import(&PathBuf::from(path), &passphrase, now())?;
        Ok((r.added, r.duplicates))
    })
    .await
}

pub(crate) fn device_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .map_or_else(
            || "Countersign app".into(),
            |h| format!("Countersign app on {h}"),
        )
}

pub(crate) fn platform() -> &'static str {
    std::env::consts::OS
}

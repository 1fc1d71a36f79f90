//! Adding accounts: what a pasted, typed or scanned text would add, adding
//! it, reading QR codes from an image or the screen, and judging the
//! passcode chosen at first start.

use std::time::Duration;

use countersign_core::Passcode;
use countersign_device::intake::{Added, Intake, PreviewItem};
use countersign_device::{now, scanner, screen, Error};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};
use zeroize::Zeroizing;

use crate::commands::{bad_input, device_name, platform, CommandError, Result};
use crate::AppState;

/// How strong a passcode being chosen is, and what to say about it.
#[derive(Debug, Clone, Serialize)]
pub struct PasscodeHint {
    /// `too_short`, `fair` or `strong`.
    pub strength: countersign_core::secret::Strength,
    /// The words to show under the field.
    pub hint: &'static str,
}

/// Judges a passcode while it is typed (the rule lives in the engine, not
/// in the page).
#[tauri::command]
pub fn passcode_strength(passcode: Zeroizing<String>) -> PasscodeHint {
    let strength = Passcode::new(passcode.as_str()).strength();
    PasscodeHint {
        strength,
        hint: strength.hint(),
    }
}

/// What a pasted, typed or scanned text would add: a link, or a secret key
/// typed by hand with the account's `name`.
#[tauri::command]
pub fn preview(text: Zeroizing<String>, name: Option<String>) -> Result<Vec<PreviewItem>> {
    Ok(Intake::from_input(&text, name.as_deref())?.preview())
}

/// Adds what the text describes; an enrollment activates with its server.
#[tauri::command]
pub async fn add<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    text: Zeroizing<String>,
    name: Option<String>,
    passcode: Option<String>,
) -> Result<Added> {
    let intake = Intake::from_input(&text, name.as_deref())?;
    let passcode = passcode.map(Passcode::new);
    let added = {
        let mut guard = state.vault.lock().await;
        let vault = guard.as_mut().ok_or(Error::Locked)?;
        intake
            .add(vault, passcode.as_ref(), &device_name(), platform(), now())
            .await?
    };
    crate::listener::start(&app).await;
    Ok(added)
}

/// Decodes the QR codes in an image, given as a `data:` URL or base64.
#[tauri::command]
pub async fn scan_image(image: String) -> Result<Vec<String>> {
    let b64 = image.split_once(',').map_or(image.as_str(), |(_, b)| b);
    let bytes = data_encoding::BASE64
        .decode(b64.trim().as_bytes())
        .map_err(|_| bad_input("the image could not be read"))?;
    let scan = tauri::async_runtime::spawn_blocking(move || {
        scanner::scan_bytes(bytes, scanner::DEFAULT_BUDGET)
    })
    .await
    .map_err(|_| CommandError::from(Error::ScannerStopped))??;
    found(scan, "in the image", "try a sharper or closer image")
}

/// Decodes the QR codes on the screen. The window steps aside while the
/// screen is captured, so it does not cover the sign-in page's code.
#[tauri::command]
pub async fn scan_screen<R: Runtime>(window: tauri::WebviewWindow<R>) -> Result<Vec<String>> {
    let visible = window.is_visible().unwrap_or(false);
    if visible {
        let _ = window.hide();
        // Give the display a moment to repaint what the window covered.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let scan = tauri::async_runtime::spawn_blocking(|| screen::scan_screen(SCREEN_BUDGET)).await;
    if visible {
        let _ = window.show();
        let _ = window.set_focus();
    }
    let scan = scan.map_err(|_| CommandError::from(Error::ScannerStopped))??;
    found(
        scan,
        "on the screen",
        "make the code larger or move it to the main screen",
    )
}

/// A whole screen is larger than a photo of a code: give it more time.
const SCREEN_BUDGET: Duration = Duration::from_secs(3);

/// The payloads of a scan, or a message saying nothing was found `where`.
fn found(scan: countersign_core::qr::Scan, place: &str, hint: &str) -> Result<Vec<String>> {
    if scan.payloads.is_empty() {
        return Err(bad_input(if scan.out_of_time {
            format!("no QR code found {place} in time: {hint}")
        } else {
            format!("no QR code found {place}")
        }));
    }
    Ok(scan.payloads)
}

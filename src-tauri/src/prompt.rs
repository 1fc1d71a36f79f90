//! The request prompt's checks that run before the passcode is asked,
//! with the engine's rules.

use crate::commands::{bad_input, Result};

/// Checks the number typed on a request prompt before the passcode is
/// asked: the engine's rule (two digits, 10–99), not a copy in the UI.
#[tauri::command]
pub fn check_number(number: String) -> Result<u8> {
    countersign_core::Number::parse(&number)
        .map(countersign_core::Number::get)
        .map_err(|e| match e {
            countersign_core::Error::Field { problem, .. } => bad_input(problem),
            other => bad_input(other.to_string()),
        })
}

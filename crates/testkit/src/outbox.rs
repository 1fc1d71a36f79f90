//! The server's telephony outbox, read as the officer's phone: the newest
//! text or call and the code it carries.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The newest message in the outbox folder `dir` (waiting up to 10 s for
/// one): (channel, the six-digit code).
pub fn newest(dir: &Path) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "json"));
        files.sort();
        if let Some(f) = files.pop() {
            break f;
        }
        assert!(Instant::now() < deadline, "nothing in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let text = v["text"].as_str().unwrap();
    (v["channel"].as_str().unwrap().to_string(), code_in(text))
}

/// The first six-digit run in `text`, read with spaces between digits
/// removed (a call spells the code out).
pub fn code_in(text: &str) -> String {
    let digits: Vec<char> = text.chars().filter(|c| *c != ' ').collect();
    digits
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

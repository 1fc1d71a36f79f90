//! QR scanning off the caller's thread, under a time budget.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use countersign_core::qr::{self, Scan};
use image::GrayImage;
use zeroize::Zeroize;

use crate::Error;

/// How long a scan may take by default before it answers "no QR code found".
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(1);

/// Scans image bytes (PNG or JPEG) on a worker thread, within `budget`.
pub fn scan_bytes(bytes: Vec<u8>, budget: Duration) -> Result<Scan, Error> {
    on_worker(budget, move |out_of_time| {
        qr::scan_bytes(&bytes, out_of_time)
    })
}

/// Scans a grey frame (a camera frame or a screen capture) on a worker
/// thread, within `budget`. The frame is wiped afterwards; the scanner's
/// working copies of it are freed but not wiped.
pub fn scan_frame(frame: GrayImage, budget: Duration) -> Result<Scan, Error> {
    on_worker(budget, move |out_of_time| {
        let scan = qr::scan(&frame, out_of_time);
        frame.into_raw().zeroize();
        Ok(scan)
    })
}

/// Runs a scan on a worker thread. The core checks the budget between
/// steps; should one step still overrun, the caller gets its answer at the
/// budget (plus a grace of a quarter of it) and the worker's late result is
/// dropped.
fn on_worker<F>(budget: Duration, scan: F) -> Result<Scan, Error>
where
    F: FnOnce(&qr::OutOfTime<'_>) -> Result<Scan, countersign_core::Error> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::Builder::new()
        .name("qr-scan".into())
        .spawn(move || {
            let result = scan(&|| start.elapsed() >= budget);
            // The receiver may have given up already; nothing to do then.
            let _ = tx.send(result);
        })
        .map_err(|_| Error::ScannerStopped)?;
    match rx.recv_timeout(budget + budget / 4) {
        Ok(result) => Ok(result?),
        Err(mpsc::RecvTimeoutError::Timeout) => Ok(Scan {
            payloads: Vec::new(),
            out_of_time: true,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::ScannerStopped),
    }
}

/// Reads and scans an image file.
pub fn scan_file(path: &Path, budget: Duration) -> Result<Scan, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::File {
        path: path.display().to_string(),
        source,
    })?;
    scan_bytes(bytes, budget).map_err(|e| match e {
        Error::Core(core) => Error::Image {
            path: path.display().to_string(),
            reason: core.to_string(),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/qr")
            .join(name)
    }

    #[test]
    fn scans_a_file() {
        let scan = scan_file(&fixture("clean_short80.png"), Duration::from_secs(10)).unwrap();
        assert_eq!(
            scan.payloads,
            ["otpauth://totp/mb1357%40alacop.gov?secret=JBSWY3DPEHPK3PXP&issuer=ALEA"]
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = scan_file(Path::new("/nonexistent/x.png"), DEFAULT_BUDGET).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/x.png: "), "{err}");
    }

    #[test]
    fn a_file_that_is_no_image_names_the_path() {
        let err = scan_file(&fixture("manifest.tsv"), DEFAULT_BUDGET).unwrap_err();
        assert!(
            err.to_string().contains("manifest.tsv: unreadable image"),
            "{err}"
        );
    }

    #[test]
    fn the_caller_gets_an_answer_at_the_budget() {
        let bytes = std::fs::read(fixture("stress/noise_2560x1440_seed611.png")).unwrap();
        let start = Instant::now();
        let scan = scan_bytes(bytes, Duration::from_millis(50)).unwrap();
        assert!(scan.payloads.is_empty());
        assert!(
            start.elapsed() < Duration::from_millis(50) * 20,
            "{:?}",
            start.elapsed()
        );
    }
}

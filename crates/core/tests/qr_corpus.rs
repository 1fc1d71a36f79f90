//! The QR corpus in tests/fixtures/qr: camera frames, screenshots and
//! negatives with a manifest of what each holds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use countersign_core::qr;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qr")
}

struct Case {
    file: String,
    expected: Vec<String>,
}

fn manifest(name: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(corpus().join(name)).expect("manifest is readable");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let mut expected: Vec<String> = cols[1]
                .split("||")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            expected.sort();
            Case {
                file: cols[0].to_string(),
                expected,
            }
        })
        .collect()
}

fn scan_file(path: &PathBuf, budget: Duration) -> qr::Scan {
    let bytes = std::fs::read(path).expect("fixture is readable");
    let start = Instant::now();
    qr::scan_bytes(&bytes, &|| start.elapsed() > budget).expect("fixture decodes as an image")
}

#[test]
fn corpus_decodes_at_least_38_of_39_with_no_false_positives() {
    let cases = manifest("manifest.tsv");
    assert_eq!(cases.len(), 44, "the corpus has 44 images");
    let (mut decoded, mut positives, mut report) = (0, 0, String::new());
    for case in &cases {
        // A generous budget: debug builds run the scanner's own loops unoptimised.
        let scan = scan_file(&corpus().join(&case.file), Duration::from_secs(10));
        let mut got = scan.payloads.clone();
        got.sort();
        if case.expected.is_empty() {
            assert!(got.is_empty(), "false positive in {}: {got:?}", case.file);
            continue;
        }
        positives += 1;
        if got == case.expected {
            decoded += 1;
        } else {
            report.push_str(&format!("  {}: got {got:?}\n", case.file));
            // A wrong payload is worse than none.
            assert!(
                got.iter().all(|p| case.expected.contains(p)),
                "wrong payload in {}: {got:?}",
                case.file
            );
        }
    }
    eprintln!("QR corpus: {decoded}/{positives} decoded\n{report}");
    assert_eq!(positives, 39);
    assert!(decoded >= 38, "only {decoded}/39 decoded:\n{report}");
}

#[test]
fn noise_frames_end_within_the_budget() {
    for case in manifest("stress/stress.tsv") {
        let budget = Duration::from_secs(1);
        let start = Instant::now();
        let scan = scan_file(&corpus().join("stress").join(&case.file), budget);
        let took = start.elapsed();
        assert!(scan.payloads.is_empty(), "{}: nothing to find", case.file);
        // The deadline is checked between steps, so one step may run past it.
        assert!(took < budget * 3, "{} took {took:?}", case.file);
    }
}

#[test]
fn an_expired_budget_stops_before_any_work() {
    let scan = scan_file(&corpus().join("clean_totp_sha1.png"), Duration::ZERO);
    assert!(scan.out_of_time);
    assert!(scan.payloads.is_empty());
}

#[test]
fn unreadable_images_are_an_error() {
    let err = qr::scan_bytes(b"not an image", &|| false).unwrap_err();
    assert!(err.to_string().starts_with("unreadable image"), "{err}");
}

#[test]
fn frames_with_no_width_or_height_read_nothing() {
    // Small (the whole small-frame cascade) and large (the first look on two
    // threads) frames of one pixel or none across.
    for (w, h) in [
        (0, 0),
        (0, 40),
        (40, 0),
        (1, 1),
        (1, 600_000),
        (600_000, 1),
        (0, 900_000),
    ] {
        let scan = qr::scan(&image::GrayImage::new(w, h), &|| false);
        assert_eq!(scan, qr::Scan::default(), "{w}x{h}");
    }
}

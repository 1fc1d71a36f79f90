//! The browser-rendered corpus (tests/fixtures/qr-browser, drawn by
//! `scripts/qr-browser-corpus.sh`): screenshots of pages with zero, one or
//! two QR codes at several window sizes, zooms, scale factors and themes.
//! The scanner must read every code Debian's `zbarimg` reads (with its
//! inverted-image option), and nothing that is not on the page.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use countersign_core::qr;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qr-browser")
}

/// (file, the payloads drawn on the page) from the manifest.
fn manifest() -> Vec<(String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(corpus().join("manifest.tsv")).expect("the manifest");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let drawn = cols[1].split_whitespace().map(str::to_string).collect();
            (cols[0].to_string(), drawn)
        })
        .collect()
}

/// What `zbarimg` reads in `path`, trying the inverted image as well.
fn zbarimg(path: &Path) -> BTreeSet<String> {
    let out = Command::new("zbarimg")
        .args([
            "--nodbus",
            "--quiet",
            "--raw",
            "-Sdisable",
            "-Sqrcode.enable",
            "-Stest-inverted",
        ])
        .arg(path)
        .output()
        .expect("zbarimg (Debian package zbar-tools; ./test.sh installs it)");
    // 0: read something; 4: read nothing. Anything else is a failure of
    // zbarimg itself, which must not pass for "nothing to read".
    assert!(
        matches!(out.status.code(), Some(0 | 4)),
        "zbarimg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_scanner_reads_every_code_zbarimg_reads_and_nothing_else() {
    let cases = manifest();
    assert!(cases.len() >= 30, "only {} pictures", cases.len());
    let mut report = String::new();
    let mut failures = Vec::new();
    let (mut ours_total, mut zbar_total, mut drawn_total) = (0, 0, 0);
    for (file, drawn) in &cases {
        let bytes = std::fs::read(corpus().join(file)).expect("the picture");
        let start = Instant::now();
        // Generous: a debug build; the time budget is the benchmark's.
        let scan = qr::scan_bytes(&bytes, &|| start.elapsed() > Duration::from_secs(10))
            .expect("the picture decodes");
        let ours: BTreeSet<String> = scan.payloads.into_iter().collect();
        let zbar = zbarimg(&corpus().join(file));
        ours_total += ours.len();
        zbar_total += zbar.len();
        drawn_total += drawn.len();
        report.push_str(&format!(
            "{file}: drawn {}, zbarimg {}, scanner {}\n",
            drawn.len(),
            zbar.len(),
            ours.len()
        ));
        if let Some(extra) = ours.difference(drawn).next() {
            failures.push(format!("{file}: read {extra:?}, which is not on the page"));
        }
        for missed in zbar.difference(&ours) {
            failures.push(format!(
                "{file}: zbarimg reads {missed:?}, the scanner does not"
            ));
        }
    }
    eprintln!("{report}codes drawn {drawn_total}, read by zbarimg {zbar_total}, by the scanner {ours_total}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Both readers really read: zbarimg some, the scanner nearly all.
    assert!(zbar_total >= 5, "zbarimg read only {zbar_total}");
    assert!(
        ours_total + 1 >= drawn_total,
        "the scanner read {ours_total} of {drawn_total}"
    );
}

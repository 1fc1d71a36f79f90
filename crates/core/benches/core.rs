//! Criterion benchmarks of the core: `cargo bench -p countersign-core`.
//!
//! - `qr/screenshot_1920x1080`: scan of a sign-in page screenshot holding one
//!   QR code (target: median ≤ 40 ms).
//! - `qr_browser/*`: scan of each 1920-pixel-wide capture of the
//!   browser-rendered corpus (tests/fixtures/qr-browser; target: median
//!   ≤ 40 ms, none over 1 s).
//! - `otp/*`: TOTP generation and verification (target ≥ 1,000,000 codes/s).
//! - `vault/derive_default`: passcode derivation at the default iterations
//!   (should sit between 100 and 500 ms).

use std::hint::black_box;
use std::time::Duration;

use countersign_core::otp::{Algorithm, Otp, OtpKind};
use countersign_core::qr;
use countersign_core::vault::{KdfParams, DEFAULT_ITERATIONS};
use countersign_core::{Passcode, SecretBytes};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/qr")
        .join(name);
    std::fs::read(path).expect("fixture is readable")
}

fn qr_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("qr");
    group.sample_size(30);
    for name in ["screenshot_totp_sha1.png", "screenshot_enroll_url.png"] {
        let frame = qr::decode_image(&fixture(name)).expect("fixture decodes");
        assert_eq!((frame.width(), frame.height()), (1920, 1080));
        group.bench_function(format!("screenshot_1920x1080/{name}"), |b| {
            b.iter(|| {
                let scan = qr::scan(black_box(&frame), &|| false);
                assert_eq!(scan.payloads.len(), 1);
            })
        });
    }
    let png = fixture("screenshot_totp_sha1.png");
    group.bench_function("screenshot_1920x1080/png_decode_and_scan", |b| {
        b.iter(|| qr::scan_bytes(black_box(&png), &|| false).expect("decodes"))
    });
    group.finish();
}

fn qr_browser(c: &mut Criterion) {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/qr-browser");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the browser corpus")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("_1920_"))
        .collect();
    names.sort();
    let mut group = c.benchmark_group("qr_browser");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    for name in names {
        let frame =
            qr::decode_image(&std::fs::read(dir.join(&name)).expect("readable")).expect("decodes");
        group.bench_function(name, |b| b.iter(|| qr::scan(black_box(&frame), &|| false)));
    }
    group.finish();
}

fn otp(c: &mut Criterion) {
    let secret = SecretBytes::new(b"12345678901234567890".to_vec());
    let otp = Otp::new(&secret, Algorithm::Sha1, 6, OtpKind::Totp { period: 30 }).expect("valid");
    let mut group = c.benchmark_group("otp");
    group.throughput(Throughput::Elements(1));
    let mut t = 1_800_000_000u64;
    group.bench_function("totp_generate_sha1", |b| {
        b.iter(|| {
            t += 30;
            black_box(otp.code(black_box(t)))
        })
    });
    let code = otp.code(1_800_000_000);
    group.bench_function("totp_verify_sha1_skew1", |b| {
        b.iter(|| black_box(otp.verify_totp(black_box(&code), 1_800_000_000, 1)))
    });
    group.finish();
}

fn vault(c: &mut Criterion) {
    let mut group = c.benchmark_group("vault");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let params = KdfParams {
        iterations: DEFAULT_ITERATIONS,
        salt: vec![7; 16],
    };
    let passcode = Passcode::new("246810");
    group.bench_function("derive_default_600k", |b| {
        b.iter(|| params.derive(black_box(&passcode)).expect("derives"))
    });
    group.finish();
}

criterion_group!(benches, qr_scan, qr_browser, otp, vault);
criterion_main!(benches);

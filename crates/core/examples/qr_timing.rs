//! The best of five scans of each picture of the browser corpus whose name
//! contains the first argument (default `_1920_`), and their median:
//!
//! ```sh
//! cargo run --release -p countersign-core --example qr_timing -- _1920_
//! ```
//!
//! Criterion (`cargo bench -p countersign-core --bench core -- qr`) gives
//! means; the best of five shows a scan without the machine's other load.

use std::time::Instant;

use countersign_core::qr;

fn main() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/qr-browser");
    let pattern = std::env::args().nth(1).unwrap_or_else(|| "_1920_".into());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the browser corpus (tests/fixtures/qr-browser)")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(&pattern) && (n.ends_with(".png") || n.ends_with(".jpg")))
        .collect();
    names.sort();
    let mut times = Vec::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).expect("a readable picture");
        let frame = qr::decode_image(&bytes).expect("a picture that decodes");
        let mut best = f64::MAX;
        let mut read = 0;
        for _ in 0..5 {
            let start = Instant::now();
            read = qr::scan(&frame, &|| false).payloads.len();
            best = best.min(start.elapsed().as_secs_f64() * 1000.0);
        }
        println!("{name:40} {read} code(s) {best:7.1} ms");
        times.push(best);
    }
    times.sort_by(f64::total_cmp);
    match times.get(times.len() / 2) {
        Some(median) => println!("median {median:.1} ms over {} pictures", times.len()),
        None => println!("no picture matches {pattern:?}"),
    }
}

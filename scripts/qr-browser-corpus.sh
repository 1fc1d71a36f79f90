#!/usr/bin/env bash
# Regenerates the browser-rendered QR corpus (tests/fixtures/qr-browser/):
# pages with zero, one or two QR codes drawn by headless Debian chromium at
# several window sizes, zoom levels, device scale factors and themes, saved
# as PNG or JPEG (quality 50), with manifest.tsv listing what each holds.
# crates/core/tests/qr_browser.rs scans them beside Debian's zbarimg.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
apt_need chromium chromium-driver
say "Drawing the corpus in headless chromium (crates/e2e/examples/qr_corpus.rs)"
cargo run --locked -q -p countersign-e2e --example qr_corpus -- tests/fixtures/qr-browser
say "Wrote $(ls tests/fixtures/qr-browser | wc -l) files to tests/fixtures/qr-browser"

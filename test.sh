#!/usr/bin/env bash
# Runs every check and test of Countersign: formatting, lints, unit,
# integration and end-to-end tests. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

apt_need $APT_BUILD $APT_TAURI $APT_TEST
rust_need
cargo_tool_need tauri-driver tauri-driver "^2"
cargo_tool_need tauri-cli cargo-tauri "^2"
npm_need crates/e2e
scripts/interop-venv.sh

say "Checking formatting (cargo fmt --check)"
cargo fmt --all -- --check

say "Linting (cargo clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "Checking the layers, HTTP statuses and file sizes (scripts/check-layers.sh)"
scripts/check-layers.sh

say "Packaging the app as a .deb (Tauri bundler, debug build) for the package test"
(cd src-tauri && cargo tauri build --debug --bundles deb --ci --no-binary-patching -- --locked)

say "Building every program the end-to-end tests start (cargo build --workspace --bins)"
cargo build --workspace --bins --locked

say "Running all tests (cargo test --workspace; the app's window tests run under Xvfb)"
cargo test --workspace --locked

say "All checks passed"

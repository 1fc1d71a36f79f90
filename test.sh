#!/usr/bin/env bash
# Runs every check and test of Countersign: formatting, lints, unit,
# integration and end-to-end tests. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

apt_need $APT_BUILD $APT_TAURI $APT_TEST
rust_need
cargo_tool_need tauri-driver tauri-driver

say "Checking formatting (cargo fmt --check)"
cargo fmt --all -- --check

say "Linting (cargo clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "Running all tests (cargo test --workspace; the app's window tests run under Xvfb)"
cargo test --workspace --locked

say "All checks passed"

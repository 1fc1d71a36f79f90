#!/usr/bin/env bash
# Sets up Countersign on this machine and runs it: installs what is missing,
# builds in release mode, and starts what is built so far.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

apt_need $APT_BUILD $APT_TAURI
rust_need

say "Building Countersign (release; the first build takes a few minutes)"
cargo build --release --locked --bin countersign

say "The authenticator CLI is ready: target/release/countersign"
say "Scanning a sample enrollment screenshot to show it working"
target/release/countersign scan tests/fixtures/qr/screenshot_totp_sha1.png

cat >&2 <<'MSG'

Countersign is built. Try:
  target/release/countersign scan IMAGE...   decode QR codes in screenshots or photos
  target/release/countersign --help          everything the CLI does
The sign-in server and the desktop app are being built (see docs/ARCHITECTURE.md).
MSG

#!/usr/bin/env bash
# Creates target/interop-venv: Debian's Python with the pinned packages of
# the single sign-on interop test (Python's authlib as a relying party,
# crates/server/tests/oidc/authlib_rp.py). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

VENV=target/interop-venv
REQ=crates/server/tests/oidc/requirements.txt
apt_need python3 python3-venv
if [ -x "$VENV/bin/python" ] && [ "$VENV/.installed" -nt "$REQ" ]; then
  say "Python interop packages present in $VENV"
  exit 0
fi
say "Creating $VENV with authlib for the interop test (pip, from PyPI)"
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
touch "$VENV/.installed"

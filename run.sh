#!/usr/bin/env bash
# Sets up Countersign on this machine and runs it: installs what is missing,
# builds in release mode, starts the sign-in server (embedded SQLite, HTTPS
# on 127.0.0.1:8443 with a self-signed certificate), creates a demo officer,
# starts "LETS (demo)", an application that signs in with Countersign
# (http://127.0.0.1:8090, the place to start, as the seed guide does), then
# opens the Countersign app when there is a display, or enrolls the
# headless authenticator (the `countersign` CLI) and waits for requests.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh

apt_need $APT_BUILD $APT_TAURI
rust_need

say "Building Countersign (release; the first build takes a few minutes)"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  cargo build --release --locked --bin countersign --bin countersign-server --bin lets-demo --bin countersign-app
else
  cargo build --release --locked --bin countersign --bin countersign-server --bin lets-demo
fi
SERVER=target/release/countersign-server
CLI=target/release/countersign
export COUNTERSIGN_DATA="${COUNTERSIGN_DATA:-$PWD/.countersign/server}"
export COUNTERSIGN_HOME="${COUNTERSIGN_HOME:-$PWD/.countersign/device}"
DEMO_USER="${DEMO_USER:-cs0101}"

say "Starting the sign-in server (data in $COUNTERSIGN_DATA)"
# A runtime file whose server is gone (killed, crashed) is left over: its
# pid could come round again and pass for the new server's.
OLD_PID=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$COUNTERSIGN_DATA/server.json" 2>/dev/null || true)
if [ -n "$OLD_PID" ] && ! kill -0 "$OLD_PID" 2>/dev/null; then
  rm -f "$COUNTERSIGN_DATA/server.json"
fi
"$SERVER" serve &
SERVER_PID=$!
DEMO_PID=
# On the way out (the app closed, Ctrl-C) stop both, keeping the script's
# own exit status: a server already gone, or one stopped by this signal,
# is not a failure of the script.
trap 'status=$?; set +e; kill $SERVER_PID $DEMO_PID 2>/dev/null; wait $SERVER_PID $DEMO_PID 2>/dev/null; exit $status' EXIT
# Ready when the runtime file names this process (a file left by another
# server, or by one that crashed, does not count).
for _ in $(seq 1 300); do
  kill -0 $SERVER_PID 2>/dev/null || { echo "error: the server did not start (its message is above)" >&2; exit 1; }
  grep -qs "\"pid\": $SERVER_PID\b" "$COUNTERSIGN_DATA/server.json" && break
  sleep 0.1
done
grep -qs "\"pid\": $SERVER_PID\b" "$COUNTERSIGN_DATA/server.json" || { echo "error: the server did not start within 30 s" >&2; exit 1; }

if ! "$SERVER" user show "$DEMO_USER" >/dev/null 2>&1; then
  say "Creating the demo officer $DEMO_USER (Clark Kent); the temporary password follows"
  "$SERVER" user add "$DEMO_USER" --first Clark --last Kent --ssn-last4 4321
fi

SERVER_URL=$(sed -n 's/.*"url": "\(.*\)".*/\1/p' "$COUNTERSIGN_DATA/server.json")
DEMO_URL="${DEMO_URL:-http://127.0.0.1:8090}"
DEMO_SECRET="$COUNTERSIGN_DATA/lets-demo.secret"
if ! "$SERVER" client show lets-demo >/dev/null 2>&1; then
  say "Registering the application LETS (demo) at $DEMO_URL"
  (umask 077; "$SERVER" client add lets-demo --name "LETS (demo)" \
    --redirect-uri "$DEMO_URL/callback" --post-logout-redirect-uri "$DEMO_URL/signed-out" >"$DEMO_SECRET")
elif [ ! -s "$DEMO_SECRET" ]; then
  say "Giving LETS (demo) a new client secret (the old one was not kept)"
  (umask 077; "$SERVER" client rotate-secret lets-demo >"$DEMO_SECRET")
fi
say "Starting LETS (demo) at $DEMO_URL"
LETS_DEMO_CLIENT_SECRET=$(cat "$DEMO_SECRET") target/release/lets-demo \
  --issuer "$SERVER_URL" --client-id lets-demo --listen "${DEMO_URL#http://}" \
  --ca "$COUNTERSIGN_DATA/tls-cert.pem" &
DEMO_PID=$!

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  ENROLL="$COUNTERSIGN_DATA/enroll-$DEMO_USER.png"
  "$SERVER" user enroll-link "$DEMO_USER" --png "$ENROLL" >"$COUNTERSIGN_DATA/enroll-$DEMO_USER.txt"
  cat >&2 <<MSG

Countersign is running.
  Application: $DEMO_URL/   <- start here, as the seed guide does
  Server: $SERVER_URL   (both stop when the app quits)
  App:    opening now. Choose a passcode, then Add account > Image file:
          $ENROLL   (or paste the link in $COUNTERSIGN_DATA/enroll-$DEMO_USER.txt)

Send a number-matching request from another terminal:
  COUNTERSIGN_DATA=$COUNTERSIGN_DATA $SERVER push $DEMO_USER
Sign in in a browser at $(sed -n 's/.*"url": "\(.*\)".*/\1/p' "$COUNTERSIGN_DATA/server.json")/signin
  as $DEMO_USER with the temporary password above; texted and called codes
  land in $COUNTERSIGN_DATA/outbox/. Help-desk console: /helpdesk, for
  users given the role (COUNTERSIGN_DATA=$COUNTERSIGN_DATA $SERVER user role NAME helpdesk).
MSG
  say "Opening the Countersign app (vault in $COUNTERSIGN_HOME)"
  target/release/countersign-app
  exit 0
fi

if [ ! -f "$COUNTERSIGN_HOME/vault.db" ]; then
  say "Creating the authenticator's vault: choose a passcode (at least 6 characters)"
  "$CLI" init
fi
if ! "$CLI" list 2>/dev/null | grep -q "sign-in approval"; then
  say "Enrolling the authenticator for $DEMO_USER (enter the passcode again)"
  "$CLI" add "$("$SERVER" user enroll-link "$DEMO_USER")" --device-name "$(hostname) CLI"
fi

cat >&2 <<MSG

Countersign is running.
  Application:   $DEMO_URL/   <- start here, as the seed guide does
  Server:        $SERVER_URL   (both stop when you leave this script)
  Authenticator: waiting for sign-in requests below.

In another terminal, send a number-matching request and read its number:
  COUNTERSIGN_DATA=$COUNTERSIGN_DATA $SERVER push $DEMO_USER
Type that number here, then the passcode. Codes for the offline fallback:
  COUNTERSIGN_HOME=$COUNTERSIGN_HOME $CLI code
Sign in in a browser at $(sed -n 's/.*"url": "\(.*\)".*/\1/p' "$COUNTERSIGN_DATA/server.json")/signin
  as $DEMO_USER with the temporary password above; texted and called codes
  land in $COUNTERSIGN_DATA/outbox/.
MSG
"$CLI" watch

#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 600), JOBS at
# once (default 2), and prints each one's executions and crashes. Needs the
# nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); the normal
# test suite runs the same properties on stable with proptest.
#   scripts/fuzz.sh [SECONDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
jobs="${2:-2}"
logs="$(mktemp -d)"

echo "==> Building the fuzz targets (cargo +nightly fuzz build -O)" >&2
cargo +nightly fuzz build -O >&2

# Seeds: the QR corpus for the scanner, a few valid inputs for the parsers.
mkdir -p corpus/qr_image corpus/otpauth corpus/enrollment corpus/config
cp ../tests/fixtures/qr/*.png corpus/qr_image/ 2>/dev/null || true
printf '%s' 'otpauth://totp/ALEA:jd2468@alacop.gov?secret=HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K&issuer=ALEA' > corpus/otpauth/seed
printf '%s' '[tls]
mode = "self-signed"
[connections]
per_address = 10' > corpus/config/seed

run() {
  local t="$1"
  local max_len=4096
  [ "$t" = qr_image ] && max_len=262144
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$seconds" -max_len="$max_len" \
    -rss_limit_mb=2048 -print_final_stats=1 > "$logs/$t.log" 2>&1 || true
}

targets=$(cargo +nightly fuzz list)
echo "==> Fuzzing each target for $seconds s, $jobs at once: $(echo $targets)" >&2
running=0
for t in $targets; do
  run "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

printf '%-12s %14s %10s %8s\n' target executions exec/s crashes
for t in $targets; do
  log="$logs/$t.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls artifacts/"$t"/ 2>/dev/null | grep -c '^crash-\|^oom-\|^timeout-' || true)
  printf '%-12s %14s %10s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "$crashes"
done
echo "logs in $logs; crashing inputs, if any, in fuzz/artifacts/" >&2

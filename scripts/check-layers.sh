#!/usr/bin/env bash
# Checks that the server's folders keep their layers (docs/ARCHITECTURE.md):
#   http   -> domain, store, infra     (api, pages, console share extract/error)
#   domain -> store, infra
#   store  -> nothing of the crate
#   infra  -> nothing of the crate
# so no import cycle can form between them; no HTTP type under domain/ or
# store/; no HTTP status number outside http/; and no source file in
# crates/*/src longer than MAX_LINES. Prints every finding; exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=crates/server/src
MAX_LINES=${MAX_LINES:-500}
found=0
finding() { printf '  %s\n' "$*"; found=1; }

# The crate paths a folder's files use (`crate::x::y`, and the names inside
# `use crate::{...}` groups), as "file: path" lines.
uses() {
  grep -rnoE 'crate::(\{[^}]*\}|[a-z_]+(::[a-z_]+)?)' "$SRC/$1" --include=*.rs || true
}

# forbid FOLDER PATTERN WHY: flags uses in FOLDER matching PATTERN.
forbid() {
  local hits
  hits=$(uses "$1" | grep -E "$2" || true)
  [ -z "$hits" ] || while IFS= read -r h; do finding "$h ($3)"; done <<<"$hits"
}

echo "Layers (crates/server/src):"
forbid domain 'crate::(http|\{[^}]*\bhttp\b)' "domain must not use http"
forbid store 'crate::(http|domain|infra|Server|Error|\{)' "store uses nothing of the crate"
forbid infra 'crate::(http|domain|store|Server|Error|\{)' "infra uses nothing of the crate"
forbid http/api.rs 'crate::http::(pages|console)' "api must not use the pages"
forbid http/pages 'crate::http::(api|console)' "pages must not use api or the console"
forbid http/console 'crate::http::api' "the console must not use api"
for layer in domain store; do
  hits=$(grep -rnE '\b(axum|hyper|StatusCode)\b' "$SRC/$layer" --include=*.rs || true)
  [ -z "$hits" ] || while IFS= read -r h; do finding "$h (no HTTP under $layer/)"; done <<<"$hits"
done

# A status number is a 4xx or 5xx code on a line that speaks of statuses,
# refusals or answers (other numbers, such as 480 minutes, are data).
echo "HTTP status numbers outside http/:"
hits=$(grep -rnwE '(4[0-9][0-9]|5[0-9][0-9])' "$SRC" --include=*.rs \
  | grep -v "^$SRC/http/" \
  | grep -iE 'status|refus|answer|http|, or [0-9]' || true)
[ -z "$hits" ] || while IFS= read -r h; do finding "$h"; done <<<"$hits"

echo "Source files over $MAX_LINES lines:"
while read -r n f; do
  [ "$f" = total ] || [ "$n" -le "$MAX_LINES" ] || finding "$f: $n lines"
done < <(find crates/*/src src-tauri/src -name '*.rs' -print0 | xargs -0 wc -l)

if [ "$found" -eq 0 ]; then
  echo "ok: layers, statuses and file sizes as documented"
else
  exit 1
fi

# Shared helpers for run.sh and test.sh: say what is happening, install what
# is missing (Debian packages, Rust components), nothing more.

say() { printf '\n==> %s\n' "$*" >&2; }

# Debian packages the project needs, by purpose.
APT_BUILD="build-essential pkg-config libssl-dev curl ca-certificates"
APT_TAURI="libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev"
APT_TEST="oathtool openssl chromium chromium-driver xvfb webkit2gtk-driver postgresql nginx libnginx-mod-stream zbar-tools prometheus"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "error: installing packages needs root; run as root or install sudo" >&2; return 1
  fi
}

# apt_need PKG...: installs the packages that are not installed yet.
apt_need() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages already present: $*"
    return 0
  fi
  say "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# rust_need: the toolchain components the checks use.
rust_need() {
  command -v cargo >/dev/null 2>&1 || { echo "error: cargo not found; install Rust from rustup first" >&2; return 1; }
  for c in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
      say "Adding Rust component $c"
      rustup component add "$c"
    fi
  done
}

# cargo_tool_need CRATE BIN [VERSION]: installs a Rust tool from crates.io if missing
# (tauri-driver drives the app's window in the end-to-end tests; the Tauri
# bundler comes from npm instead, see src-tauri/package.json).
cargo_tool_need() {
  if command -v "$2" >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/$2" ]; then
    say "Rust tool present: $2"
    return 0
  fi
  say "Installing $1 ${3:-} from crates.io (cargo install --locked; a few minutes)"
  cargo install --locked "$1" ${3:+--version "$3"}
}

# npm_need DIR: installs DIR's npm packages as its package-lock.json pins
# them (Node.js and npm from Debian if the machine has none).
npm_need() {
  if ! command -v npm >/dev/null 2>&1; then
    apt_need nodejs npm
  fi
  if [ -d "$1/node_modules" ] && [ "$1/node_modules/.package-lock.json" -nt "$1/package-lock.json" ]; then
    say "npm packages present in $1"
    return 0
  fi
  say "Installing npm packages in $1 (npm ci)"
  (cd "$1" && npm ci --no-audit --no-fund)
}

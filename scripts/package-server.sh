#!/usr/bin/env bash
# Builds the server's Debian package with dpkg-deb (Debian's packager):
# countersign-server and the countersign CLI, the hardened systemd unit,
# the maintainer scripts and the commented default config from packaging/.
# Library dependencies come from dpkg-shlibdeps.
#
#   scripts/package-server.sh [release|debug]
#
# release (default) packages target/release (build it first with
# `cargo build --release --locked -p countersign-server -p countersign-cli`);
# debug packages the test build ./test.sh has made already, stripped of
# its line tables. Prints the .deb's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
case "$profile" in release|debug) ;; *) echo "usage: $0 [release|debug]" >&2; exit 2 ;; esac
bins=(target/"$profile"/countersign-server target/"$profile"/countersign)
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "error: $b is missing; build it first (see the top of $0)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=target/debian
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/countersign" "$root/usr/share/doc/countersign-server"
for b in "${bins[@]}"; do
  install -m 0755 "$b" "$root/usr/bin/"
  strip --strip-debug "$root/usr/bin/$(basename "$b")"
done
install -m 0644 packaging/debian/countersign-server.service "$root/lib/systemd/system/"
install -m 0640 packaging/server.toml "$root/etc/countersign/server.toml"
install -m 0644 docs/OPERATIONS.md README.md "$root/usr/share/doc/countersign-server/"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/"; done
echo /etc/countersign/server.toml > "$root/DEBIAN/conffiles"
# dpkg-shlibdeps reads a source package's control file: give it a minimal one.
mkdir -p "$stage/src/debian"
printf 'Source: countersign\n\nPackage: countersign-server\nArchitecture: any\n' > "$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "$root/usr/bin/countersign-server" "$root/usr/bin/countersign" 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: countersign-server
Version: $version
Architecture: $arch
Maintainer: Countersign maintainers <countersign@example.invalid>
Installed-Size: $size
Depends: $shlibs, passwd, init-system-helpers
Section: net
Priority: optional
Homepage: https://example.invalid/countersign
Description: Countersign sign-in server and headless authenticator
 Countersign's sign-in server: passwords with first-login change,
 number-matching push to the Countersign app, TOTP, text and voice codes,
 security questions, single sign-on (OpenID Connect), a help-desk console
 and a hash-chained audit log; and countersign, the headless authenticator
 for help-desk tests and scripts. Runs as the countersign-server service
 (systemd, user countersign), data in /var/lib/countersign, configuration
 in /etc/countersign/server.toml.
CONTROL
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
mkdir -p "$out"
deb=$out/countersign-server_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"

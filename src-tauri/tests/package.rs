//! The Debian package the Tauri bundler makes (`cargo tauri build --debug
//! --bundles deb`, which ./test.sh runs before the tests): its metadata and
//! files; then installed with dpkg, the installed app opens in a real
//! window and creates its vault; then it is removed again.
//!
//! Installing needs root (or sudo without a password). The test refuses to
//! touch a machine where the package is installed already.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::PASSCODE;
use countersign_testkit::dpkg::{as_root, assert_not_installed, check_deb, installed};
use countersign_testkit::{xvfb, Session};

const PACKAGE: &str = "countersign";
const INSTALLED: &str = "/usr/bin/countersign-app";

fn deb() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let path = PathBuf::from(env!("CARGO_BIN_EXE_countersign-app"))
        .with_file_name("bundle/deb")
        .join(format!(
            "Countersign_{}_{arch}.deb",
            env!("CARGO_PKG_VERSION")
        ));
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo tauri build --debug --bundles deb` in src-tauri (./test.sh does)",
        path.display()
    );
    path
}

/// Removes the package when the test ends, passed or failed.
struct Installation;

impl Drop for Installation {
    fn drop(&mut self) {
        if installed(PACKAGE) {
            as_root("dpkg", &["-r", PACKAGE]);
        }
    }
}

#[test]
fn the_deb_installs_runs_and_removes_cleanly() {
    let deb = deb();
    let deb_str = deb.to_str().unwrap();

    check_deb(
        deb_str,
        PACKAGE,
        env!("CARGO_PKG_VERSION"),
        "libwebkit2gtk-4.1-0",
        &[
            "usr/bin/countersign-app",
            "usr/share/applications/Countersign.desktop",
            "usr/share/icons/hicolor/128x128/apps/countersign-app.png",
        ],
    );
    assert_not_installed(PACKAGE);
    let _installation = Installation;
    as_root("dpkg", &["-i", deb_str]);
    assert!(installed(PACKAGE), "dpkg did not record the installation");
    assert!(Path::new(INSTALLED).exists());

    // The installed app opens in a window and creates its vault.
    let (display, _xvfb) = xvfb();
    let home = tempfile::tempdir().unwrap();
    let s = Session::tauri(
        Path::new(INSTALLED),
        &display,
        &[("COUNTERSIGN_HOME", home.path())],
    );
    s.wait_for(
        "!document.getElementById('screen-first').hidden",
        "the first-run screen",
    );
    s.type_into("#first-pass", PASSCODE);
    s.type_into("#first-confirm", PASSCODE);
    s.click("#form-first button[type=submit]");
    s.wait_for(
        "!document.getElementById('screen-main').hidden",
        "the account list",
    );
    assert!(home.path().join("vault.db").exists());
    drop(s);

    as_root("dpkg", &["-r", PACKAGE]);
    assert!(!installed(PACKAGE));
    assert!(!Path::new(INSTALLED).exists(), "removal left the binary");
}

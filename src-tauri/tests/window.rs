//! The real app in a real window: Xvfb + tauri-driver + WebKitWebDriver,
//! against a real server on loopback. First run, an OTP account whose code
//! agrees with oathtool, an account read off the screen, enrollment from a
//! QR image file, a number-matching push answered wrong then right, lock and
//! unlock. Screenshots of each screen go to `target/screenshots/` at desktop
//! size and at 360×740.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::x11::QrWindow;
use common::PASSCODE;
use countersign_testkit::{xvfb, Session};
use serde_json::json;

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const SCREEN_URI: &str =
    "otpauth://totp/ALEA:screen%40alacop.gov?secret=GEZDGNBVGY3TQOJQ&issuer=ALEA";

fn shown(id: &str) -> String {
    format!("!document.getElementById('{id}').hidden")
}

fn oathtool() -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", SECRET])
        .output()
        .expect("oathtool is missing: ./test.sh installs it");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Shots { dir }
    }

    /// One screenshot at desktop size and one at phone size.
    fn take(&self, s: &Session, name: &str) {
        s.resize(900, 760);
        s.screenshot(&self.dir.join(format!("{name}-desktop.png")));
        s.resize(360, 740);
        s.screenshot(&self.dir.join(format!("{name}-360x740.png")));
    }
}

#[test]
fn the_app_in_a_window_enrolls_and_approves_a_push() {
    let server = common::server();
    let (display, _xvfb) = xvfb();
    let home = tempfile::tempdir().unwrap();
    let app = PathBuf::from(env!("CARGO_BIN_EXE_countersign-app"));
    let s = Session::tauri(&app, &display, &[("COUNTERSIGN_HOME", home.path())]);
    let shots = Shots::new();

    // First run: choose the passcode.
    s.wait_for(&shown("screen-first"), "the first-run screen");
    shots.take(&s, "1-first-run");
    s.type_into("#first-pass", PASSCODE);
    s.type_into("#first-confirm", "246811");
    s.click("#form-first button[type=submit]");
    s.wait_for(
        "document.getElementById('first-error').textContent.length > 0",
        "the mismatch message",
    );
    assert!(
        s.text("#first-error").contains("differ"),
        "{}",
        s.text("#first-error")
    );
    s.type_into("#first-confirm", PASSCODE);
    s.click("#form-first button[type=submit]");
    s.wait_for(&shown("screen-main"), "the account list");

    // An OTP account typed in; its code agrees with oathtool.
    s.click("#btn-add");
    s.wait_for(&shown("screen-add"), "the add screen");
    s.type_into("#add-text", SECRET);
    s.type_into("#add-name", "cs0101@alacop.gov");
    s.click("#form-uri button[type=submit]");
    s.wait_for(&shown("preview"), "the preview");
    assert!(
        s.text("#preview-list").contains("cs0101@alacop.gov (TOTP)"),
        "{}",
        s.text("#preview-list")
    );
    shots.take(&s, "2-add-preview");
    s.click("#btn-confirm-add");
    s.wait_for(
        "document.querySelectorAll('#account-list .account').length == 1",
        "the new account",
    );
    let before = oathtool();
    let shown_code = s.text("#account-list .code").replace(' ', "");
    let after = oathtool();
    assert!(
        shown_code == before || shown_code == after,
        "window {shown_code}, oathtool {before}/{after}"
    );

    // An account read off the screen: the code is in another window, as
    // on a sign-in page beside the app.
    let _qr = QrWindow::show(&display, SCREEN_URI, 920, 40);
    s.click("#btn-add");
    s.wait_for(&shown("screen-add"), "the add screen");
    s.click("#btn-screen");
    s.wait_for(&shown("preview"), "the preview of the code on the screen");
    assert!(
        s.text("#preview-list").contains("screen@alacop.gov"),
        "{} {}",
        s.text("#preview-list"),
        s.text("#add-error")
    );
    s.click("#btn-confirm-add");
    s.wait_for(
        "document.querySelectorAll('#account-list .account').length == 2",
        "the account from the screen",
    );

    // Enrollment from the server's QR code as an image file.
    let png = server.file("enroll.png");
    let out = server
        .server_command(&["user", "enroll-link", "cs0101", "--png"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.click("#btn-add");
    s.wait_for(&shown("screen-add"), "the add screen");
    s.choose_file("#add-file", &png);
    s.wait_for(&shown("preview-pass-box"), "the enrollment preview");
    assert!(
        s.text("#preview-list").contains("sign-in approval"),
        "{}",
        s.text("#preview-list")
    );
    s.type_into("#preview-pass", PASSCODE);
    s.click("#btn-confirm-add");
    s.wait_for(
        "document.querySelectorAll('#account-list .account').length == 3",
        "the push account",
    );
    shots.take(&s, "3-accounts");

    // A push answered with the wrong number: the server says mismatch.
    let (number, mut push, said) = server.push();
    let sent = Instant::now();
    s.wait_for(&shown("screen-request"), "the sign-in request");
    println!("push to prompt visible: {} ms", sent.elapsed().as_millis());
    assert!(s.text("#req-account").contains("cs0101@alacop.gov"));
    shots.take(&s, "4-request");
    let wrong = if number == "42" { "43" } else { "42" };
    s.type_into("#req-number", wrong);
    s.click("#btn-yes");
    s.wait_for(&shown("req-pass-box"), "the passcode prompt");
    s.type_into("#req-pass", PASSCODE);
    s.click("#btn-yes");
    s.wait_for(&shown("screen-verdict"), "the verdict");
    assert_eq!(s.text("#verdict-title"), "Numbers didn't match");
    assert_eq!(push.wait().unwrap().code(), Some(1));
    s.click("#btn-verdict-ok");

    // The app acknowledged it, signed: delivered, then shown (the prompt
    // was on screen), as the help desk's timeline shows.
    let said = said.join().unwrap();
    let id = said
        .lines()
        .find_map(|l| l.strip_prefix("challenge: "))
        .unwrap_or_else(|| panic!("no challenge id in {said:?}"));
    let out = server.server(&["helpdesk", "timeline", id, "--json"]);
    let timeline: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for step in ["delivered", "shown"] {
        assert!(
            timeline["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|st| st["step"] == step && st["at_ms"].is_u64()),
            "{step} missing: {timeline}"
        );
    }
    assert!(
        timeline.to_string().contains(&format!("typed {wrong}")),
        "{timeline}"
    );

    // The right number and the passcode approve.
    let (number, mut push, rest) = server.push();
    s.wait_for(&shown("screen-request"), "the second request");
    s.type_into("#req-number", &number);
    s.click("#btn-yes");
    s.wait_for(&shown("req-pass-box"), "the passcode prompt");
    s.type_into("#req-pass", PASSCODE);
    s.click("#btn-yes");
    s.wait_for(&shown("screen-verdict"), "the verdict");
    assert_eq!(s.text("#verdict-title"), "Approved");
    shots.take(&s, "5-approved");
    assert!(push.wait().unwrap().success());
    assert!(rest.join().unwrap().contains("approved"));
    s.click("#btn-verdict-ok");
    s.wait_for(&shown("screen-main"), "the account list");

    // Activity lists both answers.
    s.click("#nav-activity");
    s.wait_for(
        "document.querySelectorAll('#history-list li').length >= 2",
        "the activity",
    );
    assert!(s.text("#history-list").contains("approved"));
    shots.take(&s, "6-activity");
    s.click("#nav-settings");
    shots.take(&s, "7-settings");
    s.click("#nav-accounts");

    // Lock and unlock; a wrong passcode says so.
    s.click("#btn-lock");
    s.wait_for(&shown("screen-lock"), "the lock screen");
    shots.take(&s, "8-locked");
    s.type_into("#unlock-pass", "000000");
    s.click("#form-unlock button[type=submit]");
    s.wait_for(
        "document.getElementById('unlock-error').textContent.length > 0",
        "the wrong-passcode message",
    );
    assert!(s
        .text("#unlock-error")
        .to_lowercase()
        .contains("wrong passcode"));
    s.type_into("#unlock-pass", PASSCODE);
    s.click("#form-unlock button[type=submit]");
    s.wait_for(&shown("screen-main"), "the account list after unlocking");
    assert_eq!(
        s.script(
            "return document.querySelectorAll('#account-list .account').length;",
            json!([])
        ),
        json!(3)
    );
}

//! The real app in a real window: Xvfb + tauri-driver + WebKitWebDriver,
//! against a real server on loopback. First run, an OTP account whose code
//! agrees with oathtool, an account read off the screen, enrollment from a
//! QR image file, a number-matching push answered wrong then right, lock and
//! unlock. Screenshots of each screen go to `target/screenshots/` at desktop
//! size and at 360×740.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::x11::{pixels_on_screen, screen_image, QrWindow};
use common::PASSCODE;
use countersign_app::rendering::has_render_node;
use countersign_testkit::{process_below, xvfb, Session};
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

/// Screenshots of the window as the X server shows it: what a user sees.
/// (WebKit's own snapshot, which WebDriver's screenshot asks for, waits
/// for the next paint, and an idle page drawn without GL has none.)
struct Shots {
    dir: PathBuf,
    display: String,
    /// axe-core, run on every screen shot.
    axe: String,
}

impl Shots {
    fn new(display: &str) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        Shots {
            dir,
            display: display.to_string(),
            axe: countersign_e2e::axe_script(),
        }
    }

    /// One screenshot at desktop size and one at each of two phone sizes,
    /// and the screen's accessibility check (axe-core: no serious or
    /// critical problem) at each size.
    fn take(&self, s: &Session, name: &str) {
        for (width, height, size) in [
            (900, 760, "desktop"),
            (360, 740, "360x740"),
            (412, 915, "412x915"),
        ] {
            s.resize(width, height);
            self.window(s)
                .save(self.dir.join(format!("{name}-{size}.png")))
                .unwrap();
            countersign_e2e::assert_accessible(s, &self.axe, &format!("{name} at {size}"));
            // Nothing runs off the side: no sideways scrolling on a phone.
            let overflow = s.script(
                "return document.documentElement.scrollWidth - window.innerWidth",
                json!([]),
            );
            assert!(
                overflow.as_i64().unwrap_or(1) <= 0,
                "{name} at {size} is {overflow} px too wide"
            );
        }
    }

    /// The Help Center's picture `name`, at phone size, kept true to the
    /// screen (`countersign_testkit::help`). A passing message (the toast,
    /// gone after 2.5 s) is waited out first: whether it is still there
    /// depends on how fast the machine took the shots before, so the picture
    /// and its words are taken without it.
    fn help(&self, s: &Session, name: &str) {
        s.wait_for(
            "document.getElementById('toast').hidden",
            "the passing message to end",
        );
        s.resize(360, 740);
        countersign_testkit::help::keep(s, name, "", |png| self.window(s).save(png).unwrap());
    }

    /// The window once the page has drawn twice and the screen has stopped
    /// changing (or after two seconds: the code countdown never stops).
    fn window(&self, s: &Session) -> image::RgbImage {
        s.script_async(
            "const done = arguments[0];
             requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
            json!([]),
        );
        let (x, y, w, h) = s.window_rect();
        let (x, y) = (i16::try_from(x).unwrap_or(0), i16::try_from(y).unwrap_or(0));
        let (w, h) = (
            u16::try_from(w).unwrap_or(u16::MAX),
            u16::try_from(h).unwrap_or(u16::MAX),
        );
        let grab = || screen_image(&self.display, x, y, w, h);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut last = grab();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = grab();
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

#[test]
fn the_app_in_a_window_enrolls_and_approves_a_push() {
    let server = common::server();
    let (display, _xvfb) = xvfb();
    let home = tempfile::tempdir().unwrap();
    let app = PathBuf::from(env!("CARGO_BIN_EXE_countersign-app"));
    let s = Session::tauri(&app, &display, &[("COUNTERSIGN_HOME", home.path())]);
    let shots = Shots::new(&display);

    // First run: choose the passcode.
    s.wait_for(&shown("screen-first"), "the first-run screen");
    page_reaches_the_screen(&s, &display);
    shots.take(&s, "1-first-run");
    shots.help(&s, "app-first-run");
    // The engine judges the passcode as it is typed.
    s.type_into("#first-pass", "Abcdefghi1");
    s.wait_for(
        "document.getElementById('first-hint').textContent == 'Strong passcode.'",
        "the strength hint",
    );
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

    // The tabs name their panels and move with the arrow keys, wrapping.
    let key = |k: &str| {
        s.script(
            "document.activeElement.dispatchEvent(new KeyboardEvent('keydown', {key: arguments[0], bubbles: true}));
             return document.activeElement.id;",
            json!([k]),
        )
    };
    assert_eq!(
        s.script(
            "return [...document.querySelectorAll('[role=tab]')].map(t => t.getAttribute('aria-controls'))",
            json!([])
        ),
        json!(["tab-accounts", "tab-activity", "tab-settings"])
    );
    s.script("document.getElementById('nav-accounts').focus()", json!([]));
    assert_eq!(key("ArrowRight"), json!("nav-activity"));
    assert!(
        s.script(
            "return !document.getElementById('tab-activity').hidden",
            json!([])
        ) == json!(true)
    );
    assert_eq!(key("ArrowLeft"), json!("nav-accounts"));
    assert_eq!(key("ArrowLeft"), json!("nav-settings"));
    assert_eq!(key("Home"), json!("nav-accounts"));

    // An OTP account typed in; its code agrees with oathtool.
    s.click("#btn-add");
    s.wait_for(&shown("screen-add"), "the add screen");
    // The back arrow sits beside the heading.
    let gap = s.script(
        "return document.getElementById('add-title').getBoundingClientRect().left
              - document.getElementById('add-back').getBoundingClientRect().right;",
        json!([]),
    );
    assert!(
        gap.as_f64().unwrap() < 40.0,
        "arrow and heading {gap} px apart"
    );
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
    // "Added 1 account" shows on the list, and not on the next screen.
    s.wait_for(&shown("toast"), "the toast");
    assert!(s.text("#toast").contains("Added 1 account"));
    s.click("#btn-add");
    s.wait_for(&shown("screen-add"), "the add screen");
    assert_eq!(
        s.script("return document.getElementById('toast').hidden", json!([])),
        json!(true),
        "the toast followed to the next screen"
    );
    s.click("#add-back");
    s.wait_for(&shown("screen-main"), "the account list");
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
    shots.help(&s, "app-add-enrollment");
    s.type_into("#preview-pass", PASSCODE);
    s.click("#btn-confirm-add");
    s.wait_for(
        "document.querySelectorAll('#account-list .account').length == 3",
        "the push account",
    );
    shots.take(&s, "3-accounts");
    shots.help(&s, "app-accounts");
    // The list moves its countdowns by itself and asks the engine for codes
    // once a period (when a code's time is up), not every second.
    // (`call` is the page's one way to the engine: counted here.)
    s.script(
        "window.accountsCalls = 0;
         const inner = call;
         call = (cmd, args) => {
           if (cmd === 'accounts') window.accountsCalls++;
           return inner(cmd, args);
         };
         refreshAccounts();",
        json!([]),
    );
    // The count sees a refresh: it can tell.
    assert_eq!(s.script("return window.accountsCalls", json!([])), json!(1));
    s.script("window.accountsCalls = 0", json!([]));
    let ring = "return [...document.querySelectorAll('#account-list .ring-fg')].map(r => r.getAttribute('stroke-dasharray')).join()";
    let before = s.script(ring, json!([]));
    std::thread::sleep(Duration::from_millis(3500));
    let calls = s.script("return window.accountsCalls", json!([]));
    assert!(calls.as_u64().unwrap() <= 1, "{calls} calls in 3.5 s");
    assert_ne!(
        s.script(ring, json!([])),
        before,
        "the countdown did not move"
    );

    // A push answered with the wrong number: the server says mismatch.
    let (number, mut push, said) = server.push();
    let sent = Instant::now();
    s.wait_for(&shown("screen-request"), "the sign-in request");
    println!("push to prompt visible: {} ms", sent.elapsed().as_millis());
    assert!(s.text("#req-account").contains("cs0101@alacop.gov"));
    // "Deny and report" waits for "No"; the `hidden` attribute hides it.
    let display = s.script(
        "return getComputedStyle(document.getElementById('btn-deny-report')).display",
        json!([]),
    );
    assert_eq!(display, json!("none"));
    shots.take(&s, "4-request");
    shots.help(&s, "app-request");
    // A number the sign-in page cannot show is refused at once, before the
    // passcode, naming the range.
    s.type_into("#req-number", "05");
    s.click("#btn-yes");
    assert!(
        s.text("#req-error").contains("from 10 to 99"),
        "{}",
        s.text("#req-error")
    );
    assert_eq!(
        s.script(
            "return document.getElementById('req-pass-box').hidden",
            json!([])
        ),
        json!(true)
    );
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
    shots.help(&s, "app-approved");
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
    no_software_gl_without_a_gpu(&s);

    // The list refreshes its codes in place: an open ⋯ menu stays open,
    // on the same row, across several refreshes.
    s.script(
        "const d = document.querySelector('#account-list .account details.menu'); \
         d.open = true; d.dataset.probe = 'still here'; return true;",
        json!([]),
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        s.script(
            "const d = document.querySelector('#account-list .account details.menu'); \
             return [d.open, d.dataset.probe || ''];",
            json!([])
        ),
        json!([true, "still here"]),
        "the list was rebuilt under an open menu"
    );
    s.script(
        "document.querySelector('#account-list .account details.menu').open = false; return true;",
        json!([]),
    );

    // Settings show what the vault holds, and a fresh page reads back
    // what was saved.
    let setting = |s: &Session| {
        s.script(
            "return [document.getElementById('al-seconds').value, \
             document.getElementById('al-hidden').checked];",
            json!([]),
        )
    };
    s.click("#nav-settings");
    s.wait_for(
        "document.getElementById('al-seconds').value === '300'",
        "the stored auto-lock (5 minutes)",
    );
    assert_eq!(setting(&s), json!(["300", false]));
    s.script(
        "document.getElementById('al-seconds').value = '900'; \
         document.getElementById('al-hidden').checked = true; window.beforeReload = true; return true;",
        json!([]),
    );
    s.click("#form-autolock button[type=submit]");
    s.wait_for(
        "document.getElementById('toast').textContent === 'Saved'",
        "the settings saved",
    );
    s.script(
        "setTimeout(() => location.reload(), 0); return true;",
        json!([]),
    );
    s.wait_for(
        &format!("!window.beforeReload && {}", shown("screen-main")),
        "the app after a reload",
    );
    s.click("#nav-settings");
    s.wait_for(
        "document.getElementById('al-seconds').value === '900'",
        "the saved auto-lock read back",
    );
    assert_eq!(setting(&s), json!(["900", true]));
    s.click("#nav-accounts");

    // Auto-lock: the list stays showing, moving its countdowns, and nobody
    // touches the window. It locks once the idle time
    // (here the shortest allowed, 30 s) has passed, not before.
    s.script_async(
        "window.__TAURI__.core.invoke('set_auto_lock', {seconds: 30, whenHidden: false})\
         .then(() => arguments[0](true), (e) => arguments[0](e));",
        json!([]),
    );
    let idle_from = std::time::Instant::now();
    let deadline = idle_from + std::time::Duration::from_secs(45);
    while s.script(&format!("return !!({});", shown("screen-lock")), json!([])) != json!(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the app did not lock itself within 45 s of no input"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let locked_after = idle_from.elapsed();
    assert!(
        locked_after >= std::time::Duration::from_secs(25),
        "locked after only {locked_after:?}"
    );
    shots.take(&s, "9-auto-locked");
}

/// The page's background fills most of the window on the X screen: frames
/// reach the display, not only WebKit's own snapshots (which WebDriver's
/// screenshots are).
fn page_reaches_the_screen(s: &Session, display: &str) {
    let bg = s.script(
        "return getComputedStyle(document.body).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number);",
        json!([]),
    );
    let rgb: Vec<u8> = serde_json::from_value(bg).unwrap();
    let area = s
        .script("return window.innerWidth * window.innerHeight;", json!([]))
        .as_u64()
        .unwrap() as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = pixels_on_screen(display, [rgb[0], rgb[1], rgb[2]]);
        if seen >= area / 3 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the window shows {seen} pixels of the page's background {rgb:?}, of {area}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Without a GPU the window process leaves OpenGL alone (src/rendering.rs):
/// Mesa's software rasteriser and its LLVM are not mapped.
fn no_software_gl_without_a_gpu(s: &Session) {
    if has_render_node(Path::new("/dev/dri")) {
        println!("a GPU render node is present: WebKit's defaults apply");
        return;
    }
    let app = process_below(s.driver_pid(), "countersign-app").expect("the app process");
    let maps = std::fs::read_to_string(format!("/proc/{app}/maps")).unwrap();
    for library in ["libLLVM", "swrast_dri", "libGLX_mesa"] {
        assert!(
            !maps.contains(library),
            "the window process maps {library} on a machine without a GPU"
        );
    }
}

//! The app's figures for docs/PERFORMANCE.md, measured on the real app in a
//! real window (Xvfb + tauri-driver) against a real server on loopback:
//!
//! - launch to the unlocked account list, with 20 accounts (the passcode
//!   typed through WebDriver, so the figure includes that);
//! - idle memory with 20 accounts: the app process, and the app with its
//!   WebKit processes (RSS and PSS, PSS not counting shared pages twice);
//! - challenge creation to the sign-in prompt painted in the window.
//!
//! Run: `cargo build --release --bin countersign-server &&
//! cargo bench -p countersign-app --bench app`

// Bench support: a failed step should stop the run right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Stack, PASSCODE};
use countersign_core::Passcode;
use countersign_device::intake::Intake;
use countersign_device::vault::Vault;
use countersign_testkit::{epoch_ms, process_below, process_tree, xvfb, Session};
use serde_json::json;

const ACCOUNTS: usize = 20;
const LAUNCHES: usize = 5;
const PUSHES: usize = 20;

fn main() {
    let server = Stack::start_with("cs0101", "[push]\nmax_per_window = 1000\n");
    let (display, _xvfb) = xvfb();
    let home = tempfile::tempdir().unwrap();
    fill_vault(home.path(), &server);
    let app = PathBuf::from(env!("CARGO_BIN_EXE_countersign-app"));

    let mut launches = Vec::new();
    let mut session = None;
    for _ in 0..LAUNCHES {
        drop(session.take());
        let (s, took) = launch(&app, &display, home.path());
        launches.push(took);
        session = Some(s);
    }
    let s = session.unwrap();
    report("launch to unlocked list (20 accounts)", &mut launches);

    std::thread::sleep(Duration::from_secs(5));
    let memory = Memory::of_app_below(s.driver_pid());
    println!(
        "idle memory, 20 accounts: app {:.0} MB RSS, {:.0} MB PSS, {:.0} MB private heap; \
         app + WebKit {:.0} MB RSS, {:.0} MB PSS",
        mb(memory.app_rss),
        mb(memory.app_pss),
        mb(memory.app_anon),
        mb(memory.total_rss),
        mb(memory.total_pss)
    );

    let mut prompts = Vec::new();
    for _ in 0..PUSHES {
        prompts.push(push_to_prompt(&s, &server));
    }
    report("challenge created to prompt painted", &mut prompts);
}

/// 19 OTP accounts and one push account, added through the engine.
fn fill_vault(home: &Path, server: &Stack) {
    let passcode = Passcode::new(PASSCODE);
    let now = countersign_device::now();
    let mut vault = Vault::create(
        home,
        &passcode,
        countersign_core::vault::DEFAULT_ITERATIONS,
        now,
    )
    .unwrap();
    for i in 1..ACCOUNTS {
        let letter = char::from(b'A' + i as u8);
        let uri = format!(
            "otpauth://totp/ALEA:officer{i:02}%40alacop.gov?secret=JBSWY3DPEHPK3PX{letter}&issuer=ALEA"
        );
        vault.add_otp(&otp(&uri), now).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(Intake::parse(&server.enroll_link()).unwrap().add(
        &mut vault,
        Some(&passcode),
        "bench",
        "linux",
        now,
    ))
    .unwrap();
}

fn otp(uri: &str) -> countersign_core::OtpAccount {
    countersign_core::OtpAccount::parse(uri).unwrap()
}

/// Starts the app and unlocks it; returns the session and the time from
/// the launch to the full account list on the screen.
fn launch(app: &Path, display: &str, home: &Path) -> (Session, Duration) {
    let (s, started) = Session::tauri_timed(app, display, &[("COUNTERSIGN_HOME", home)]);
    s.wait_for(
        "!document.getElementById('screen-lock').hidden",
        "the lock screen",
    );
    s.type_into("#unlock-pass", PASSCODE);
    s.click("#form-unlock button[type=submit]");
    s.wait_for(
        &format!("document.querySelectorAll('#account-list .account').length == {ACCOUNTS}"),
        "the account list",
    );
    (s, started.elapsed())
}

/// One push: from the moment the challenge is created to the prompt
/// painted, then answered so the next one starts from the account list.
fn push_to_prompt(s: &Session, server: &Stack) -> Duration {
    s.script(
        "window.__painted = null;
         const seen = () => {
           if (document.getElementById('screen-request').hidden || window.__painted) return;
           requestAnimationFrame(() => requestAnimationFrame(() => { window.__painted = Date.now(); }));
           observer.disconnect();
         };
         const observer = new MutationObserver(seen);
         observer.observe(document.body, { attributes: true, subtree: true, attributeFilter: ['hidden'] });",
        json!([]),
    );
    let created = epoch_ms();
    let (number, mut push, _rest) = server.push();
    s.wait_for("window.__painted !== null", "the prompt");
    let painted = s
        .script("return window.__painted;", json!([]))
        .as_u64()
        .unwrap();
    s.type_into("#req-number", &number);
    s.click("#btn-yes");
    s.wait_for(
        "!document.getElementById('req-pass-box').hidden",
        "the passcode prompt",
    );
    s.type_into("#req-pass", PASSCODE);
    s.click("#btn-yes");
    s.wait_for(
        "!document.getElementById('screen-verdict').hidden",
        "the verdict",
    );
    assert!(push.wait().unwrap().success(), "the push was not approved");
    s.click("#btn-verdict-ok");
    s.wait_for("!document.getElementById('screen-main').hidden", "the list");
    Duration::from_millis(painted.saturating_sub(created))
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.0} ms, max {:.0} ms (n = {})",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// Memory of the app process and everything it started.
struct Memory {
    app_rss: u64,
    app_pss: u64,
    app_anon: u64,
    total_rss: u64,
    total_pss: u64,
}

impl Memory {
    fn of_app_below(driver: u32) -> Self {
        let app = process_below(driver, "countersign-app")
            .expect("the app process runs below the driver");
        let tree = process_tree(app);
        Memory {
            app_rss: field(app, "Rss:"),
            app_pss: field(app, "Pss:"),
            app_anon: field(app, "Anonymous:"),
            total_rss: tree.iter().map(|p| field(p.0, "Rss:")).sum(),
            total_pss: tree.iter().map(|p| field(p.0, "Pss:")).sum(),
        }
    }
}

/// A field of /proc/PID/smaps_rollup, in bytes.
fn field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

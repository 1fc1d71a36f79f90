//! The server's Debian package (`scripts/package-server.sh debug`, which
//! ./test.sh runs before the tests): its metadata and files; installed
//! with dpkg, the service starts (by systemd where the machine runs it,
//! else from the unit's own ExecStart line, as its user), an officer signs
//! in through it, and it is removed (data kept) and purged (data gone).
//!
//! Installing needs root (or sudo without a password). The test refuses to
//! touch a machine where the package, or its data folder, is there already.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use countersign_server::http::serve::Runtime;
use countersign_testkit::dpkg::{
    architecture, as_root, assert_not_installed, check_deb, installed, run, status, stdout as text,
};
use countersign_testkit::Proc;

use crate::web::Browser;

const PACKAGE: &str = "countersign-server";
const UNIT: &str = "/lib/systemd/system/countersign-server.service";
const DATA: &str = "/var/lib/countersign";
const CONFIG: &str = "/etc/countersign/server.toml";

fn deb() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../target/debian/{PACKAGE}_{}_{}.deb",
        env!("CARGO_PKG_VERSION"),
        architecture()
    ));
    assert!(
        path.exists(),
        "{} is missing: build it with `scripts/package-server.sh debug` (./test.sh does)",
        path.display()
    );
    path
}

fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Stops what the test started and purges the package when it ends,
/// passed or failed.
struct Installation {
    service: Option<Proc>,
}

impl Drop for Installation {
    fn drop(&mut self) {
        if let Some(p) = self.service.take() {
            p.terminate();
        }
        let present = status(PACKAGE);
        if present.contains("installed") || present.contains("config-files") {
            let _ = as_root("dpkg", &["--purge", PACKAGE]);
        }
    }
}

/// The unit's `KEY=value` lines for `key`.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// Starts the service: systemd has already (the package's postinst), or,
/// where the machine has no systemd, the unit's ExecStart line runs as the
/// unit's user with its environment.
fn start_service(installation: &mut Installation) {
    if systemd_runs() {
        eprintln!("systemd runs here: the package's postinst started {PACKAGE}.service");
        let out = run("systemctl", &["is-active", "countersign-server"]);
        assert_eq!(
            text(&out).trim(),
            "active",
            "the service runs after install"
        );
        return;
    }
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let exec = unit_values(&unit, "ExecStart").pop().expect("ExecStart");
    let user = unit_values(&unit, "User").pop().expect("User");
    eprintln!("no systemd on this machine: running the unit's ExecStart line as {user}: {exec}");
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", &user, "--"]).args(exec.split_whitespace());
    for env in unit_values(&unit, "Environment") {
        if let Some((k, v)) = env.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdout(Stdio::null());
    installation.service = Some(Proc::spawn(&mut cmd).unwrap());
}

/// The running server's URL, TLS pin and metrics URL, from its runtime file.
fn runtime() -> (String, [u8; 32], String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = Path::new(DATA).join("server.json");
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            let rt: Runtime = serde_json::from_slice(&bytes).unwrap();
            let pin = rt.tls_pin().expect("the runtime file's TLS pin");
            return (rt.url, pin, rt.metrics.unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "the service did not start in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The packaged admin command, as the service's user.
fn admin(args: &[&str]) -> Output {
    let mut with = vec![
        "-u",
        "countersign",
        "--",
        "/usr/bin/countersign-server",
        "--data",
        DATA,
        "--config",
        CONFIG,
    ];
    with.extend_from_slice(args);
    as_root("runuser", &with)
}

fn mode_and_owner(path: &str) -> String {
    text(&run("stat", &["-c", "%a %U %G", path]))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_deb_installs_serves_a_sign_in_and_removes_then_purges() {
    if std::env::var_os("COUNTERSIGN_TEST_POSTGRES").is_some() {
        eprintln!(
            "the package test runs in the SQLite pass only (the package has no store of its own)"
        );
        return;
    }
    let deb = deb();
    let deb = deb.to_str().unwrap();
    // dpkg-shlibdeps found the libraries (libc6).
    check_deb(
        deb,
        PACKAGE,
        env!("CARGO_PKG_VERSION"),
        "libc6",
        &[
            "usr/bin/countersign-server",
            "usr/bin/countersign",
            "lib/systemd/system/countersign-server.service",
            "etc/countersign/server.toml",
            "usr/share/doc/countersign-server/OPERATIONS.md",
        ],
    );
    assert_not_installed(PACKAGE);
    assert!(
        !Path::new(DATA).exists(),
        "{DATA} exists (a removed but not purged {PACKAGE}?); the test would purge it. Move it away first."
    );
    let mut installation = Installation { service: None };
    as_root("dpkg", &["-i", deb]);
    assert!(installed(PACKAGE), "dpkg did not record the installation");
    assert!(text(&run("getent", &["passwd", "countersign"])).contains("/var/lib/countersign"));
    assert_eq!(mode_and_owner(DATA), "700 countersign countersign");
    assert_eq!(mode_and_owner(CONFIG), "640 root countersign");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for hardening in [
        "User=countersign",
        "StateDirectory=countersign",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(hardening), "the unit lacks {hardening}");
    }
    let verify = run("systemd-analyze", &["verify", UNIT]);
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    start_service(&mut installation);
    let (url, pin, metrics) = runtime();
    let out = admin(&["user", "add", "cs0901", "--first", "Ada", "--last", "Ng"]);
    let temporary = text(&out).trim().to_string();
    assert!(!temporary.is_empty(), "the temporary password is printed");

    // An officer's first sign-in through the installed service: the
    // temporary password, a new one, setup skipped, signed in.
    let browser = Browser::at(&url, pin);
    let (path, page) = browser.change_temporary("cs0901", &temporary).await;
    assert_eq!(path, "/signin/register", "{page}");
    browser.skip_setup(&page).await;
    let (status, _, page) = browser.get("/my").await;
    assert_eq!(status, 200);
    assert!(page.contains("cs0901"), "{page}");

    // Its metrics, on the packaged default (loopback) address.
    assert!(metrics.starts_with("http://127.0.0.1:9464"), "{metrics}");
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(countersign_core::pin::PinnedVerifier::client_config(pin).unwrap())
        .build()
        .unwrap();
    let figures = http
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        crate::metrics::series(&figures, "countersign_sign_ins_total"),
        Some(1.0)
    );

    // Stopped and removed: the programs go, the data and config stay.
    if let Some(p) = installation.service.take() {
        p.terminate();
    }
    as_root("dpkg", &["--remove", PACKAGE]);
    assert!(!Path::new("/usr/bin/countersign-server").exists());
    assert!(!Path::new("/usr/bin/countersign").exists());
    assert!(
        Path::new(DATA).join("countersign.db").exists(),
        "remove keeps the data"
    );
    assert!(Path::new(CONFIG).exists(), "remove keeps the configuration");
    // Purged: the data and configuration go too.
    as_root("dpkg", &["--purge", PACKAGE]);
    assert!(!Path::new(DATA).exists(), "purge deletes the data");
    assert!(
        !Path::new(CONFIG).exists(),
        "purge deletes the configuration"
    );
}

/// The packaged /etc/countersign/server.toml is OPERATIONS.md's list of
/// keys, each commented out, and that list is a valid configuration.
#[test]
fn the_packaged_config_is_the_documented_one_commented_out() {
    let doc = include_str!("../../../../docs/OPERATIONS.md");
    let block = doc
        .split("## Configuration (TOML)")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the configuration block in OPERATIONS.md");
    let commented: Vec<String> = block
        .lines()
        .map(|l| match l.chars().next() {
            None | Some('#') | Some(' ') => l.to_string(),
            Some(_) => format!("# {l}"),
        })
        .collect();
    let packaged = include_str!("../../../../packaging/server.toml");
    let body: Vec<&str> = packaged
        .split_once("\n\n")
        .map(|(_, body)| body)
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(
        body, commented,
        "packaging/server.toml differs from OPERATIONS.md's configuration block"
    );
    // Every key is a real one (unknown keys are refused). Values such as
    // the example logo's path are not checked here: `load` would look for
    // the file.
    toml::from_str::<countersign_server::infra::config::Config>(block)
        .expect("the documented configuration has only known keys");
}

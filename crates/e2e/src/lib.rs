//! The stack an end-to-end journey runs against: the real
//! `countersign-server` binary on loopback (HTTPS, self-signed, a temporary
//! data folder) with one officer, and the `countersign` CLI as that
//! officer's authenticator (its own temporary home).
//!
//! Test support: a failed step panics with what went wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use countersign_testkit::Proc;

mod demo;
mod pages;
pub use demo::Demo;
pub use pages::{assert_accessible, axe_script, Pages, ANSWERS};

/// The passcode of the officer's authenticator.
pub const PASSCODE: &str = "246810";

/// The server, the officer and the officer's authenticator.
pub struct Stack {
    tmp: tempfile::TempDir,
    port: u16,
    server: Option<Proc>,
    /// The officer's username.
    pub username: String,
    /// The officer's temporary password, as `user add` printed it.
    pub temporary_password: String,
}

/// A binary of the workspace, beside the test's own `deps` folder:
/// `cargo test --workspace` builds every binary before running a test.
/// (`cargo test -p countersign-e2e` alone does not rebuild them: build
/// `countersign-server` and `countersign` first, or use `--workspace`.)
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace`",
        bin.display()
    );
    bin
}

impl Stack {
    /// Starts the server with `username` (Clark Kent, SSN last four 4321).
    pub fn start(username: &str) -> Self {
        Self::start_with(username, "")
    }

    /// [`Stack::start`] with `config` added to the server's TOML file.
    pub fn start_with(username: &str, config: &str) -> Self {
        let mut stack = Self::prepare(username, config);
        stack.start_server();
        stack
    }

    /// The data folder, the configuration and the officer, without starting
    /// the server: [`Stack::start_server`] does.
    pub fn prepare(username: &str, config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let port = countersign_testkit::free_port();
        std::fs::write(
            tmp.path().join("server.toml"),
            // Metrics on a port of the system's choosing: tests run side by
            // side, and the default port would be taken by the first.
            format!(
                "listen = \"127.0.0.1:{port}\"\n{config}\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        let out = server_command(
            tmp.path(),
            &[
                "user",
                "add",
                username,
                "--first",
                "Clark",
                "--last",
                "Kent",
                "--ssn-last4",
                "4321",
            ],
        )
        .output()
        .unwrap();
        assert_ok(&out, "user add");
        let temporary_password = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Stack {
            tmp,
            port,
            server: None,
            username: username.to_string(),
            temporary_password,
        }
    }

    /// Starts `countersign-server serve` and waits until it answers. Its
    /// log goes to `server.log` in the stack's folder, and is shown if the
    /// server does not start.
    pub fn start_server(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let log_path = self.tmp.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut server = Proc::spawn(
            self.server_command(&["serve"])
                .stdout(Stdio::null())
                .stderr(log),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || !self.tmp.path().join("data/server.json").exists()
        {
            let ended = server.exited();
            if ended.is_some() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "the server did not start on port {} ({}); its log:\n{log}",
                    self.port,
                    ended.map_or("still running".into(), |s| s.to_string()),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.server = Some(server);
    }

    /// Stops the server gracefully (SIGTERM), as an operator would.
    pub fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.terminate();
        }
    }

    /// The address of a page.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Runs a `countersign-server` subcommand on the stack's data folder.
    pub fn server(&self, args: &[&str]) -> Output {
        self.server_command(args).output().unwrap()
    }

    /// A `countersign-server` subcommand on the stack's data folder, to
    /// run as the caller likes.
    pub fn server_command(&self, args: &[&str]) -> Command {
        server_command(self.tmp.path(), args)
    }

    /// A fresh enrollment payload for the officer.
    pub fn enroll_link(&self) -> String {
        let out = self.server(&["user", "enroll-link", &self.username]);
        assert_ok(&out, "user enroll-link");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Starts `countersign-server push` for the officer; returns the number
    /// it shows, the command, and a reader of the rest of its output.
    pub fn push(&self) -> (String, Child, JoinHandle<String>) {
        let mut child = self
            .server_command(&["push", &self.username])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let number = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("number: ").map(str::to_string))
            .expect("push prints the number");
        let rest =
            std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
        (number, child, rest)
    }

    /// Runs the officer's `countersign` CLI (passcode from the environment).
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = self
            .cli_command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_ok(&out, &format!("countersign {args:?}"));
        out
    }

    /// The officer's `countersign` CLI as a command, to run as the caller
    /// likes (e.g. `watch` with a piped stdin).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(workspace_bin("countersign"));
        c.arg("--home")
            .arg(self.tmp.path().join("officer"))
            .args(args)
            .env("COUNTERSIGN_PASSCODE", PASSCODE);
        c
    }

    /// Approves the one request waiting on the officer's authenticator
    /// with `number`, as the officer reading it off the page would.
    pub fn approve_with(&self, number: &str) {
        let request = self.pending_request();
        let id = request["id"].as_str().unwrap();
        self.cli(&["answer", id, "--approve", "--number", number]);
    }

    /// Starts `countersign watch` for the officer.
    pub fn watch(&self) -> Watch {
        let mut child = self
            .cli_command(&["watch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watch { child, lines }
    }

    /// A scratch file path in the stack's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The newest text or call in the server's telephony outbox: (channel,
    /// the six-digit code it carries). The outbox stands in for the
    /// officer's phone.
    pub fn phone_message(&self) -> (String, String) {
        countersign_testkit::outbox::newest(&self.tmp.path().join("data/outbox"))
    }

    /// The one request waiting on the officer's authenticator.
    pub fn pending_request(&self) -> serde_json::Value {
        let out = self.cli(&["pending", "--json", "--wait", "15"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
        list[0].clone()
    }
}

/// `countersign watch` running for the officer: its messages (stderr) read
/// line by line, its prompt answered through stdin. Stopped when dropped.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    /// Waits (30 s at most) until it prints a line containing `needle`.
    pub fn said(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("watch never said {needle:?}"));
            if line.contains(needle) {
                return;
            }
        }
    }

    /// Types `line` at its prompt.
    pub fn type_line(&mut self, line: &str) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").unwrap();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(workspace_bin("countersign-server"));
    c.arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("server.toml"))
        .args(args)
        .env_remove("COUNTERSIGN_LISTEN");
    countersign_testkit::postgres::store_env(&mut c, &dir.join("data"));
    c
}

/// Panics with the command's error output unless it succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Shared test support: a real server on loopback.

#![allow(dead_code)]

pub mod x11;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The passcode every test vault uses.
pub const PASSCODE: &str = "246810";

/// A `countersign-server` on loopback with the officer cs0101.
pub struct Server {
    /// Its data and config.
    pub tmp: tempfile::TempDir,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary beside the app's.
pub fn server_bin() -> PathBuf {
    let bin =
        PathBuf::from(env!("CARGO_BIN_EXE_countersign-app")).with_file_name("countersign-server");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo test --workspace)",
        bin.display()
    );
    bin
}

impl Server {
    /// Starts it and waits until it answers.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Starts it with `config` added to its TOML file.
    pub fn start_with(config: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let port = countersign_testkit::free_port();
        std::fs::write(
            tmp.path().join("server.toml"),
            format!("listen = \"127.0.0.1:{port}\"\n{config}"),
        )
        .unwrap();
        let cmd = |args: &[&str]| {
            let mut c = Command::new(server_bin());
            c.arg("--data")
                .arg(tmp.path().join("data"))
                .arg("--config")
                .arg(tmp.path().join("server.toml"))
                .args(args);
            c.env_remove("COUNTERSIGN_LISTEN");
            c
        };
        let out = cmd(&[
            "user",
            "add",
            "cs0101",
            "--first",
            "Clark",
            "--last",
            "Kent",
            "--ssn-last4",
            "4321",
        ])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let child = cmd(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || !tmp.path().join("data/server.json").exists()
        {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { tmp, child }
    }

    /// A server subcommand on its data folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(server_bin());
        c.arg("--data")
            .arg(self.tmp.path().join("data"))
            .arg("--config")
            .arg(self.tmp.path().join("server.toml"))
            .args(args);
        c.env_remove("COUNTERSIGN_LISTEN");
        c
    }

    /// Starts `push`; returns the number it shows, the command, and a
    /// reader of the rest of its output.
    pub fn push(&self) -> (String, Child, std::thread::JoinHandle<String>) {
        let mut child = self
            .command(&["push", "cs0101"])
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
}

impl Server {
    /// A fresh enrollment payload for cs0101.
    pub fn enroll_link(&self) -> String {
        let out = self
            .command(&["user", "enroll-link", "cs0101"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

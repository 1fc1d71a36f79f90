//! `lets-demo`, the demonstration application, registered with the stack's
//! server and started beside it: a relying party on the `openidconnect`
//! crate that the officer opens first, as the seed guide does.

use std::process::Stdio;
use std::time::{Duration, Instant};

use countersign_testkit::Proc;

use crate::{assert_ok, workspace_bin, Stack};

/// A running demonstration application.
pub struct Demo {
    _proc: Proc,
    port: u16,
}

impl Demo {
    /// Registers `client_id` as `name` with the server and starts the
    /// application for it (ID tokens signed with RS256).
    pub fn start(stack: &Stack, client_id: &str, name: &str) -> Self {
        Self::start_signed(stack, client_id, name, "RS256")
    }

    /// As [`Demo::start`], with ID tokens signed with `alg` (`RS256`,
    /// `ES256` or `EdDSA`), which the application's library then checks.
    pub fn start_signed(stack: &Stack, client_id: &str, name: &str, alg: &str) -> Self {
        let port = countersign_testkit::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let callback = format!("{base}/callback");
        let signed_out = format!("{base}/signed-out");
        let out = stack.server(&[
            "client",
            "add",
            client_id,
            "--name",
            name,
            "--redirect-uri",
            &callback,
            "--post-logout-redirect-uri",
            &signed_out,
            "--id-token-alg",
            alg,
        ]);
        assert_ok(&out, "client add");
        let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let proc = Proc::spawn(
            std::process::Command::new(workspace_bin("lets-demo"))
                .args(["--issuer", &stack.url("")])
                .args(["--client-id", client_id, "--name", name])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .arg("--ca")
                .arg(stack.file("data/tls-cert.pem"))
                .env("LETS_DEMO_CLIENT_SECRET", secret)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Demo { _proc: proc, port }
    }

    /// The address of one of its pages.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

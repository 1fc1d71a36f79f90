//! A small W3C WebDriver client (the few commands the window tests use),
//! plus the Xvfb display and `tauri-driver` it talks through.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A process, with all it started, killed when the test ends.
pub struct Proc(Child);

impl Proc {
    /// Spawns `cmd` as the leader of a new process group, so that what it
    /// starts (tauri-driver starts WebKitWebDriver and the app) dies with it.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        cmd.process_group(0).spawn().map(Proc)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Xvfb on a free display number; returns it and the process.
pub fn xvfb() -> (String, Proc) {
    for n in 90..140 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let display = format!(":{n}");
        let proc = Proc::spawn(
            Command::new("Xvfb")
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1280x900x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("Xvfb is missing: ./test.sh installs it (Debian package xvfb)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start on {display}");
            std::thread::sleep(Duration::from_millis(50));
        }
        return (display, proc);
    }
    panic!("no free X display number");
}

/// A WebDriver session on the app, through tauri-driver.
pub struct Session {
    http: reqwest::blocking::Client,
    base: String,
    driver: Proc,
}

impl Session {
    /// Starts tauri-driver on `port` (WebKitWebDriver on `port + 1`) and
    /// opens the app at `app` with `env` set.
    pub fn start(app: &Path, display: &str, port: u16, env: &[(&str, &Path)]) -> Self {
        Self::start_timed(app, display, port, env).0
    }

    /// [`Session::start`], also returning when the app was asked to start
    /// (after the driver is up).
    pub fn start_timed(
        app: &Path,
        display: &str,
        port: u16,
        env: &[(&str, &Path)],
    ) -> (Self, Instant) {
        let driver = home_bin("tauri-driver");
        // What the driver and the app print, for a failed run to be read.
        let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tauri-driver.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(&driver);
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &(port + 1).to_string(),
        ])
        // Not WEBKIT_DISABLE_COMPOSITING_MODE: without compositing, a
        // screenshot after a resize never returns.
        .env("DISPLAY", display)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let driver = Proc::spawn(&mut cmd).unwrap_or_else(|e| {
            panic!(
                "{} could not start ({e}): ./test.sh installs it (cargo install tauri-driver)",
                driver.display()
            )
        });
        // WebDriver is plain HTTP, but reqwest's client wants a TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps =
            json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": app}}}});
        let launched = Instant::now();
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}; see {}", log_path.display()))
            .to_string();
        let session = Session {
            http,
            base: format!("{base}/session/{id}"),
            driver,
        };
        (session, launched)
    }

    /// The driver's process id; the app runs below it.
    pub fn driver_pid(&self) -> u32 {
        self.driver.0.id()
    }

    fn send(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req.send().unwrap().json().unwrap();
        if let Some(e) = v["value"]["error"].as_str() {
            panic!("WebDriver {method} {path}: {e}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    /// Runs a script in the window and returns its value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Waits until `condition` (a script expression) is true.
    pub fn wait_for(&self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.script(&format!("return !!({condition});"), json!([])) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.send(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    /// Clicks an element.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.send("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// Clears a field and types into it.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.send("POST", &format!("/element/{id}/clear"), json!({}));
        self.send(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        );
    }

    /// Chooses `path` in a file input (which may be hidden behind its label).
    pub fn choose_file(&self, css: &str, path: &Path) {
        let id = self.element(css);
        self.send(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": path.to_string_lossy()}),
        );
    }

    /// An element's visible text.
    pub fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.send("GET", &format!("/element/{id}/text"), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Resizes the window.
    pub fn resize(&self, width: u32, height: u32) {
        self.send(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        );
    }

    /// Saves a PNG screenshot of the window.
    pub fn screenshot(&self, path: &Path) {
        let v = self.send("GET", "/screenshot", json!({}));
        let png = data_encoding::BASE64
            .decode(v.as_str().unwrap_or_default().as_bytes())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
    }
}

fn home_bin(name: &str) -> std::path::PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let local = cargo_home.join("bin").join(name);
    if local.exists() {
        local
    } else {
        name.into()
    }
}

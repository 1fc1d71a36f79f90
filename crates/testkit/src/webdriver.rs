//! A small W3C WebDriver client: the few commands the end-to-end tests
//! use, on a session opened through tauri-driver (the app) or chromedriver
//! (headless chromium).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::process::{cargo_bin, free_port, free_ports, wait_for_port, Proc};

/// A WebDriver session.
pub struct Session {
    http: reqwest::blocking::Client,
    base: String,
    driver: Proc,
}

impl Session {
    /// Starts tauri-driver (WebKitWebDriver beside it) and opens the app at
    /// `app` on `display`, with `env` set for it.
    pub fn tauri(app: &Path, display: &str, env: &[(&str, &Path)]) -> Self {
        Self::tauri_timed(app, display, env).0
    }

    /// [`Session::tauri`], also returning when the app was asked to start
    /// (after the driver is up).
    pub fn tauri_timed(app: &Path, display: &str, env: &[(&str, &Path)]) -> (Self, Instant) {
        let [port, native] = free_ports();
        let mut cmd = Command::new(cargo_bin("tauri-driver"));
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        // Not WEBKIT_DISABLE_COMPOSITING_MODE: without compositing, a
        // screenshot after a resize never returns.
        .env("DISPLAY", display);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let caps = json!({"tauri:options": {"application": app}});
        // tauri-driver listens before WebKitWebDriver behind it does, and
        // drops a request it cannot forward: wait for both.
        Self::open(
            cmd,
            "tauri-driver (cargo install tauri-driver; ./test.sh does)",
            &[port, native],
            caps,
        )
    }

    /// Starts chromedriver and a headless Debian chromium that accepts the
    /// test server's self-signed certificate.
    pub fn chromium(width: u32, height: u32) -> Self {
        Self::chromium_with(width, height, &[])
    }

    /// [`Session::chromium`] with more command-line switches for chromium
    /// (e.g. `--force-device-scale-factor=2`).
    pub fn chromium_with(width: u32, height: u32, switches: &[&str]) -> Self {
        let port = free_port();
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
        ];
        args.extend(switches.iter().map(|s| s.to_string()));
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"));
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
            },
        });
        Self::open(
            cmd,
            "chromedriver (Debian chromium-driver; ./test.sh installs it)",
            &[port],
            caps,
        )
        .0
    }

    /// Starts the driver with `cmd`, waits until every one of `ports`
    /// listens (the first is the one spoken to) and opens a session.
    fn open(mut cmd: Command, what: &str, ports: &[u16], caps: Value) -> (Self, Instant) {
        let port = ports[0];
        // What the driver and the browser print, for a failed run to be read.
        let log_path = log_path(port);
        let log = std::fs::File::create(&log_path).unwrap();
        cmd.stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let driver =
            Proc::spawn(&mut cmd).unwrap_or_else(|e| panic!("{what} could not start: {e}"));
        // WebDriver is plain HTTP, but reqwest's client wants a TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for &p in ports {
            wait_for_port(p, what);
        }
        let launched = Instant::now();
        // A driver that has just said it listens has, rarely, reset the
        // first connection: that request is sent again (twice at most);
        // an answer, even a refusal, is taken as it is.
        let body = json!({"capabilities": {"alwaysMatch": caps}});
        let mut tries = 0;
        let resp = loop {
            tries += 1;
            match http.post(format!("{base}/session")).json(&body).send() {
                Ok(resp) => break resp,
                Err(e) if tries < 3 && (e.is_connect() || e.is_request()) => {
                    eprintln!("{what}: opening a session failed ({e}); trying again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!(
                    "{what}: opening a session failed: {e}; see {}",
                    log_path.display()
                ),
            }
        };
        let v: Value = resp.json().unwrap();
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
        self.driver.id()
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

    /// Opens `url`.
    pub fn goto(&self, url: &str) {
        self.send("POST", "/url", json!({ "url": url }));
    }

    /// The address of the page shown.
    pub fn url(&self) -> String {
        self.send("GET", "/url", json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the window and returns its value.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Runs an asynchronous script: it gets a callback as its last
    /// argument and answers by calling it.
    pub fn script_async(&self, script: &str, args: Value) -> Value {
        self.send(
            "POST",
            "/execute/async",
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

    /// The window's place and size on the screen: x, y, width, height.
    pub fn window_rect(&self) -> (i64, i64, u64, u64) {
        let r = self.send("GET", "/window/rect", json!({}));
        let n = |k: &str| r[k].as_f64().unwrap_or_default();
        (
            n("x") as i64,
            n("y") as i64,
            n("width") as u64,
            n("height") as u64,
        )
    }

    /// Saves a PNG screenshot of the page, as the browser engine draws it.
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

/// Where a driver's output goes: the system's temporary folder.
fn log_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("countersign-webdriver-{port}.log"))
}

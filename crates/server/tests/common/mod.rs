//! A real server on loopback (temporary data folder, TLS with a pinned
//! self-signed certificate) and a minimal device built on the core.

use std::sync::Arc;
use std::time::Duration;

use countersign_core::api::{ActivateRequest, ActivateResponse, ErrorBody, Verdict};
use countersign_core::otp::Otp;
use countersign_core::pin::PinnedVerifier;
use countersign_core::protocol::{ChallengeEnvelope, Decision, Response};
use countersign_core::{Enrollment, SigningKey};
use countersign_server::domain::methods::Authority;
use countersign_server::http::serve::{self, Running};
use countersign_server::infra::config::{Config, MetricsConfig};
use countersign_server::infra::datadir::DataDir;
use countersign_server::infra::tls;
use countersign_server::{now, Server};
use futures_util::StreamExt;
use ring::rand::SystemRandom;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub server: Arc<Server>,
    pub running: Option<Running>,
    pub url: String,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub config: Config,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Self::config();
        tweak(&mut config);
        let dir = tempfile::tempdir().unwrap();
        Self::boot(dir, config).await
    }

    /// A server on the data folder `dir` as it is (restored from a backup,
    /// say), with the tests' configuration.
    pub async fn start_on(dir: tempfile::TempDir) -> Self {
        Self::boot(dir, Self::config()).await
    }

    /// The tests' configuration: the defaults on ports of the system's
    /// choosing.
    fn config() -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics: MetricsConfig {
                listen: "127.0.0.1:0".into(),
            },
            ..Config::default()
        }
    }

    /// Another instance of this server, as on another machine: the same
    /// database and key-encryption key, a data folder and a port of its
    /// own (its keys come from the database). Only on PostgreSQL.
    pub async fn second_instance(&self) -> Self {
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        Self::boot(tempfile::tempdir().unwrap(), config).await
    }

    /// Boots on the data folder `dir`, on the run's back end (PostgreSQL:
    /// the folder's own database, unless `config` names one already).
    async fn boot(dir: tempfile::TempDir, mut config: Config) -> Self {
        let path = dir.path();
        let own = countersign_testkit::postgres::store_for(path);
        if let Some(url) = own.filter(|_| config.store.url.is_empty()) {
            config.store.url = url;
            config.store.kek_file = Some(countersign_testkit::postgres::kek_file());
        }
        let data = DataDir::open(path).unwrap();
        // As `serve` does: the store first (an instance on PostgreSQL takes
        // the shared TLS key from it), then TLS.
        let mut server = Server::open_serving(config.clone(), &data).unwrap();
        let t = tls::setup(&config, &data).unwrap();
        server.use_tls(&t);
        let server = Arc::new(server);
        let running = serve::start(server.clone(), t.config, config.listen, &data)
            .await
            .unwrap();
        let url = format!("https://{}", running.addr);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(PinnedVerifier::client_config(t.pin.unwrap()).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let admin_token = data.admin_token().unwrap().to_string();
        let mut ts = TestServer {
            dir,
            server,
            running: Some(running),
            url,
            http,
            admin_token,
            config,
        };
        // Enrollment payloads carry the real address.
        ts.config.listen = ts.running.as_ref().unwrap().addr;
        ts
    }

    /// Stops the server and starts it again on the same data and port.
    pub async fn restart(mut self) -> Self {
        let addr = self.running.as_ref().unwrap().addr;
        self.running.take().unwrap().shutdown().await;
        let mut config = self.config.clone();
        config.listen = addr;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::boot(dir, config).await
    }

    /// A client that trusts this server's pinned key, to set up further
    /// (cookies, redirects).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().use_preconfigured_tls(
            PinnedVerifier::client_config(self.server.tls_pin.unwrap()).unwrap(),
        )
    }

    /// Where Prometheus would scrape this server.
    pub fn metrics_url(&self) -> String {
        let addr = self.running.as_ref().unwrap().metrics_addr.unwrap();
        format!("http://{addr}/metrics")
    }

    pub fn add_user(&self, username: &str) -> String {
        let (_, pw) = self
            .server
            .add_user(username, "Clark", "Kent", Some("4321"), "test", now())
            .unwrap();
        pw.to_string()
    }

    pub fn enrollment(&self, username: &str) -> Enrollment {
        self.server
            .enrollment(username, "test", Authority::Proven, now())
            .unwrap()
            .0
    }

    /// Activates a new device for `username` over HTTP.
    pub async fn enroll(&self, username: &str) -> TestDevice {
        let e = self.enrollment(username);
        let key = SigningKey::generate(&SystemRandom::new()).unwrap();
        let resp = self.activate(&e.code, &key).await;
        assert_eq!(resp.status(), 200, "activation");
        let a: ActivateResponse = resp.json().await.unwrap();
        TestDevice {
            key,
            activation: a,
            server_key: e.server_key,
        }
    }

    pub async fn activate(&self, code: &str, key: &SigningKey) -> reqwest::Response {
        let req = ActivateRequest {
            code: code.into(),
            device_key: key.public_key(),
            receipt_key: None,
            device_name: "Test phone".into(),
            platform: "cli".into(),
            app_version: "0.1.0".into(),
        };
        self.http
            .post(format!("{}/api/v1/devices/activate", self.url))
            .json(&req)
            .send()
            .await
            .unwrap()
    }

    /// Creates a test challenge through the admin API; returns (id, number).
    pub async fn push(&self, username: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/admin/push", self.url))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"username": username, "application": "ALEA Portal", "ip": "203.0.113.7", "location": "Montgomery, AL"}))
            .send()
            .await
            .unwrap()
    }

    pub async fn push_ok(&self, username: &str) -> (String, u8) {
        let resp = self.push(username).await;
        assert_eq!(resp.status(), 200, "push");
        let v: serde_json::Value = resp.json().await.unwrap();
        (
            v["challenge_id"].as_str().unwrap().to_string(),
            v["number"].as_u64().unwrap() as u8,
        )
    }

    pub async fn status(&self, challenge_id: &str) -> String {
        self.status_within(challenge_id, 0).await
    }

    /// The status once final, waiting up to `wait` seconds (long-poll).
    pub async fn status_within(&self, challenge_id: &str, wait: u64) -> String {
        let v: Verdict = self
            .http
            .get(format!(
                "{}/api/v1/challenges/{challenge_id}?wait={wait}",
                self.url
            ))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.status.as_str().to_string()
    }

    pub async fn check_totp(&self, username: &str, code: &str) -> bool {
        let v: serde_json::Value = self
            .http
            .post(format!("{}/api/v1/totp/verify", self.url))
            .bearer_auth(&self.admin_token)
            .json(&serde_json::json!({"username": username, "code": code}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["accepted"].as_bool().unwrap()
    }
}

pub struct TestDevice {
    pub key: SigningKey,
    pub activation: ActivateResponse,
    pub server_key: countersign_core::PublicKey,
}

impl TestDevice {
    pub fn id(&self) -> &str {
        &self.activation.device_id
    }

    pub fn challenges_url(&self, ts: &TestServer) -> String {
        format!("{}/api/v1/devices/{}/challenges", ts.url, self.id())
    }

    /// Opens the device's challenge stream (plain server-sent events) on
    /// `ts`.
    pub async fn open_stream(&self, ts: &TestServer) -> reqwest::Response {
        let stream = ts
            .http
            .get(self.challenges_url(ts))
            .bearer_auth(&self.activation.channel_token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200, "the challenge stream opens");
        stream
    }

    /// Long-poll for challenges.
    pub async fn poll(&self, ts: &TestServer, wait: u64) -> Vec<ChallengeEnvelope> {
        let list = self.poll_unchecked(ts, wait).await;
        for e in &list {
            e.verify_trusting(&self.server_key)
                .expect("server signature");
        }
        list
    }

    /// Long-poll for challenges, without checking their signatures.
    pub async fn poll_unchecked(&self, ts: &TestServer, wait: u64) -> Vec<ChallengeEnvelope> {
        let resp = ts
            .http
            .get(format!("{}?wait={wait}", self.challenges_url(ts)))
            .bearer_auth(&self.activation.channel_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub fn response(&self, challenge_id: &str, decision: Decision, number: Option<u8>) -> Response {
        Response::sign(
            challenge_id,
            self.id(),
            decision,
            number,
            "",
            now(),
            &self.key,
        )
        .unwrap()
    }

    /// Posts an answer; returns the HTTP status and the body.
    pub async fn answer(&self, ts: &TestServer, r: &Response) -> (u16, serde_json::Value) {
        let resp = ts
            .http
            .post(format!(
                "{}/api/v1/challenges/{}/response",
                ts.url, r.challenge_id
            ))
            .json(r)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub fn otp(&self) -> Otp {
        self.activation.totp.otp().unwrap()
    }
}

/// Reads SSE `data:` payloads of `challenge` events until `n` arrived.
pub async fn sse_challenges(resp: reqwest::Response, n: usize) -> Vec<ChallengeEnvelope> {
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: challenge") {
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                out.push(serde_json::from_str(data).unwrap());
            }
        }
    }
    out
}

pub async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap();
    (status, body.code)
}

/// The text between `start` and the next `end` after it.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in page:\n{html}"))
        + start.len();
    let j = html[i..].find(end).unwrap() + i;
    &html[i..j]
}

/// `countersign-server` on `dir/data` with `dir/server.toml`, on the run's
/// back end, with none of the environment's overrides.
pub fn server_command(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_countersign-server"));
    c.arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("server.toml"))
        .env_remove("COUNTERSIGN_LISTEN")
        .env_remove("COUNTERSIGN_LOG");
    countersign_testkit::postgres::store_env(&mut c, &dir.join("data"));
    c
}

/// Runs `countersign-server --data DATA ARGS` on the SQLite default, with
/// none of the environment's overrides.
pub fn on_folder(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_countersign-server"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("COUNTERSIGN_CONFIG")
        .env_remove("COUNTERSIGN_LISTEN")
        .env_remove("COUNTERSIGN_STORE_URL")
        .env_remove("COUNTERSIGN_BACKUP_PASSPHRASE")
        .output()
        .unwrap()
}

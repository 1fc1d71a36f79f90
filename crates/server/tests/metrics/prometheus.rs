//! Debian's real Prometheus (`/usr/bin/prometheus`, package `prometheus`;
//! `./test.sh` installs it) scrapes a server every second while devices
//! approve pushes, and its query API then returns the server's counts.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use countersign_core::protocol::Decision;
use countersign_testkit::Proc;

use crate::common::{TestDevice, TestServer};

/// Prometheus on loopback in a temporary folder, scraping `target`.
struct Prometheus {
    _proc: Proc,
    http: reqwest::Client,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr, http: reqwest::Client) -> Self {
        let bin = "/usr/bin/prometheus";
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install Debian's prometheus package (./test.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: countersign\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = countersign_testkit::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let proc = Proc::spawn(
            Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(log),
        )
        .unwrap();
        countersign_testkit::process::wait_for_port(port, "prometheus");
        Prometheus {
            _proc: proc,
            http,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The single value `query` gives now, if any.
    async fn value(&self, query: &str) -> Option<f64> {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        assert_eq!(v["status"], "success", "query {query}: {v}");
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits (up to 30 s) until `query` gives `want`; returns what it gave last.
    async fn wait_for(&self, query: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.value(query).await;
            if got == Some(want) || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Approves pushes to `dev` until `until`; returns how many.
async fn approve_until(ts: &TestServer, user: &str, dev: &TestDevice, until: Instant) -> u64 {
    let mut n = 0;
    while Instant::now() < until {
        let (id, number) = ts.push_ok(user).await;
        let (status, body) = dev
            .answer(ts, &dev.response(&id, Decision::Approve, Some(number)))
            .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("approved")));
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_push_count_during_a_load_run() {
    let ts = TestServer::start_with(|c| c.push.max_per_window = 1_000_000).await;
    let prometheus = Prometheus::start(
        ts.running.as_ref().unwrap().metrics_addr.unwrap(),
        ts.http.clone(),
    );
    let users = ["cs0211", "cs0212", "cs0213", "cs0214"];
    let mut devices = Vec::new();
    for u in users {
        ts.add_user(u);
        devices.push(ts.enroll(u).await);
    }
    assert_eq!(
        prometheus.wait_for("up{job=\"countersign\"}", 1.0).await,
        Some(1.0),
        "Prometheus reaches the metrics listener"
    );

    // Four devices approve pushes for 4 s, scraped every second.
    let until = Instant::now() + Duration::from_secs(4);
    let counts = futures_util::future::join_all(
        users
            .iter()
            .zip(&devices)
            .map(|(u, d)| approve_until(&ts, u, d, until)),
    )
    .await;
    let total: u64 = counts.iter().sum();
    assert!(total > 0);

    let approved = "countersign_challenges_total{result=\"approved\"}";
    assert_eq!(
        prometheus.wait_for(approved, total as f64).await,
        Some(total as f64)
    );
    assert_eq!(
        prometheus
            .wait_for("countersign_pushes_total", total as f64)
            .await,
        Some(total as f64)
    );
    assert_eq!(
        prometheus
            .wait_for("countersign_push_round_trip_seconds_count", total as f64)
            .await,
        Some(total as f64)
    );
    // Scraped during the run, not only after it: several distinct values.
    let changes = prometheus
        .value("changes(countersign_pushes_total[1m])")
        .await
        .unwrap_or(0.0);
    assert!(
        changes >= 2.0,
        "the count changed {changes} times between scrapes"
    );
}

/// The alert examples in docs/OPERATIONS.md are valid rules, and every
/// series they and the dashboard name is one the server serves.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_alerts_and_dashboard_use_real_series() {
    let doc = include_str!("../../../../docs/OPERATIONS.md");
    let rules = doc
        .split("```yaml\n")
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with("groups:"))
        .expect("an alert rules example in OPERATIONS.md");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool (Debian's prometheus package; ./test.sh installs it)");
    assert!(
        out.status.success(),
        "promtool refused the documented rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ts = TestServer::start().await;
    let served = super::scrape(&ts).await;
    let section = doc
        .split("## Metrics (Prometheus)")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    let mut named = 0;
    for word in section.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(base) = word.strip_prefix("countersign_") {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .fold(base, |b, s| b.strip_suffix(s).unwrap_or(b));
            assert!(
                served.contains(&format!("# TYPE countersign_{base} ")),
                "OPERATIONS.md names countersign_{base}, which the server does not serve"
            );
            named += 1;
        }
    }
    assert!(named > 20, "the section names the series ({named} found)");
}

//! Two `countersign-server serve` instances on one PostgreSQL database
//! behind nginx (TLS passed through by its stream module), 50 devices in
//! one `countersign simulate`, pushes created continuously through both
//! instances. Instance A is killed with SIGKILL: its devices reconnect
//! through nginx to B within 5 s, challenges pending at the kill are still
//! answered, no acknowledged answer is lost, the audit chain verifies, and
//! A, started again, rejoins with no manual step.
//!
//! Runs on the PostgreSQL pass of `./test.sh` (it needs a database two
//! processes share); skipped with a printed reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_e2e::{assert_ok, workspace_bin, Stack};
use countersign_testkit::{free_ports, Proc};

const DEVICES: usize = 50;
const OFFICER: &str = "cs3001";

/// The admin API of one instance, pinned to the shared certificate.
struct Admin {
    http: reqwest::blocking::Client,
    token: String,
}

/// A challenge the admin API created (acknowledged).
#[derive(Clone)]
struct Pushed {
    id: String,
    number: u8,
    /// The application named, unique per push: how the devices' log
    /// names it.
    app: String,
}

impl Admin {
    fn new(stack: &Stack) -> Self {
        let data = countersign_server::infra::datadir::DataDir::open(&stack.file("data")).unwrap();
        let runtime = countersign_server::http::serve::running_server(&data).unwrap();
        let pin = runtime.tls_pin().unwrap();
        let tls = countersign_core::pin::PinnedVerifier::client_config(pin).unwrap();
        Admin {
            http: reqwest::blocking::Client::builder()
                .use_preconfigured_tls(tls)
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            token: data.admin_token().unwrap().to_string(),
        }
    }

    /// A push to `device` through the instance on `port`; `None` if the
    /// instance did not acknowledge it.
    fn push(&self, port: u16, device: &str, app: &str) -> Option<Pushed> {
        let resp = self
            .http
            .post(format!("https://127.0.0.1:{port}/api/v1/admin/push"))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({
                "username": OFFICER, "device_id": device, "application": app,
                "ip": "203.0.113.7", "location": "Montgomery, AL"
            }))
            .send()
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: serde_json::Value = resp.json().ok()?;
        Some(Pushed {
            id: v["challenge_id"].as_str()?.to_string(),
            number: v["number"].as_u64()? as u8,
            app: app.to_string(),
        })
    }

    /// Device streams held by the instance on `port`.
    fn streams(&self, port: u16) -> Option<u64> {
        let v: serde_json::Value = self
            .http
            .get(format!("https://127.0.0.1:{port}/api/v1/admin/streams"))
            .bearer_auth(&self.token)
            .send()
            .ok()?
            .json()
            .ok()?;
        v["connected"].as_u64()
    }

    /// A challenge's final status as the instance on `port` hears it.
    fn verdict(&self, port: u16, id: &str) -> String {
        let v: serde_json::Value = self
            .http
            .get(format!(
                "https://127.0.0.1:{port}/api/v1/challenges/{id}?wait=10"
            ))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["status"].as_str().unwrap().to_string()
    }
}

/// `countersign-server serve` on the stack's data folder and database.
fn instance(stack: &Stack, port: u16) -> Proc {
    let log = std::fs::File::create(stack.file(&format!("serve-{port}.log"))).unwrap();
    let listen = format!("127.0.0.1:{port}");
    let p = Proc::spawn(
        stack
            .server_command(&["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(log),
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "the instance to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

/// nginx passing TLS through to both instances, with settings for
/// long-lived device streams.
fn nginx(dir: &Path, port: u16, upstreams: [u16; 2]) -> Proc {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n\
             worker_processes 1;\nerror_log {log};\npid {pid};\n\
             events {{ worker_connections 1024; }}\n\
             stream {{\n\
               upstream countersign {{\n\
                 server 127.0.0.1:{a} max_fails=1 fail_timeout=10s;\n\
                 server 127.0.0.1:{b} max_fails=1 fail_timeout=10s;\n\
               }}\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 proxy_pass countersign;\n\
                 proxy_connect_timeout 1s;\n\
                 proxy_timeout 1h;\n\
                 proxy_socket_keepalive on;\n\
               }}\n\
             }}\n",
            log = dir.join("nginx-error.log").display(),
            pid = dir.join("nginx.pid").display(),
            a = upstreams[0],
            b = upstreams[1],
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| Path::new(b).exists())
        .unwrap_or("nginx");
    let p = Proc::spawn(
        Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .expect("nginx from Debian (apt-get install nginx libnginx-mod-stream)");
    wait_for(Duration::from_secs(10), "nginx to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Appends a push's number where the devices read it (as `countersign-server
/// push` prints it).
fn tell_number(file: &Mutex<PathBuf>, p: &Pushed) {
    let path = file.lock().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&*path)
        .unwrap();
    write!(f, "number: {}\nchallenge: {}\n", p.number, p.id).unwrap();
}

/// The stored status of every challenge, by id.
fn statuses(stack: &Stack) -> HashMap<String, String> {
    countersign_testkit::postgres::sql(
        &stack.file("data"),
        "SELECT id, status FROM challenges",
        &[],
    )
    .into_iter()
    .map(|mut r| (r.remove(0), r.remove(0)))
    .collect()
}

#[test]
fn a_killed_instance_loses_no_answer_and_its_devices_move_to_the_other() {
    if !countersign_testkit::postgres::on_postgres() {
        println!("skipped: the failover test needs PostgreSQL (./test.sh runs it on its cluster)");
        return;
    }
    let [lb, port_a, port_b] = free_ports();
    let stack = Stack::prepare(
        OFFICER,
        &format!(
            "public_url = \"https://127.0.0.1:{lb}\"\n[push]\nmax_per_window = 1000000\nttl_seconds = 120\n"
        ),
    );
    let mut a = Some(instance(&stack, port_a));
    let _b = instance(&stack, port_b);
    let _nginx = nginx(&stack.file(""), lb, [port_a, port_b]);
    let admin = Admin::new(&stack);

    // 50 devices, enrolled and streaming through nginx.
    let mut payloads = String::new();
    for _ in 0..DEVICES {
        payloads.push_str(&stack.enroll_link());
        payloads.push('\n');
    }
    std::fs::write(stack.file("payloads.txt"), payloads).unwrap();
    let numbers = Arc::new(Mutex::new(stack.file("numbers.txt")));
    std::fs::write(stack.file("numbers.txt"), "").unwrap();
    let sim_log = stack.file("simulate.log");
    let _sim = Proc::spawn(
        Command::new(workspace_bin("countersign"))
            .args(["simulate", "--seconds", "300", "--payloads"])
            .arg(stack.file("payloads.txt"))
            .arg("--numbers")
            .arg(stack.file("numbers.txt"))
            .env("COUNTERSIGN_HOME", stack.file("sim-home"))
            .stdout(std::fs::File::create(&sim_log).unwrap())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let both =
        |admin: &Admin| admin.streams(port_a).unwrap_or(0) + admin.streams(port_b).unwrap_or(0);
    wait_for(Duration::from_secs(60), "50 device streams", || {
        both(&admin) == DEVICES as u64
    });
    let on_a_before = admin.streams(port_a).unwrap();
    assert!(on_a_before > 0, "nginx sent no stream to A");
    let devices: Vec<String> = countersign_testkit::postgres::sql(
        &stack.file("data"),
        "SELECT id FROM devices WHERE removed_at IS NULL ORDER BY created_at, id",
        &[],
    )
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect();
    assert_eq!(devices.len(), DEVICES);

    // Pushes through both instances, without pause, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<Pushed>::new()));
    let pusher = {
        let (stop, acked, numbers, devices) = (
            stop.clone(),
            acked.clone(),
            numbers.clone(),
            devices.clone(),
        );
        let admin = Admin::new(&stack);
        std::thread::spawn(move || {
            for i in 0usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let port = if i % 2 == 0 { port_a } else { port_b };
                if let Some(p) = admin.push(port, &devices[i % DEVICES], &format!("Push {i}")) {
                    tell_number(&numbers, &p);
                    acked.lock().unwrap().push(p);
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(4));

    // Three sign-ins through A whose numbers the officer has not typed yet
    // when A dies: pending at the kill.
    let held: Vec<Pushed> = (0..3)
        .map(|i| {
            admin
                .push(port_a, &devices[i], &format!("Held {i}"))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = Instant::now();
    let pid = a.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    drop(a.take());
    let pending_at_kill = statuses(&stack);
    for h in &held {
        assert_eq!(
            pending_at_kill[&h.id], "pending",
            "held push {} already settled",
            h.id
        );
    }

    // Every device is back, on B, within 5 s.
    wait_for(
        Duration::from_secs(10),
        "the devices to reconnect to B",
        || admin.streams(port_b) == Some(DEVICES as u64),
    );
    let moved_in = killed_at.elapsed();
    assert!(
        moved_in < Duration::from_secs(5),
        "devices took {moved_in:?} to reach B"
    );
    for h in &held {
        tell_number(&numbers, h);
    }
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    pusher.join().unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // A starts again and serves with no manual step: its push reaches a
    // device held by B, and it hears B's answer.
    let _a = instance(&stack, port_a);
    let again = admin
        .push(port_a, &devices[7], "After restart")
        .expect("A serves again");
    tell_number(&numbers, &again);
    assert_eq!(admin.verdict(port_a, &again.id), "approved");

    // What was acknowledged is there.
    let stored = statuses(&stack);
    let log = std::fs::read_to_string(&sim_log).unwrap();
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 100, "too little load: {} pushes", acked.len());
    for p in acked.iter().chain(&held) {
        assert!(
            stored.contains_key(&p.id),
            "acknowledged push {} lost",
            p.id
        );
    }
    // Every answer the server acknowledged to a device is stored as such
    // (a device logs `device #N (account): APP from IP -> approve -> approved`),
    // and the pushes pending at the kill were answered afterwards.
    let by_app: HashMap<&str, &Pushed> = acked
        .iter()
        .chain(&held)
        .chain([&again])
        .map(|p| (p.app.as_str(), p))
        .collect();
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.ends_with("-> approve -> approved"))
        .filter_map(|l| {
            l.split_once("): ")?
                .1
                .split_once(" from ")
                .map(|(app, _)| app)
        })
        .collect();
    assert!(
        answered.len() >= acked.len() / 2,
        "{} answers for {} pushes",
        answered.len(),
        acked.len()
    );
    for app in &answered {
        let p = by_app
            .get(app)
            .unwrap_or_else(|| panic!("a device answered {app}, never pushed"));
        assert_eq!(
            stored[&p.id], "approved",
            "the acknowledged answer to {app} was lost"
        );
    }
    for h in &held {
        assert_eq!(
            stored[&h.id], "approved",
            "held push {} after the kill",
            h.id
        );
    }
    let verify = stack.server(&["audit", "verify"]);
    assert_ok(&verify, "audit verify");
    println!(
        "failover: {} pushes acknowledged, {} answers acknowledged, {on_a_before} of {DEVICES} streams on A moved to B in {moved_in:?}; none lost",
        acked.len(),
        answered.len()
    );
}

//! `countersign-server bench`: a load driver. It seeds a temporary data
//! folder, starts `countersign-server serve` as a child process (so its
//! memory is measured alone), connects device streams over TLS, and drives
//! full push round trips: create (admin API) → delivered (SSE) → signed
//! approval → verdict. Then it opens many idle streams, reads the
//! server's resident memory, and pushes to the connected devices again
//! beside them.

use anyhow::{bail, Context};
use countersign_core::api::ActivateRequest;
use countersign_core::pin::PinnedVerifier;
use countersign_core::protocol::ChallengeEnvelope;
use countersign_core::SigningKey;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;

use countersign_server::domain::methods::Authority;
use countersign_server::http::serve::running_server;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::infra::tls;
use countersign_server::store::NewUser;
use countersign_server::{now, Server};
use tokio::sync::mpsc;

mod balancer;
mod cpu;
mod idle;
mod load;
mod options;
pub mod sso;
use load::*;
pub use options::BenchOptions;

pub(super) struct Device {
    id: String,
    /// Its officer, named in each push as the sign-in page names the
    /// session's user.
    username: String,
    token: String,
    key: SigningKey,
}

/// Runs the benchmark and prints the figures.
pub fn run(opts: &BenchOptions) -> anyhow::Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let needed = (opts.devices + opts.idle_streams + 200) as u64;
    if limit < needed {
        bail!("open-file limit is {limit}; {needed} are needed (raise `ulimit -n`)");
    }
    if opts.instances > 1 && opts.store.is_none() {
        bail!("several instances share a PostgreSQL database: pass --store postgres://...");
    }
    let tmp = tempdir()?;
    let ports = (0..opts.instances)
        .map(|_| {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        })
        .collect::<anyhow::Result<Vec<u16>>>()?;
    let config_path = tmp.join("bench.toml");
    let store = match &opts.store {
        Some(url) => {
            let mut kek = [0u8; 32];
            ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut kek)
                .map_err(|_| anyhow::anyhow!("random generator failed"))?;
            std::fs::write(tmp.join("kek"), data_encoding::BASE64.encode(&kek))?;
            format!(
                "[store]\nurl = \"{url}\"\nkek_file = \"{}\"\n",
                tmp.join("kek").display()
            )
        }
        None => String::new(),
    };
    std::fs::write(
        &config_path,
        format!(
            "listen = \"127.0.0.1:{}\"\n[push]\nmax_per_window = 1000000\nttl_seconds = 60\n\
             [connections]\nper_address = 1000000\nworkers = {}\n[lockout]\nper_address_failures = 1000000\n{store}",
            ports[0], opts.server_workers
        ),
    )?;
    let total = opts.devices.max(opts.idle_streams);
    eprintln!("seeding {total} users and devices in {}", tmp.display());
    let devices = seed(&tmp, &config_path, total)?;
    // Stopped on every way out, an error included: none outlives the bench.
    let mut children = Servers(Vec::new());
    for port in &ports {
        children.0.push(start_child(&tmp, &config_path, *port)?);
    }
    let balancer = match ports.len() {
        1 => None,
        _ => Some(balancer::Nginx::start(&tmp, &ports)?),
    };
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect();
    let front = balancer.as_ref().map_or(bases[0].clone(), |b| b.url());
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            // Stopped by Ctrl-C or `kill`, the bench still stops its
            // servers and removes its folder (below).
            use tokio::signal::unix::{signal, SignalKind};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            tokio::select! {
                r = drive(&tmp, &children.0, &bases, &front, opts, devices) => r,
                _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted")),
                _ = terminate.recv() => Err(anyhow::anyhow!("terminated")),
            }
        });
    drop(balancer);
    drop(children);
    result
}

/// The serve processes the bench started.
struct Servers(Vec<Child>);

impl Drop for Servers {
    /// Asks each to stop (SIGTERM, through `kill(1)`: the crate has no
    /// unsafe code), so that it says how its writes shared commits as it
    /// stops; kills any still running after 5 s.
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for child in &mut self.0 {
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The bench's temporary data folder (its database and key-encryption
/// key), removed on every way out.
struct Scratch(std::path::PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> anyhow::Result<Scratch> {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b)
        .map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let dir = std::env::temp_dir().join(format!(
        "countersign-bench-{}",
        data_encoding::HEXLOWER.encode(&b)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(Scratch(dir))
}

/// Creates users and activates one device each, through the library.
fn seed(dir: &Path, config_path: &Path, n: usize) -> anyhow::Result<Vec<Device>> {
    let config = Config::load(Some(config_path), None)?;
    let data = DataDir::open(dir)?;
    let mut server = Server::open(config.clone(), &data)?;
    if !server.store.is_empty()? {
        bail!("the bench needs an empty database (it adds its own users): create a new one");
    }
    server.use_tls(&tls::setup(&config, &data)?);
    // One Argon2 hash shared by every bench user: hashing 10,000 would take minutes.
    let hash = countersign_server::domain::accounts::hash_password("Bench-Password-123")?;
    let rng = SystemRandom::new();
    let t = now();
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let username = format!("bench{i:05}");
        let user = NewUser {
            username: &username,
            first_name: "Bench",
            last_name: "User",
            password_hash: &hash,
            temporary_until: t + 86_400,
        };
        server.store.write(t, |w| w.insert_user(&user, t))?;
        let (e, _) = server.enrollment(&username, "bench", Authority::Proven, t)?;
        let key = SigningKey::generate(&rng)?;
        let req = ActivateRequest {
            code: e.code,
            device_key: key.public_key(),
            receipt_key: None,
            device_name: "bench".into(),
            platform: "cli".into(),
            app_version: String::new(),
        };
        let a = server.activate(&req, "127.0.0.1", t)?;
        devices.push(Device {
            id: a.device_id,
            username,
            token: a.channel_token,
            key,
        });
    }
    Ok(devices)
}

fn start_child(dir: &Path, config_path: &Path, port: u16) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("--data")
        .arg(dir)
        .arg("--config")
        .arg(config_path)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("COUNTERSIGN_LOG", "warn,countersign_server::store=info")
        .env_remove("COUNTERSIGN_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the server")?;
    let mut child = Servers(vec![child]);
    let data = DataDir::open(dir)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_server(&data).is_none_or(|r| !r.url.ends_with(&format!(":{port}"))) {
        if let Some(status) = child.0[0].try_wait()? {
            bail!("the server exited as it started ({status}); its messages are above");
        }
        if Instant::now() > deadline {
            bail!("the server did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child.0.remove(0))
}

/// The running server's address and TLS pin, from its runtime file.
fn running(data: &DataDir) -> anyhow::Result<(String, [u8; 32])> {
    let rt = running_server(data).context("runtime file")?;
    let pin = rt.tls_pin().context("the runtime file has no TLS pin")?;
    Ok((rt.url, pin))
}

async fn drive(
    dir: &Path,
    children: &[Child],
    bases: &[String],
    front: &str,
    opts: &BenchOptions,
    devices: Vec<Device>,
) -> anyhow::Result<()> {
    let data = DataDir::open(dir)?;
    let (_, pin) = running(&data)?;
    let base = front.to_string();
    let child = &children[0];
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let http = idle::client(pin, 0)?;
    let admin = data.admin_token()?;
    let devices: Vec<Arc<Device>> = devices.into_iter().map(Arc::new).collect();
    let rss_start = rss_kib(child.id());

    // Phase 1: round trips with `opts.devices` streams connected.
    eprintln!("connecting {} device streams", opts.devices);
    let mut inboxes = HashMap::new();
    let mut streams = Vec::new();
    for d in devices.iter().take(opts.devices) {
        let (tx, rx) = mpsc::channel(8);
        inboxes.insert(d.id.clone(), rx);
        streams.push(tokio::spawn(stream_device(
            http.clone(),
            base.clone(),
            d.clone(),
            !opts.sse,
            Some(tx),
            None,
        )));
    }
    wait_connected(&http, bases, &admin, opts.devices).await;
    let mut buckets: Vec<Bucket> = (0..opts.concurrency).map(|_| Vec::new()).collect();
    for (i, d) in devices.iter().take(opts.devices).enumerate() {
        if let Some(rx) = inboxes.remove(&d.id) {
            buckets[i % opts.concurrency].push((d.clone(), rx));
        }
    }
    let transport = if !opts.sse {
        "the upgraded stream"
    } else {
        "plain SSE"
    };
    println!(
        "push round trips (create → delivered over {transport} → signed approval → approved), TLS on loopback"
    );
    println!("  store:               {}", store_name(opts));
    println!(
        "  serve instances:     {}{}",
        opts.instances,
        if opts.instances > 1 {
            " (behind nginx, TLS passed through)"
        } else {
            ""
        }
    );
    println!("  devices connected:   {}", opts.devices);
    println!("  in flight:           {}", opts.concurrency);
    let ctx = (http.clone(), base.clone(), admin.clone());
    let cpu_before = cpu::before(&pids);
    let (alone, buckets) = round_trips(&ctx, buckets, opts.duration(), false).await?;
    alone.print();
    cpu::print(&pids, &cpu_before, &alone);
    println!(
        "the full round trip, as the app and the sign-in page make it: the same, plus the two \
         signed receipts (delivered, shown) and the page's status read"
    );
    let cpu_before = cpu::before(&pids);
    let (full, buckets) = round_trips(&ctx, buckets, opts.duration(), true).await?;
    full.print();
    cpu::print(&pids, &cpu_before, &full);
    let buckets = if opts.wrong_passwords > 0 {
        println!(
            "the same, with {} wrong-password sign-ins running beside (each an Argon2id check)",
            opts.wrong_passwords
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A browser's steps, each seen (cookies are set on redirects).
        let browser = reqwest::Client::builder()
            .use_preconfigured_tls(PinnedVerifier::client_config(pin)?)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()?;
        let signins: Vec<_> = (0..opts.wrong_passwords)
            .map(|i| {
                let (http, base, stop) = (browser.clone(), base.clone(), stop.clone());
                tokio::spawn(async move { wrong_passwords(http, base, i, stop).await })
            })
            .collect();
        let (beside, buckets) = round_trips(&ctx, buckets, opts.duration(), false).await?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut checks = 0;
        for s in signins {
            checks += s.await?;
        }
        beside.print();
        println!(
            "  password checks:     {checks} ({:.0}/s)",
            checks as f64 / beside.elapsed.as_secs_f64()
        );
        if let (Some(a), Some(b)) = (alone.pct(0.99), beside.pct(0.99)) {
            println!(
                "  p99 beside / alone:  {:.2}×",
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
        buckets
    } else {
        buckets
    };

    // Phase 2: memory with many idle streams (of one process), then
    // pushes to the connected sample beside them.
    if opts.idle_streams > 0 && children.len() > 1 {
        println!("(idle-stream memory is measured with one instance only)");
    }
    if opts.idle_streams > 0 && children.len() == 1 {
        let pid = child.id();
        let idle = idle::open(
            &idle::Target {
                base: &base,
                bases,
                admin: &admin,
                pin,
                pid,
            },
            opts,
            &devices,
            rss_start,
        )
        .await?;
        println!(
            "pushes to the {} connected devices beside the idle streams",
            opts.devices
        );
        let (beside, _) = round_trips(&ctx, buckets, opts.duration(), false).await?;
        beside.print();
        for s in idle {
            s.abort();
        }
    }
    for s in streams {
        s.abort();
    }
    Ok(())
}

/// The devices one worker drives, with their inboxes.
type Bucket = Vec<(Arc<Device>, mpsc::Receiver<ChallengeEnvelope>)>;

/// What a round-trip phase measured.
struct Phase {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Phase {
    fn pct(&self, p: f64) -> Option<Duration> {
        let n = self.latencies.len();
        self.latencies
            .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
            .copied()
    }

    fn print(&self) {
        self.print_as("round trips");
    }

    /// The figures, counting `what` (round trips, exchanges).
    fn print_as(&self, what: &str) {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| {
                format!("{:.2} ms", d.as_secs_f64() * 1000.0)
            })
        };
        let secs = self.elapsed.as_secs_f64();
        let label = format!("{what}:");
        println!(
            "  {label:<21}{} in {secs:.1} s ({} errors)",
            self.latencies.len(),
            self.errors
        );
        println!(
            "  throughput:          {:.0} {what}/s",
            self.latencies.len() as f64 / secs
        );
        println!("  latency p50:         {}", ms(self.pct(0.50)));
        println!("  latency p99:         {}", ms(self.pct(0.99)));
        println!(
            "  latency max:         {}",
            ms(self.latencies.last().copied())
        );
    }
}

/// What the bench runs on, for the report (no password shown).
fn store_name(opts: &BenchOptions) -> String {
    match &opts.store {
        Some(url) => countersign_server::infra::config::StoreConfig {
            url: url.clone(),
            kek_file: None,
        }
        .display_url(),
        None => "SQLite (the embedded default)".into(),
    }
}

pub(super) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

//! Running the server: listener, TLS, the expiry sweeper, the runtime file
//! admin commands read, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::connections;
use crate::infra::datadir::{write_private, DataDir};
use crate::Server;

/// What a running server tells admin commands (`server.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    /// Base URL reachable on this machine.
    pub url: String,
    /// TLS pin (base64url), when TLS is on.
    pub pin: Option<String>,
    /// Process id.
    pub pid: u32,
    /// Where Prometheus scrapes (`http://ADDR/metrics`), when served.
    #[serde(default)]
    pub metrics: Option<String>,
    /// A staged TLS key's pin (base64url), which the server presents from
    /// its switch time on without writing this file again.
    #[serde(default)]
    pub next_pin: Option<String>,
}

impl Runtime {
    /// The TLS pin's 32 bytes; `None` without TLS or when the file's pin
    /// is damaged.
    pub fn tls_pin(&self) -> Option<[u8; 32]> {
        decode_pin(self.pin.as_deref()?)
    }

    /// Every pin the server may present: its own and a staged one.
    pub fn tls_pins(&self) -> Vec<[u8; 32]> {
        [self.pin.as_deref(), self.next_pin.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(decode_pin)
            .collect()
    }
}

fn decode_pin(text: &str) -> Option<[u8; 32]> {
    data_encoding::BASE64URL_NOPAD
        .decode(text.as_bytes())
        .ok()?
        .try_into()
        .ok()
}

/// A started server.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The metrics listener's bound address, when it runs.
    pub metrics_addr: Option<SocketAddr>,
    /// Stops the metrics listener when dropped.
    _metrics_stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    sweeper: tokio::task::JoinHandle<()>,
    keep_alives: tokio::task::JoinHandle<()>,
    runtime_file: std::path::PathBuf,
    /// On PostgreSQL, the thread that follows other instances.
    following: Arc<crate::http::follow::Following>,
    /// On PostgreSQL, the task that tells others which devices stream here.
    reporting: crate::http::reporting::Reporting,
    /// On SQLite, the thread that checkpoints the log, so that no async
    /// worker waits for its sync; stopped when dropped.
    _checkpoints: Option<crate::store::Checkpoints>,
    server: Arc<Server>,
}

impl Drop for Running {
    /// The thread that follows other instances ends with serving, and the
    /// lock that keeps key rotations away with it.
    fn drop(&mut self) {
        self.following.stop();
    }
}

impl Running {
    /// Stops accepting, lets open requests finish (up to 2 s), and waits.
    pub async fn shutdown(mut self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(2)));
        self.sweeper.abort();
        self.keep_alives.abort();
        let _ = (&mut self.task).await;
        self.stopped().await;
    }

    /// Waits until the server stops by itself; an error when it stopped
    /// itself (its keys were rotated under it).
    pub async fn wait(mut self) -> std::io::Result<()> {
        let r = (&mut self.task).await.unwrap_or(Ok(()));
        self.sweeper.abort();
        self.keep_alives.abort();
        self.stopped().await;
        match self.following.fatal() {
            Some(why) => Err(std::io::Error::other(why)),
            None => r,
        }
    }

    /// What every way of stopping ends with, once no request is served.
    async fn stopped(&mut self) {
        self.reporting.stop().await;
        let _ = std::fs::remove_file(&self.runtime_file);
        // Writes whose requests were cut short by the stop still commit.
        self.server.store.commit_pending();
        // How well writes shared commits (store::batch), for the operator
        // and the load driver, whose output this joins.
        if let Some((writes, commits)) = self.server.store.commits() {
            let per_commit = writes as f64 / commits.max(1) as f64;
            tracing::info!(
                target: "countersign_server::store",
                writes,
                commits,
                per_commit = %format!("{per_commit:.1}"),
                "SQLite writes and the commits that carried them"
            );
        }
    }

    /// A handle to ask for shutdown from elsewhere (signal handler).
    pub fn handle(&self) -> axum_server::Handle {
        self.handle.clone()
    }
}

/// Binds `listen` and starts serving in the background.
pub async fn start(
    server: Arc<Server>,
    tls: Option<Arc<rustls::ServerConfig>>,
    listen: SocketAddr,
    dir: &DataDir,
) -> anyhow::Result<Running> {
    // Made before serving, so a failure stops the start and the first
    // unknown account at sign-in costs what every later one does (the
    // command line's other commands never need it).
    crate::domain::passwords::dummy_hash()?;
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let app =
        crate::http::router(server.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let limits = &server.config.connections;
    let (files, total) = connections::raise_file_limit(limits.max);
    // Behind a reverse proxy every connection comes from the proxy, which
    // must limit its clients itself.
    let per_address = tls.is_some().then_some(limits.per_address);
    let gate = connections::Gate::new(total, per_address);
    tracing::info!(
        open_files = files,
        connections = total,
        per_address = ?per_address,
        "connection limits"
    );
    let mut srv = axum_server::from_tcp(listener).handle(handle.clone());
    // Headers must come within the timeout, for the first request and for
    // each next one on a kept-alive connection (so idle ones close too).
    let header_timeout = Duration::from_secs(limits.header_timeout_seconds);
    srv.http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    // Before serving, so that a failure to start it leaves nothing running.
    let checkpoints = server.store.checkpoint_in_background()?;
    let capped = connections::Capped::new(axum_server::accept::DefaultAcceptor, gate.clone());
    let task = match tls {
        Some(config) => {
            let acceptor = crate::http::tls::TlsAcceptor::new(
                capped,
                config,
                Duration::from_secs(limits.handshake_timeout_seconds),
            );
            let acceptor = connections::FirstRequest::new(acceptor, header_timeout);
            tokio::spawn(srv.acceptor(acceptor).serve(app))
        }
        None => {
            let acceptor = connections::FirstRequest::new(capped, header_timeout);
            tokio::spawn(srv.acceptor(acceptor).serve(app))
        }
    };
    let sweeper = tokio::spawn(sweep(server.clone()));
    let keep_alives = tokio::spawn(crate::http::events::keep_alives(server.clone()));
    let following = crate::http::follow::start(&server, handle.clone());
    let reporting = crate::http::reporting::start(&server);
    let (metrics_addr, metrics_stop) = start_metrics(&server).await;
    let runtime = Runtime {
        url: format!("{scheme}://{addr}"),
        pin: server
            .tls_pin
            .map(|p| data_encoding::BASE64URL_NOPAD.encode(&p)),
        pid: std::process::id(),
        metrics: metrics_addr.map(|a| format!("http://{a}/metrics")),
        next_pin: server
            .pin_update
            .as_ref()
            .map(|update| update.next_pin.clone()),
    };
    let runtime_file = dir.runtime_file();
    write_private(&runtime_file, &serde_json::to_vec_pretty(&runtime)?)?;
    tracing::info!(url = %runtime.url, "countersign-server listening");
    Ok(Running {
        addr,
        metrics_addr,
        _metrics_stop: metrics_stop,
        handle,
        task,
        sweeper,
        keep_alives,
        runtime_file,
        following,
        reporting,
        _checkpoints: checkpoints,
        server,
    })
}

/// Starts the metrics listener when `metrics.listen` asks for one. A
/// failure to bind is logged and the server runs on without metrics:
/// sign-ins matter more than figures, and Prometheus sees the target down.
async fn start_metrics(
    server: &Arc<Server>,
) -> (Option<SocketAddr>, Option<tokio::sync::oneshot::Sender<()>>) {
    let Ok(Some(listen)) = server.config.metrics.address() else {
        return (None, None);
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    match crate::http::metrics::start(server.clone(), listen, stopped).await {
        Ok(addr) => {
            tracing::info!(url = %format!("http://{addr}/metrics"), "metrics listening");
            (Some(addr), Some(stop))
        }
        Err(e) => {
            tracing::error!(error = %e, listen = %listen, "cannot serve metrics; running without them");
            (None, None)
        }
    }
}

/// Once a second, expires overdue challenges so followers hear about it;
/// once a minute, drops ended browser sessions.
async fn sweep(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        tick.tick().await;
        if let Err(e) = server.expire_overdue(crate::now()) {
            tracing::error!(error = %e, "expiring challenges failed");
        }
        if n % 60 == 0 {
            if let Err(e) = server.write(crate::now(), |w| w.purge_sessions(crate::now())) {
                tracing::error!(error = %e, "dropping ended sessions failed");
            }
            for limiter in [&server.address_failures, &server.audit_once_a_minute] {
                if let Err(e) = limiter.purge(crate::now()) {
                    tracing::error!(error = %e, "forgetting old failures failed");
                }
            }
            if let Err(e) = server.forget_old_resets(crate::now()) {
                tracing::error!(error = %e, "forgetting old help-desk resets failed");
            }
        }
    }
}

/// Reads the runtime file of a running server, if any.
pub fn running_server(dir: &DataDir) -> Option<Runtime> {
    let bytes = std::fs::read(dir.runtime_file()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

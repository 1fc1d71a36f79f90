//! The idle-stream phase: many devices connected and doing nothing, as a
//! whole state's officers are between sign-ins, and the server's resident
//! memory with them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use countersign_core::pin::PinnedVerifier;
use tokio::task::JoinHandle;

use super::load::{stream_device, wait_connected};
use super::{rss_kib, BenchOptions, Device};

/// The server the streams go to.
pub(super) struct Target<'a> {
    /// Where streams connect (the one instance).
    pub base: &'a str,
    /// Every instance, to count connected streams.
    pub bases: &'a [String],
    pub admin: &'a str,
    pub pin: [u8; 32],
    /// The serve process, whose memory is read.
    pub pid: u32,
}

/// Opens `opts.idle_streams` streams for the first devices, spread over
/// `opts.source_addresses` loopback addresses, and prints the serve
/// process's memory before and after. The streams stay open until the
/// returned tasks are aborted.
pub(super) async fn open(
    to: &Target<'_>,
    opts: &BenchOptions,
    devices: &[Arc<Device>],
    rss_start: Option<u64>,
) -> anyhow::Result<Vec<JoinHandle<Result<(), String>>>> {
    let clients = (0..opts.source_addresses.max(1))
        .map(|i| client(to.pin, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(to.pid);
    let already = wait_connected(&clients[0], to.bases, to.admin, 0).await;
    eprintln!(
        "opening {} idle device streams from {} source address{}, {} at a time",
        opts.idle_streams,
        clients.len(),
        if clients.len() == 1 { "" } else { "es" },
        opts.opening
    );
    // By default opened about as fast as the server takes them: a server
    // offered more handshakes than it can finish in its handshake timeout
    // sheds the late ones, as it should, but then they are not measured.
    let opening = Arc::new(tokio::sync::Semaphore::new(opts.opening));
    let mut idle = Vec::new();
    for (i, d) in devices[..opts.idle_streams.min(devices.len())]
        .iter()
        .enumerate()
    {
        let permit = opening.clone().acquire_owned().await?;
        idle.push(tokio::spawn(stream_device(
            clients[i % clients.len()].clone(),
            to.base.to_string(),
            d.clone(),
            !opts.sse,
            None,
            Some(permit),
        )));
    }
    // Once every place is back, each stream has opened or failed.
    let places = u32::try_from(opts.opening)?;
    drop(opening.acquire_many(places).await?);
    let (idle, failed) = failures(idle).await;
    let connected = wait_connected(&clients[0], to.bases, to.admin, already + idle.len())
        .await
        .saturating_sub(already);
    for (why, n) in &failed {
        println!("  {n} idle streams {why}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(to.pid);
    let mib = |k: Option<u64>| k.unwrap_or(0) / 1024;
    println!("server memory (VmRSS of the serve process)");
    println!("  at start:            {} MiB", mib(rss_start));
    println!("  before idle streams: {} MiB", mib(before));
    println!("  with {connected} idle streams: {} MiB", mib(after));
    if let (Some(b), Some(a)) = (before, after) {
        let per_stream = a.saturating_sub(b) as f64 / connected.max(1) as f64;
        println!(
            "  per stream:          {per_stream:.1} KiB ({:.0} bytes)",
            per_stream * 1024.0
        );
    }
    Ok(idle)
}

/// Splits the streams into those still open and, counted by reason, those
/// that are not: most could not open; a few may have opened and ended.
async fn failures(
    streams: Vec<JoinHandle<Result<(), String>>>,
) -> (Vec<JoinHandle<Result<(), String>>>, BTreeMap<String, usize>) {
    let mut open = Vec::new();
    let mut failed = BTreeMap::new();
    for s in streams {
        if !s.is_finished() {
            open.push(s);
            continue;
        }
        let why = match s.await {
            Ok(Ok(())) => "opened, then closed by the server".to_string(),
            Ok(Err(why)) => format!("did not open: {why}"),
            Err(e) => format!("task failed: {e}"),
        };
        *failed.entry(why).or_insert(0) += 1;
    }
    (open, failed)
}

/// A client whose connections come from 127.0.0.1 (`i` = 0) or
/// 127.0.0.(i + 1): each source address has its own ~28,000 ports.
pub(super) fn client(pin: [u8; 32], i: usize) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(PinnedVerifier::client_config(pin)?)
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(120));
    if i > 0 {
        let last =
            u8::try_from(i + 1).map_err(|_| anyhow::anyhow!("at most 254 source addresses"))?;
        builder = builder.local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)));
    }
    Ok(builder.build()?)
}

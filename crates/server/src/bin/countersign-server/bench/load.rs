//! The load itself: device streams, push round trips from concurrent
//! workers, and wrong-password sign-ins beside them.

use super::*;
use anyhow::{bail, Context};
use countersign_core::api::Verdict;
use countersign_core::protocol::{ChallengeEnvelope, Decision, Receipt, ReceiptEvent, Response};
use countersign_server::domain::push::Created;
use countersign_server::now;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Drives round trips for `duration`, one worker per bucket; returns the
/// figures and the buckets for another phase.
pub(super) async fn round_trips(
    (http, base, admin): &(reqwest::Client, String, zeroize::Zeroizing<String>),
    buckets: Vec<Bucket>,
    duration: Duration,
    full: bool,
) -> anyhow::Result<(Phase, Vec<Bucket>)> {
    eprintln!(
        "driving round trips for {duration:?} with {} in flight",
        buckets.len()
    );
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = buckets
        .into_iter()
        .map(|bucket| {
            let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
            tokio::spawn(async move { worker(http, base, admin, bucket, deadline, full).await })
        })
        .collect();
    let mut phase = Phase {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    let mut buckets = Vec::new();
    for w in workers {
        let (l, e, bucket) = w.await?;
        phase.latencies.extend(l);
        phase.errors += e;
        buckets.push(bucket);
    }
    phase.elapsed = started.elapsed();
    phase.latencies.sort_unstable();
    Ok((phase, buckets))
}

/// Signs in as bench user `i` through the pages with a wrong password,
/// again and again until `stop`; returns how many passwords were checked.
pub(super) async fn wrong_passwords(
    http: reqwest::Client,
    base: String,
    i: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> usize {
    let mut checks = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        match wrong_password(&http, &base, i).await {
            Ok(()) => checks += 1,
            Err(e) => {
                eprintln!("wrong-password sign-in failed: {e:#}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    checks
}

/// One sign-in through the pages (form token, email, password) ending in
/// "Your account or password is incorrect".
pub(super) async fn wrong_password(
    http: &reqwest::Client,
    base: &str,
    i: usize,
) -> anyhow::Result<()> {
    let cookie = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect()
    };
    let token = |html: &str| -> anyhow::Result<String> {
        let field = "name=\"csrf\" value=\"";
        let start = html.find(field).context("no form token")? + field.len();
        let end = html[start..].find('"').context("no form token")? + start;
        Ok(html[start..end].to_string())
    };
    let page = http.get(format!("{base}/signin")).send().await?;
    let pre = cookie(&page).join("; ");
    let csrf = token(&page.text().await?)?;
    let email = format!("bench{:05}", i);
    let r = http
        .post(format!("{base}/signin"))
        .header(reqwest::header::COOKIE, &pre)
        .form(&[("csrf", csrf.as_str()), ("email", email.as_str())])
        .send()
        .await?;
    let session = cookie(&r).join("; ");
    let page = http
        .get(format!("{base}/signin/password"))
        .header(reqwest::header::COOKIE, &session)
        .send()
        .await?
        .text()
        .await?;
    let csrf = token(&page)?;
    let r = http
        .post(format!("{base}/signin/password"))
        .header(reqwest::header::COOKIE, &session)
        .form(&[("csrf", csrf.as_str()), ("password", "Wrong-Password-123")])
        .send()
        .await?;
    if r.status() != reqwest::StatusCode::UNAUTHORIZED {
        bail!("wrong password answered {}", r.status());
    }
    Ok(())
}

/// Holds a device's challenge stream (upgraded or plain SSE); forwards
/// envelopes to the worker if asked, and gives back `opening` once the
/// server has answered. Says why if the stream could not be opened; a stream
/// that opened and then ended is not an error.
pub(super) async fn stream_device(
    http: reqwest::Client,
    base: String,
    d: Arc<Device>,
    upgrade: bool,
    tx: Option<mpsc::Sender<ChallengeEnvelope>>,
    opening: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<(), String> {
    let mut req = http
        .get(format!("{base}/api/v1/devices/{}/challenges", d.id))
        .bearer_auth(&d.token)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(3600));
    if upgrade {
        req = req
            .header("connection", "upgrade")
            .header("upgrade", countersign_server::http::events::UPGRADE);
    }
    let resp = req.send().await.map_err(|e| {
        // The innermost cause names what went wrong (reset, timeout, …).
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        format!("could not connect: {cause}")
    })?;
    let mut buf = Vec::new();
    let mut deliver = |chunk: &[u8]| {
        buf.extend_from_slice(chunk);
        let mut found = Vec::new();
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let Some(env) = data.and_then(|d| serde_json::from_str(d).ok()) {
                found.push(env);
            }
        }
        found
    };
    let status = resp.status();
    if !status.is_success() && status != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!("refused: {status}"));
    }
    // Answered: the server has taken the connection.
    drop(opening);
    let mut chunks = if status == reqwest::StatusCode::SWITCHING_PROTOCOLS {
        let io = resp
            .upgrade()
            .await
            .map_err(|e| format!("upgrade failed: {e}"))?;
        futures_util::stream::unfold(io, |mut io| async move {
            let mut chunk = vec![0u8; 4096];
            let n = io.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            chunk.truncate(n);
            Some((chunk, io))
        })
        .boxed()
    } else {
        resp.bytes_stream()
            .filter_map(|chunk| async move { chunk.ok().map(|c| c.to_vec()) })
            .boxed()
    };
    while let Some(chunk) = chunks.next().await {
        for env in deliver(&chunk) {
            if let Some(tx) = &tx {
                let _ = tx.send(env).await;
            }
        }
    }
    Ok(())
}

/// Waits until the instances hold `n` streams between them (each
/// counts its own, in its hub: asked one by one, not through a balancer).
pub(super) async fn wait_connected(
    http: &reqwest::Client,
    bases: &[String],
    admin: &str,
    n: usize,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut count = 0;
        for base in bases {
            let got = http
                .get(format!("{base}/api/v1/admin/streams"))
                .bearer_auth(admin)
                .send()
                .await
                .ok()
                .and_then(|r| r.error_for_status().ok());
            if let Some(r) = got {
                count += r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["connected"].as_u64())
                    .unwrap_or(0) as usize;
            }
        }
        if count >= n || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn worker(
    http: reqwest::Client,
    base: String,
    admin: zeroize::Zeroizing<String>,
    mut devices: Bucket,
    deadline: Instant,
    full: bool,
) -> (Vec<Duration>, usize, Bucket) {
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut i = 0;
    while Instant::now() < deadline && !devices.is_empty() {
        let n = devices.len();
        let (d, rx) = &mut devices[i % n];
        i += 1;
        match round_trip(&http, &base, &admin, d, rx, full).await {
            Ok(t) => latencies.push(t),
            Err(e) => {
                errors += 1;
                if errors < 5 {
                    eprintln!("round trip failed: {e:#}");
                }
            }
        }
    }
    (latencies, errors, devices)
}

pub(super) async fn round_trip(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    d: &Device,
    rx: &mut mpsc::Receiver<ChallengeEnvelope>,
    full: bool,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let created: Created = http
        .post(format!("{base}/api/v1/admin/push"))
        .bearer_auth(admin)
        .json(
            &serde_json::json!({"username": d.username, "device_id": d.id, "application": "bench"}),
        )
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let env = loop {
        let env = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await?
            .context("stream closed")?;
        if env.challenge.id == created.challenge_id {
            break env;
        }
    };
    if full {
        // The app acknowledges delivery, then that the prompt is showing.
        for event in [ReceiptEvent::Delivered, ReceiptEvent::Shown] {
            let receipt = Receipt::sign(&env.challenge.id, &d.id, event, now(), &d.key);
            http.post(format!(
                "{base}/api/v1/challenges/{}/receipt",
                env.challenge.id
            ))
            .json(&receipt)
            .send()
            .await?
            .error_for_status()?;
        }
    }
    let r = Response::sign(
        &env.challenge.id,
        &d.id,
        Decision::Approve,
        Some(created.number),
        "",
        now(),
        &d.key,
    )?;
    let v: Verdict = http
        .post(format!(
            "{base}/api/v1/challenges/{}/response",
            r.challenge_id
        ))
        .json(&r)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if !matches!(v.status, countersign_core::api::ChallengeStatus::Approved) {
        bail!("verdict {}", v.status.as_str());
    }
    if full {
        // The sign-in page reads the verdict.
        let seen: Verdict = http
            .get(format!("{base}/api/v1/challenges/{}", r.challenge_id))
            .bearer_auth(admin)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if !matches!(
            seen.status,
            countersign_core::api::ChallengeStatus::Approved
        ) {
            bail!("status read {}", seen.status.as_str());
        }
    }
    Ok(start.elapsed())
}

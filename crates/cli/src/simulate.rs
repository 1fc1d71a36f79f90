//! `countersign simulate`: many enrolled test devices in one process that
//! answer requests by themselves, for help-desk tests and load generation.
//!
//! A device never learns the number shown on the sign-in page, so an
//! approval needs it from outside: `--numbers FILE` is read for the lines
//! `countersign-server push` prints (`number: NN`, then `challenge: ID`).
//! Without the number an approval is not sent and the request is left open.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use countersign_core::api::ActivateRequest;
use countersign_core::protocol::{ChallengeEnvelope, Decision, Response};
use countersign_core::{Enrollment, PublicKey, SigningKey};
use countersign_device::channel::{self, ChannelEvent};
use countersign_device::client::ServerClient;
use countersign_device::now;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

/// What the devices do.
pub struct Options {
    /// Enrollment payloads, one per line.
    pub payloads: PathBuf,
    /// Use this server URL instead of the one in the payloads.
    pub server: Option<String>,
    /// Weights of approve, deny, wrong number and report.
    pub mix: [u32; 4],
    /// Wait before answering.
    pub delay: Duration,
    /// Stop after this long (None: run until interrupted).
    pub duration: Option<Duration>,
    /// Output of `countersign-server push` to take numbers from.
    pub numbers: Option<PathBuf>,
}

struct Device {
    label: String,
    device_id: String,
    key: SigningKey,
    server_key: PublicKey,
    client: ServerClient,
}

/// Enrolls the devices and answers until stopped.
pub async fn run(opts: Options) -> anyhow::Result<ExitCode> {
    if opts.mix.iter().sum::<u32>() == 0 {
        bail!(
            "the answer mix is all zero: give --approve, --deny, --mismatch or --report a weight"
        );
    }
    let text = std::fs::read_to_string(&opts.payloads)
        .with_context(|| format!("cannot read {}", opts.payloads.display()))?;
    let payloads: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if payloads.is_empty() {
        bail!("{} holds no enrollment payload", opts.payloads.display());
    }
    let rng = SystemRandom::new();
    let (tx, mut rx) = mpsc::channel(256);
    let mut devices = HashMap::new();
    for (i, payload) in payloads.iter().enumerate() {
        let mut e = Enrollment::parse(payload).with_context(|| format!("payload {}", i + 1))?;
        if let Some(s) = &opts.server {
            e.server = s.clone();
        }
        let key = SigningKey::generate(&rng)?;
        let client = ServerClient::new(&e.server, e.pin)?;
        let a = client
            .activate(&ActivateRequest {
                code: e.code.clone(),
                device_key: key.public_key(),
                receipt_key: None,
                device_name: format!("simulated device {}", i + 1),
                platform: "cli".into(),
                app_version: env!("CARGO_PKG_VERSION").into(),
            })
            .await
            .with_context(|| format!("activating device {} ({})", i + 1, e.account))?;
        let id = format!("#{}", i + 1);
        println!("device {id} enrolled for {}", a.account);
        let token = Zeroizing::new(a.channel_token.clone());
        channel::spawn(
            id.clone(),
            client.clone(),
            channel::Trust {
                device_id: a.device_id.clone(),
                server_key: e.server_key,
                pins: e.pin.map(|pin| {
                    countersign_core::key_update::PinTrust::activated(
                        pin,
                        a.pin_update.as_ref(),
                        a.server_time,
                        &e.server_key,
                    )
                }),
            },
            token,
            tx.clone(),
        );
        devices.insert(
            id,
            Device {
                label: a.account,
                device_id: a.device_id,
                key,
                server_key: e.server_key,
                client,
            },
        );
    }
    drop(tx);
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut seen = HashSet::new();
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let event = match left {
            Some(l) if l.is_zero() => break,
            Some(l) => match tokio::time::timeout(l, rx.recv()).await {
                Ok(e) => e,
                Err(_) => break,
            },
            None => rx.recv().await,
        };
        let Some(event) = event else { break };
        let ChannelEvent::Envelope {
            account_id,
            envelope,
        } = event
        else {
            continue;
        };
        let Some(d) = devices.get(&account_id) else {
            continue;
        };
        if !seen.insert(envelope.challenge.id.clone()) {
            continue;
        }
        if let Some(problem) = check(d, &envelope) {
            println!(
                "device {account_id} ({}): dropped {}: {problem}",
                d.label, envelope.challenge.id
            );
            continue;
        }
        tokio::time::sleep(opts.delay).await;
        let line = answer(d, &envelope, &opts, &rng).await;
        println!(
            "device {account_id} ({}): {} from {} {line}",
            d.label, envelope.challenge.application, envelope.challenge.ip
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn check(d: &Device, env: &ChallengeEnvelope) -> Option<&'static str> {
    if env.verify_trusting(&d.server_key).is_err() {
        Some("bad server signature")
    } else if env.challenge.device_id != d.device_id {
        Some("addressed to another device")
    } else if env.challenge.expires_at <= now() {
        Some("expired")
    } else {
        None
    }
}

async fn answer(d: &Device, env: &ChallengeEnvelope, opts: &Options, rng: &SystemRandom) -> String {
    let id = &env.challenge.id;
    let known = match &opts.numbers {
        Some(path) => wait_for_number(path, id, Duration::from_secs(5)).await,
        None => None,
    };
    let (decision, number) = match pick(&opts.mix, rng) {
        0 => match known {
            Some(n) => (Decision::Approve, Some(n)),
            None => {
                return format!(
                    "-> approve wanted, but no number is known for {id}: left unanswered"
                )
            }
        },
        1 => (Decision::Deny, None),
        2 => (Decision::Approve, Some(wrong_number(known, rng))),
        _ => (Decision::Report, None),
    };
    let response = match Response::sign(id, &d.device_id, decision, number, "", now(), &d.key) {
        Ok(r) => r,
        Err(e) => return format!("-> could not sign: {e}"),
    };
    let label = if decision == Decision::Approve && number != known {
        "approve (wrong number)"
    } else {
        decision.as_str()
    };
    match d.client.respond(&response).await {
        Ok(v) => format!("-> {label} -> {}", v.status.as_str()),
        Err(e) => format!("-> {label} -> error: {e}"),
    }
}

fn pick(mix: &[u32; 4], rng: &SystemRandom) -> usize {
    let total: u32 = mix.iter().sum();
    let mut r = random_u32(rng) % total;
    for (i, w) in mix.iter().enumerate() {
        if r < *w {
            return i;
        }
        r -= w;
    }
    0
}

fn wrong_number(known: Option<u8>, rng: &SystemRandom) -> u8 {
    loop {
        let n = 10 + (random_u32(rng) % 90) as u8;
        if Some(n) != known {
            return n;
        }
    }
}

fn random_u32(rng: &SystemRandom) -> u32 {
    let mut b = [0u8; 4];
    rng.fill(&mut b).map(|_| u32::from_be_bytes(b)).unwrap_or(0)
}

/// Polls the push command's output for the number of challenge `id`.
async fn wait_for_number(path: &Path, id: &str, patience: Duration) -> Option<u8> {
    let until = Instant::now() + patience;
    loop {
        if let Some(n) = number_in(&std::fs::read_to_string(path).unwrap_or_default(), id) {
            return Some(n);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The number printed just before `challenge: <id>`.
fn number_in(text: &str, id: &str) -> Option<u8> {
    let mut last = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("number: ") {
            last = n.trim().parse().ok();
        } else if line.strip_prefix("challenge: ").map(str::trim) == Some(id) {
            return last;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_paired_with_their_challenge() {
        let log = "number: 42\nchallenge: abc\nresult: approved\nnumber: 17\nchallenge: def\n";
        assert_eq!(number_in(log, "abc"), Some(42));
        assert_eq!(number_in(log, "def"), Some(17));
        assert_eq!(number_in(log, "xyz"), None);
    }

    #[test]
    fn the_mix_is_respected() {
        let rng = SystemRandom::new();
        assert!((0..100).all(|_| pick(&[0, 1, 0, 0], &rng) == 1));
        assert!((0..100).all(|_| wrong_number(Some(50), &rng) != 50));
    }
}

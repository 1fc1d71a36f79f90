//! The live request channel of one push account: holds the server-sent
//! events stream, fetches pending requests after every (re)connect so
//! nothing created while offline is lost, and reconnects with jittered
//! exponential back-off. It only transports: the receiver verifies each
//! envelope with [`crate::push::accept`].

use std::time::Duration;

use countersign_core::protocol::ChallengeEnvelope;
use futures_util::StreamExt;
use ring::rand::SecureRandom;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::accounts::Account;
use crate::client::ServerClient;
use crate::vault::Vault;
use crate::Error;

/// What a channel reports.
#[derive(Debug)]
pub enum ChannelEvent {
    /// The stream is open.
    Connected {
        /// The push account.
        account_id: String,
    },
    /// The stream dropped or could not open; it retries after `retry_in`.
    Disconnected {
        /// The push account.
        account_id: String,
        /// Why.
        error: String,
        /// When the next try is.
        retry_in: Duration,
    },
    /// A request arrived (not yet verified).
    Envelope {
        /// The push account.
        account_id: String,
        /// The signed challenge.
        envelope: Box<ChallengeEnvelope>,
    },
}

/// First retry delay; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the channel of push account `account`, reporting to `tx`. Fails
/// (and starts nothing) when the account is not a push account, its trust
/// is damaged, or its token cannot be unsealed: the caller may try again.
pub fn start(
    vault: &mut Vault,
    account: &Account,
    tx: mpsc::Sender<ChannelEvent>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let client = crate::push::client_for(account)?;
    let device_id = account
        .push
        .as_ref()
        .map(|p| p.device_id.clone())
        .unwrap_or_default();
    let token = vault.channel_token_for(&account.id)?;
    Ok(spawn(account.id.clone(), client, device_id, token, tx))
}

/// Runs a channel until the receiver is dropped.
pub fn spawn(
    account_id: String,
    client: ServerClient,
    device_id: String,
    token: Zeroizing<String>,
    tx: mpsc::Sender<ChannelEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let error =
                match run_once(&account_id, &client, &device_id, &token, &tx, &mut backoff).await {
                    Ok(error) => error,
                    Err(Closed) => return,
                };
            let retry_in = jitter(backoff);
            let event = ChannelEvent::Disconnected {
                account_id: account_id.clone(),
                error,
                retry_in,
            };
            if tx.send(event).await.is_err() {
                return;
            }
            tokio::time::sleep(retry_in).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// The receiver is gone.
struct Closed;

async fn run_once(
    account_id: &str,
    client: &ServerClient,
    device_id: &str,
    token: &str,
    tx: &mpsc::Sender<ChannelEvent>,
    backoff: &mut Duration,
) -> Result<String, Closed> {
    let send = |event| async { tx.send(event).await.map_err(|_| Closed) };
    let envelope = |e: ChallengeEnvelope| ChannelEvent::Envelope {
        account_id: account_id.into(),
        envelope: Box::new(e),
    };
    let mut stream = match client.stream(device_id, token).await {
        Ok(s) => Box::pin(s),
        Err(e) => {
            tracing::info!(account = account_id, error = %e, "request stream unavailable");
            return Ok(e.to_string());
        }
    };
    *backoff = FIRST_BACKOFF;
    send(ChannelEvent::Connected {
        account_id: account_id.into(),
    })
    .await?;
    // The stream starts with the pending list, but fetch it too: a
    // reconnect must never depend on the stream alone.
    if let Ok(list) = client.pending(device_id, token, 0).await {
        for e in list {
            send(envelope(e)).await?;
        }
    }
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => send(envelope(e)).await?,
            Err(e) => {
                tracing::info!(account = account_id, error = %e, "request stream broke");
                return Ok(e.to_string());
            }
        }
    }
    Ok("the server closed the stream".into())
}

/// ±25 % so many devices do not reconnect in step after a server restart.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map(|_| u16::from_be_bytes(b))
        .unwrap_or(0);
    let factor = 0.75 + 0.5 * (f64::from(r) / f64::from(u16::MAX));
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(4));
            assert!(
                j >= Duration::from_secs(3) && j <= Duration::from_secs(5),
                "{j:?}"
            );
        }
    }
}

//! The live request channel of one push account: holds the server-sent
//! events stream, fetches pending requests after every (re)connect so
//! nothing created while offline is lost, and reconnects with jittered
//! exponential back-off. It only transports: the receiver verifies each
//! envelope with [`crate::push::accept`]. The one thing it reads itself is
//! an announced next TLS key, signed by the server's key, so that its own
//! reconnects after the server switches keys still reach the server.

use std::time::Duration;

use countersign_core::key_update::PinTrust;
use countersign_core::protocol::ChallengeEnvelope;
use countersign_core::PublicKey;
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
    let push = account
        .push
        .as_ref()
        .ok_or_else(|| Error::NotPush(account.label()))?;
    let token = vault.channel_token_for(&account.id)?;
    Ok(spawn(
        account.id.clone(),
        client,
        Trust {
            device_id: push.device_id.clone(),
            server_key: push.server_key,
            pins: push.pin_trust(),
        },
        token,
        tx,
    ))
}

/// Who the channel speaks for, and the key its server signs with.
pub struct Trust {
    /// This device's id on the server.
    pub device_id: String,
    /// The server's signing key, as the vault trusts it.
    pub server_key: PublicKey,
    /// The TLS pins, as the vault trusts them (`None`: the web PKI).
    pub pins: Option<PinTrust>,
}

/// Runs a channel until the receiver is dropped.
pub fn spawn(
    account_id: String,
    mut client: ServerClient,
    mut trust: Trust,
    token: Zeroizing<String>,
    tx: mpsc::Sender<ChannelEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut pins_changed = false;
            let run = Run {
                account_id: &account_id,
                client: &client,
                trust: &mut trust,
                token: &token,
                tx: &tx,
                pins_changed: &mut pins_changed,
            };
            let error = match run.once(&mut backoff).await {
                Ok(error) => error,
                Err(Closed) => return,
            };
            if let (true, Some(pins)) = (pins_changed, trust.pins) {
                match client.with_pins(&pins.pins()) {
                    Ok(c) => client = c,
                    Err(e) => {
                        tracing::error!(error = %e, "could not follow the server's TLS key switch")
                    }
                }
            }
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

/// One connection's worth of a channel.
struct Run<'a> {
    account_id: &'a str,
    client: &'a ServerClient,
    trust: &'a mut Trust,
    token: &'a str,
    tx: &'a mpsc::Sender<ChannelEvent>,
    /// Whether the TLS pins changed, for the next reconnect.
    pins_changed: &'a mut bool,
}

impl Run<'_> {
    async fn once(mut self, backoff: &mut Duration) -> Result<String, Closed> {
        let (client, device_id, token) = (self.client, self.trust.device_id.clone(), self.token);
        let mut stream = match client.stream(&device_id, token).await {
            Ok(s) => Box::pin(s),
            Err(e) => {
                tracing::info!(account = self.account_id, error = %e, "request stream unavailable");
                return Ok(e.to_string());
            }
        };
        *backoff = FIRST_BACKOFF;
        self.send(ChannelEvent::Connected {
            account_id: self.account_id.into(),
        })
        .await?;
        // The stream starts with the pending list, but fetch it too: a
        // reconnect must never depend on the stream alone.
        if let Ok(list) = client.pending(&device_id, token, 0).await {
            for e in list {
                self.envelope(e).await?;
            }
        }
        while let Some(item) = stream.next().await {
            match item {
                Ok(e) => self.envelope(e).await?,
                Err(e) => {
                    tracing::info!(account = self.account_id, error = %e, "request stream broke");
                    return Ok(e.to_string());
                }
            }
        }
        Ok("the server closed the stream".into())
    }

    async fn send(&self, event: ChannelEvent) -> Result<(), Closed> {
        self.tx.send(event).await.map_err(|_| Closed)
    }

    /// Passes `e` on, following a TLS key switch its signer announced.
    async fn envelope(&mut self, e: ChallengeEnvelope) -> Result<(), Closed> {
        if let Ok(followed) = e.verify_trusting(&self.trust.server_key) {
            if let Some(key) = followed {
                self.trust.server_key = key;
            }
            if let Some(pins) = self.trust.pins.as_mut() {
                if pins.follow(e.pin_update.as_ref(), e.sent_at, &self.trust.server_key) {
                    *self.pins_changed = true;
                }
            }
        }
        self.send(ChannelEvent::Envelope {
            account_id: self.account_id.into(),
            envelope: Box::new(e),
        })
        .await
    }
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

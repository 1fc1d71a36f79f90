//! Push approval: enrolling with a server, fetching and verifying sign-in
//! requests, and answering them with a signature made by the device key.

use std::time::Duration;

use countersign_core::api::{ActivateRequest, ChallengeStatus, Verdict};
use countersign_core::key_update::PinTrust;
use countersign_core::otp::decode_base32;
use countersign_core::protocol::{ChallengeEnvelope, Receipt, ReceiptEvent, Response};
use countersign_core::{Answer, Enrollment, Passcode, PublicKey, SigningKey};
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use crate::accounts::{Account, NewPush, PushInfo};
use crate::client::ServerClient;
use crate::history::HistoryEntry;
use crate::vault::Vault;
use crate::Error;

/// Clock difference with the server beyond which the user is warned:
/// past about half a TOTP step, codes start failing.
pub const DRIFT_WARNING: i64 = 15;

/// A verified sign-in request waiting for an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// The push account it is for.
    pub account_id: String,
    /// The account's label.
    pub account: String,
    /// The signed challenge.
    pub envelope: ChallengeEnvelope,
    /// Server clock minus device clock, in seconds.
    pub drift: i64,
}

impl Pending {
    /// The clock warning to show, if any.
    pub fn drift_warning(&self) -> Option<String> {
        (self.drift.abs() > DRIFT_WARNING).then(|| {
            format!(
                "this device's clock is {} s {} the server's: set the time automatically, or one-time codes will fail",
                self.drift.abs(),
                if self.drift > 0 { "behind" } else { "ahead of" }
            )
        })
    }
}

/// A client for a push account's server.
pub fn client_for(account: &Account) -> Result<ServerClient, Error> {
    let push = account
        .push
        .as_ref()
        .ok_or_else(|| Error::NotPush(account.label()))?;
    if let Some(what) = push.damaged {
        return Err(Error::DamagedAccount {
            account: account.label(),
            what,
        });
    }
    match push.pin_trust() {
        Some(trust) => ServerClient::trusting(&push.server_url, &trust.pins()),
        None => ServerClient::new(&push.server_url, None),
    }
}

/// Enrolls this device with the server of an enrollment payload: makes a
/// device key, activates, and stores the push account. The passcode seals
/// the device key; a wrong one is counted and nothing is enrolled.
pub async fn enroll(
    vault: &mut Vault,
    payload: &str,
    passcode: &Passcode,
    device_name: &str,
    platform: &str,
    now: u64,
) -> Result<Account, Error> {
    let enrollment = Enrollment::parse(payload)?;
    let kek = vault.passcode_key(passcode, now)?;
    let wrapped: Vec<u8> = vault
        .conn
        .query_row("SELECT data_key FROM vault", [], |r| r.get(0))?;
    if kek.unwrap_key(&wrapped, b"vault/data-key").is_err() {
        return Err(vault.passcode_failed(now)?);
    }
    vault.passcode_ok()?;
    let key = SigningKey::generate(&vault.rng)?;
    let receipt_key = SigningKey::generate(&vault.rng)?;
    let client = ServerClient::new(&enrollment.server, enrollment.pin)?;
    let activation = client
        .activate(&ActivateRequest {
            code: enrollment.code.clone(),
            device_key: key.public_key(),
            receipt_key: Some(receipt_key.public_key()),
            device_name: device_name.to_string(),
            platform: platform.to_string(),
            app_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await?;
    let secret = decode_base32(&activation.totp.secret)?;
    let trust = enrollment.pin.map(|pin| {
        PinTrust::activated(
            pin,
            activation.pin_update.as_ref(),
            activation.server_time,
            &enrollment.server_key,
        )
    });
    vault.add_push(
        &NewPush {
            issuer: &activation.issuer,
            name: &activation.account,
            push: PushInfo {
                server_url: enrollment.server.clone(),
                server_key: enrollment.server_key,
                pin: trust.map(|t| t.pin),
                next_pin: trust.and_then(|t| t.next),
                device_id: activation.device_id.clone(),
                damaged: None,
            },
            totp_secret: &secret,
            algorithm: activation.totp.algorithm,
            digits: activation.totp.digits,
            period: activation.totp.period,
            channel_token: &activation.channel_token,
            signing_key: &key,
            receipt_key: &receipt_key,
        },
        &kek,
        now,
    )
}

/// Takes an envelope a channel of account `account_id` delivered: checks it
/// ([`accept`]) and acknowledges its delivery to the server. The request
/// to show, if it is valid. Callers skip envelopes their
/// [`crate::inbox::Inbox`] has seen.
pub async fn receive(
    vault: &mut Vault,
    account_id: &str,
    envelope: ChallengeEnvelope,
    now: u64,
) -> Option<Pending> {
    let account = vault.find(account_id).ok()?;
    let request = accept(vault, &account, envelope, now)?;
    acknowledge(vault, &request, ReceiptEvent::Delivered, now).await;
    Some(request)
}

/// Why an envelope no trusted key signed is dropped: a forgery, or a
/// server whose signing key was rotated and retired while this device was
/// away (no voucher any more).
pub const UNTRUSTED: &str = "bad server signature: forged, or the server's signing key changed while this device was offline (enrol this account again)";

/// Checks an envelope from `account`'s server: signature, addressee and
/// expiry. A failure is logged and recorded, never shown as a request.
pub fn accept(
    vault: &mut Vault,
    account: &Account,
    env: ChallengeEnvelope,
    now: u64,
) -> Option<Pending> {
    let push = account.push.as_ref()?;
    let c = &env.challenge;
    let signed = env.verify_trusting(&push.server_key);
    let reason = if push.damaged.is_some() {
        Some("the account's stored trust is damaged")
    } else if signed.is_err() {
        Some(UNTRUSTED)
    } else if c.device_id != push.device_id {
        Some("addressed to another device")
    } else if c.expires_at <= now {
        Some("expired")
    } else {
        None
    };
    if let Some(reason) = reason {
        tracing::warn!(account = %account.label(), challenge = %c.id, reason, "dropped a sign-in request");
        let entry = history_entry(account, &env, now, "dropped", reason);
        if let Err(e) = vault.record(&account.id, &entry) {
            tracing::error!(error = %e, "could not record history");
        }
        return None;
    }
    if let Ok(Some(new_key)) = signed {
        // The server rotated its signing key and the old one vouched.
        match vault.set_server_key(&account.id, &new_key) {
            Ok(()) => {
                tracing::info!(account = %account.label(), "now trusting the server's new signing key")
            }
            Err(e) => tracing::error!(error = %e, "could not store the server's new signing key"),
        }
    }
    let signer = signed.ok().flatten().unwrap_or(push.server_key);
    follow_tls_key(vault, account, &env, &signer);
    let drift = env.sent_at as i64 - now as i64;
    Some(Pending {
        account_id: account.id.clone(),
        account: account.label(),
        envelope: env,
        drift,
    })
}

/// Keeps the account's TLS trust in step with its server (`env` is
/// verified, signed by `signer`); see [`PinTrust::follow`]. A failure to
/// store is logged: the device keeps its old trust.
fn follow_tls_key(
    vault: &mut Vault,
    account: &Account,
    env: &ChallengeEnvelope,
    signer: &PublicKey,
) {
    let Some(mut trust) = account.push.as_ref().and_then(PushInfo::pin_trust) else {
        return;
    };
    if !trust.follow(env.pin_update.as_ref(), env.sent_at, signer) {
        return;
    }
    match vault.set_pin_trust(&account.id, &trust) {
        Ok(()) => {
            tracing::info!(account = %account.label(), pins = trust.pins().len(), "followed the server's TLS key switch")
        }
        Err(e) => tracing::error!(error = %e, "could not store the server's next TLS key"),
    }
}

/// Every verified request waiting on any push account (no receipt is sent:
/// the caller acknowledges what it delivers); with `wait` > 0,
/// waits up to that long for one to arrive. As soon as one account has a
/// request the other long-polls are dropped and those accounts asked once
/// more without waiting, so one quiet account never holds up the others.
pub async fn pending(vault: &mut Vault, wait: u64, now: u64) -> Result<Vec<Pending>, Error> {
    let accounts: Vec<Account> = vault
        .accounts()?
        .into_iter()
        .filter(|a| a.push.is_some())
        .collect();
    let mut results: Vec<Option<Result<Vec<ChallengeEnvelope>, Error>>> =
        accounts.iter().map(|_| None).collect();
    {
        let mut polls: FuturesUnordered<_> = fetches(vault, &accounts, wait)?
            .into_iter()
            .enumerate()
            .map(|(i, f)| async move { (i, f.await) })
            .collect();
        while let Some((i, r)) = polls.next().await {
            let found = matches!(&r, Ok(v) if !v.is_empty());
            results[i] = Some(r);
            if found {
                break;
            }
        }
    }
    let left: Vec<usize> = (0..accounts.len())
        .filter(|i| results[*i].is_none())
        .collect();
    if !left.is_empty() {
        let rest: Vec<Account> = left.iter().map(|i| accounts[*i].clone()).collect();
        for (i, r) in left
            .into_iter()
            .zip(join_all(fetches(vault, &rest, 0)?).await)
        {
            results[i] = Some(r);
        }
    }
    // One account's failure (its server unreachable, its trust damaged) is
    // logged and does not hide the others' requests; it is the answer only
    // when every account failed.
    let mut out = Vec::new();
    let (mut failed, mut first_error) = (0, None);
    for (a, result) in accounts.iter().zip(results) {
        match result.unwrap_or_else(|| Ok(Vec::new())) {
            Ok(envelopes) => {
                for env in envelopes {
                    if let Some(p) = accept(vault, a, env, now) {
                        out.push(p);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(account = %a.label(), error = %e, "requests not fetched");
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if failed == accounts.len() => Err(e),
        _ => Ok(out),
    }
}

type Fetch = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<ChallengeEnvelope>, Error>> + Send>,
>;

/// One pending-request fetch per account (each owns its client and token).
fn fetches(vault: &mut Vault, accounts: &[Account], wait: u64) -> Result<Vec<Fetch>, Error> {
    let mut out: Vec<Fetch> = Vec::new();
    for a in accounts {
        // A damaged account fails alone: the others are still asked.
        let client = match client_for(a) {
            Ok(client) => client,
            Err(e) => {
                out.push(Box::pin(async move { Err(e) }));
                continue;
            }
        };
        let token = vault.channel_token(&a.id)?;
        let token = String::from_utf8_lossy(token.expose()).into_owned();
        let device_id = a
            .push
            .as_ref()
            .map(|p| p.device_id.clone())
            .unwrap_or_default();
        out.push(Box::pin(async move {
            client.pending(&device_id, &token, wait).await
        }));
    }
    Ok(out)
}

/// Tells the server, with a receipt signed by the receipt key, that a
/// request reached this device (`Delivered`) or was put in front of the
/// person (`Shown`), so the help desk can tell "the phone never got it"
/// from "the user typed the wrong number". Best effort: a failure is
/// logged, never in the person's way.
pub async fn acknowledge(vault: &mut Vault, request: &Pending, event: ReceiptEvent, now: u64) {
    let sent = async {
        let account = vault.find(&request.account_id)?;
        let Some(push) = account.push.clone() else {
            return Ok(());
        };
        let Some(key) = vault.receipt_key(&account.id)? else {
            return Ok(());
        };
        let receipt = Receipt::sign(
            &request.envelope.challenge.id,
            &push.device_id,
            event,
            now,
            &key,
        );
        client_for(&account)?.receipt(&receipt).await
    }
    .await;
    if let Err(e) = sent {
        tracing::warn!(challenge = %request.envelope.challenge.id, error = %e, "receipt not sent");
    }
}

/// Answers a waiting request. Approving needs the number shown on the
/// sign-in page; every answer needs the passcode, which unseals the device
/// key. A wrong passcode is counted and nothing is sent.
pub async fn answer(
    vault: &mut Vault,
    request: &Pending,
    answer: Answer,
    passcode: &Passcode,
    now: u64,
) -> Result<Verdict, Error> {
    let account = vault.find(&request.account_id)?;
    let push = account
        .push
        .clone()
        .ok_or_else(|| Error::NotPush(account.label()))?;
    let key = vault.signing_key(&account.id, passcode, now)?;
    let c = &request.envelope.challenge;
    let response = Response::sign(
        &c.id,
        &push.device_id,
        answer.decision(),
        answer.number(),
        answer.reason(),
        now,
        &key,
    )?;
    let result = client_for(&account)?.respond(&response).await;
    let (label, outcome) = match &result {
        Ok(v) => (answer.decision().as_str(), v.status.as_str().to_string()),
        Err(e) => (
            answer.decision().as_str(),
            format!("not sent: {}", e.code()),
        ),
    };
    vault.record(
        &account.id,
        &history_entry(&account, &request.envelope, now, label, &outcome),
    )?;
    result
}

/// Finds a waiting request by id (fetching without waiting).
pub async fn find_pending(
    vault: &mut Vault,
    challenge_id: &str,
    now: u64,
) -> Result<Pending, Error> {
    pending(vault, 0, now)
        .await?
        .into_iter()
        .find(|p| p.envelope.challenge.id == challenge_id)
        .ok_or_else(|| Error::NoChallenge(challenge_id.into()))
}

/// Removes an account; for a push account the server is told first, and a
/// server that cannot be reached does not keep the account on the device.
pub async fn remove_account(vault: &mut Vault, account: &Account) -> Result<Option<Error>, Error> {
    let mut warning = None;
    if let Some(push) = &account.push {
        let token = vault.channel_token(&account.id)?;
        let token = String::from_utf8_lossy(token.expose()).into_owned();
        let client = client_for(account)?;
        match tokio::time::timeout(
            Duration::from_secs(15),
            client.remove_device(&push.device_id, &token),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warning = Some(e),
            Err(_) => warning = Some(Error::Network("the server did not answer in time".into())),
        }
    }
    vault.remove(&account.id)?;
    Ok(warning)
}

fn history_entry(
    account: &Account,
    env: &ChallengeEnvelope,
    now: u64,
    decision: &str,
    result: &str,
) -> HistoryEntry {
    let c = &env.challenge;
    HistoryEntry {
        at: now,
        account: account.label(),
        challenge_id: c.id.clone(),
        application: c.application.clone(),
        ip: c.ip.clone(),
        location: c.location.clone(),
        decision: decision.into(),
        result: result.into(),
    }
}

impl Vault {
    /// A push account's channel token, for [`crate::channel::spawn`].
    pub fn channel_token_for(&mut self, id: &str) -> Result<zeroize::Zeroizing<String>, Error> {
        let token = self.channel_token(id)?;
        Ok(zeroize::Zeroizing::new(
            String::from_utf8_lossy(token.expose()).into_owned(),
        ))
    }
}

/// True when the verdict is the one the person hoped for.
pub fn approved(v: &Verdict) -> bool {
    v.status == ChallengeStatus::Approved
}

#[cfg(test)]
mod tests;

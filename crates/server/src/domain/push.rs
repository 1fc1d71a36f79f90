//! Number-matching push: creating challenges, delivering them to device
//! streams, and judging the signed answers.

use countersign_core::api::{ChallengeStatus, Verdict};
use countersign_core::protocol::{
    random_id, random_number, Challenge, ChallengeEnvelope, ChallengeKind, Decision, Receipt,
    ReceiptEvent, Response,
};
use countersign_core::PublicKey;

use crate::domain::sha256;
use crate::domain::Code;
use crate::store::{ChallengeRow, DeviceRow, Event, NewAudit, NewChallenge, UserRow};
use crate::{Error, Server};

pub use super::hub::Hub;

/// A created challenge: what the sign-in page shows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Created {
    /// Challenge id.
    pub challenge_id: String,
    /// The number to show on the sign-in page (or read to the user).
    pub number: u8,
    /// Device asked.
    pub device_id: String,
    /// Expiry.
    pub expires_at: u64,
}

/// Where a challenge comes from.
pub struct Origin<'a> {
    /// Application name.
    pub application: &'a str,
    /// Client IP.
    pub ip: &'a str,
    /// Place name, or empty.
    pub location: &'a str,
    /// Sign-in or test.
    pub kind: ChallengeKind,
    /// Who asked: the user, or a help-desk actor.
    pub actor: &'a str,
}

/// What a push request shows the officer must be short and plain text: a
/// control character in a label could repaint the officer's prompt.
fn check_origin(origin: &Origin<'_>) -> Result<(), Error> {
    for (field, value) in [
        ("application", origin.application),
        ("ip", origin.ip),
        ("location", origin.location),
    ] {
        if value.len() > 128 {
            return Err(Error::invalid(
                "invalid_input",
                format!("{field} is longer than 128 bytes"),
            ));
        }
        if let Some(c) = countersign_core::text::first_unsafe(value) {
            return Err(Error::invalid(
                "invalid_input",
                format!(
                    "{field} must not contain control characters (found U+{:04X})",
                    u32::from(c)
                ),
            ));
        }
    }
    Ok(())
}

impl Server {
    /// Creates a challenge for a user's device (the newest unless named)
    /// and pushes it to the device's streams. `now_ms` is Unix
    /// milliseconds: the help desk's timeline shows them.
    pub fn create_challenge(
        &self,
        username: &str,
        device_id: Option<&str>,
        origin: &Origin<'_>,
        now_ms: u64,
    ) -> Result<Created, Error> {
        let now = now_ms / 1000;
        check_origin(origin)?;
        let user = self.user(username)?;
        let row = NewAudit::of(origin.actor, "challenge.create", &user.username, origin.ip);
        let audit = |outcome, detail| self.audit(row.with(outcome, detail), now);
        if user.disabled {
            audit("refused", "disabled")?;
            return Err(Error::refused(
                Code::AccountDisabled,
                "This account is disabled.",
            ));
        }
        if user.push_blocked {
            audit("refused", "push blocked after a fraud report")?;
            return Err(Error::refused(Code::PushBlocked,
                "Sign-in requests are blocked for this account after a fraud report. Contact the help desk.",
            ));
        }
        let device = self.target_device(&user, device_id)?;
        let p = &self.config.push;
        let window_start = now.saturating_sub(p.window_minutes * 60);
        let challenge = Challenge {
            id: random_id(&self.rng)?,
            device_id: device.id.clone(),
            account: user.username.clone(),
            application: origin.application.to_string(),
            ip: origin.ip.to_string(),
            location: origin.location.to_string(),
            kind: origin.kind,
            created_at: now,
            expires_at: now + p.ttl_seconds,
        };
        let number = random_number(&self.rng)?;
        let detail = format!("challenge {} to device {}", challenge.id, device.id);
        // Read before the write, so no other instance waits on it.
        let connected = self.hub.connected(&device.id) > 0
            || self.store.streams_elsewhere(Some(&device.id))? > 0;
        // The count, the challenge and its audit row commit together: on
        // PostgreSQL the account's push lock is held from the count, so
        // pushes made at once, on any instance, get the limit and no more.
        let limited = self.concurrent_write(now, |w| {
            if w.challenges_since(user.id, window_start)? >= p.max_per_window {
                w.audit(&row.with("refused", "push-fatigue limit"))?;
                return Ok(true);
            }
            w.insert_challenge(&NewChallenge {
                challenge: &challenge,
                user_id: user.id,
                number,
                created_ms: now_ms,
                connected,
            })?;
            w.announce(Event::Created(challenge.id.clone(), device.id.clone()));
            w.audit(&row.with("ok", &detail))?;
            Ok(false)
        })?;
        if limited {
            return Err(Error::refused(
                Code::PushLimited,
                format!(
                    "Too many sign-in requests. Wait up to {} minutes or use a code.",
                    p.window_minutes
                ),
            ));
        }
        let created = Created {
            challenge_id: challenge.id.clone(),
            number,
            device_id: device.id.clone(),
            expires_at: challenge.expires_at,
        };
        // The device hears of the challenge once it is committed.
        let hub = self.hub.clone();
        self.store.after_commit(move || hub.publish(challenge));
        Ok(created)
    }

    /// Tells whoever follows the challenge its new status, once the write
    /// that set it has committed.
    fn settle_after_commit(&self, challenge_id: &str, status: ChallengeStatus) {
        let (hub, id) = (self.hub.clone(), challenge_id.to_string());
        self.store.after_commit(move || hub.settle(&id, status));
    }

    fn target_device(&self, user: &UserRow, device_id: Option<&str>) -> Result<DeviceRow, Error> {
        let devices = self.store.devices_of(user.id)?;
        let found = match device_id {
            Some(id) => devices.into_iter().find(|d| d.id == id),
            None => devices.into_iter().next(),
        };
        found.ok_or_else(|| {
            Error::refused(
                Code::NoDevice,
                "No authenticator app is registered for this account.",
            )
        })
    }

    /// The device behind a channel token, or `unauthorized`.
    pub fn authenticate_device(
        &self,
        device_id: &str,
        bearer: Option<&str>,
        now: u64,
    ) -> Result<DeviceRow, Error> {
        let unauthorized = || {
            Error::refused(
                Code::Unauthorized,
                "the device id or channel token is not valid",
            )
        };
        let token = bearer.ok_or_else(unauthorized)?;
        let device = self.store.device(device_id)?.ok_or_else(unauthorized)?;
        if !countersign_core::secret::constant_time_eq(
            &sha256(token.as_bytes()),
            &device.token_hash,
        ) {
            return Err(unauthorized());
        }
        self.concurrent_write(now, |w| w.touch_device(device_id, now))?;
        Ok(device)
    }

    /// Signs a challenge for delivery now.
    pub fn envelope(&self, challenge: Challenge, now: u64) -> ChallengeEnvelope {
        let mut envelope = ChallengeEnvelope::sign(challenge, now, &self.server_key);
        envelope.key_update = self
            .key_update
            .clone()
            .filter(|update| now < update.retire_at);
        envelope.pin_update = self.pin_update_at(now);
        envelope
    }

    /// A device's open challenges, signed for delivery.
    pub fn pending_envelopes(
        &self,
        device_id: &str,
        now: u64,
    ) -> Result<Vec<ChallengeEnvelope>, Error> {
        Ok(self
            .store
            .pending_for_device(device_id, now)?
            .into_iter()
            .map(|row| self.envelope(row.challenge, now))
            .collect())
    }

    /// A challenge's status as of now.
    pub fn challenge_status(
        &self,
        id: &str,
        now: u64,
    ) -> Result<(ChallengeRow, ChallengeStatus), Error> {
        let row = self
            .store
            .challenge(id)?
            .ok_or_else(|| Error::not_found("challenge"))?;
        let status = row.status_at(now);
        Ok((row, status))
    }

    /// Judges a device's signed answer, given at `now_ms` (Unix
    /// milliseconds).
    pub fn respond(
        &self,
        challenge_id: &str,
        response: &Response,
        ip: &str,
        now_ms: u64,
    ) -> Result<Verdict, Error> {
        let now = now_ms / 1000;
        let (row, device) = self.addressed(challenge_id)?;
        let status = row.status_at(now);
        let target = row.challenge.account.as_str();
        let actor = format!("device:{}", response.device_id);
        let audit = |outcome: &str, detail: &str| {
            self.audit(
                NewAudit {
                    actor: &actor,
                    action: "challenge.answer",
                    target,
                    ip,
                    outcome,
                    detail,
                },
                now,
            )
        };
        let device = match addressee(
            &row,
            device,
            challenge_id,
            &response.challenge_id,
            &response.device_id,
        ) {
            Ok(d) => d,
            Err(e) => {
                audit(
                    "refused",
                    "answer from another device or for another challenge",
                )?;
                return Err(e);
            }
        };
        if let Err(e) = response.verify(&PublicKey(device.public_key)) {
            audit("refused", "bad signature")?;
            return Err(e.into());
        }
        if status == ChallengeStatus::Expired {
            audit("expired", "answered after expiry")?;
            self.settle_after_commit(challenge_id, ChallengeStatus::Expired);
            return Ok(Verdict {
                challenge_id: challenge_id.into(),
                status,
            });
        }
        if status.is_final() {
            audit("refused", "already answered")?;
            return Err(Error::refused(
                Code::AlreadyAnswered,
                "this challenge was already answered",
            ));
        }
        let verdict = match response.decision {
            Decision::Approve if response.number == Some(row.number) => ChallengeStatus::Approved,
            Decision::Approve => ChallengeStatus::NumberMismatch,
            Decision::Deny => ChallengeStatus::Denied,
            Decision::Report => ChallengeStatus::Reported,
        };
        let json = serde_json::to_string(response).map_err(|e| Error::Internal(e.to_string()))?;
        // The signature is kept so the log proves who approved what.
        let detail = format!(
            "challenge {challenge_id} signature {}",
            response.signature.to_base64()
        );
        // The answer, a report's push block and their audit rows commit
        // together.
        let answered = self.concurrent_write(now, |w| {
            if !w.answer_challenge(challenge_id, verdict, &json, now, now_ms)? {
                return Ok(false);
            }
            w.announce(Event::Settled(challenge_id.into(), verdict.as_str().into()));
            w.audit(&NewAudit {
                actor: &actor,
                action: "challenge.answer",
                target,
                ip,
                outcome: verdict.as_str(),
                detail: &detail,
            })?;
            if verdict == ChallengeStatus::Reported {
                w.set_push_blocked(row.user_id, true)?;
                w.audit(&NewAudit {
                    actor: &actor,
                    action: "alert.fraud_report",
                    target,
                    ip,
                    outcome: "push_blocked",
                    detail: challenge_id,
                })?;
            }
            Ok(true)
        })?;
        if !answered {
            audit("refused", "already answered")?;
            return Err(Error::refused(
                Code::AlreadyAnswered,
                "this challenge was already answered",
            ));
        }
        if verdict == ChallengeStatus::Reported {
            tracing::warn!(
                user = target,
                challenge = challenge_id,
                "sign-in reported as fraud; pushes blocked"
            );
        }
        if let Some(after) = since_created(&row, now_ms) {
            self.metrics.answered(after);
        }
        self.settle_after_commit(challenge_id, verdict);
        Ok(Verdict {
            challenge_id: challenge_id.into(),
            status: verdict,
        })
    }

    /// A challenge and the device it was sent to, in one read.
    fn addressed(&self, id: &str) -> Result<(ChallengeRow, Option<DeviceRow>), Error> {
        self.store
            .challenge_and_device(id)?
            .ok_or_else(|| Error::not_found("challenge"))
    }

    /// Records a signed delivery or shown receipt, received at `now_ms`
    /// (Unix milliseconds).
    pub fn receipt(&self, challenge_id: &str, receipt: &Receipt, now_ms: u64) -> Result<(), Error> {
        let now = now_ms / 1000;
        let (row, device) = self.addressed(challenge_id)?;
        let device = addressee(
            &row,
            device,
            challenge_id,
            &receipt.challenge_id,
            &receipt.device_id,
        )?;
        // Receipts are signed with the receipt key when the device has one
        // (it needs no passcode); older devices sign with the device key.
        receipt.verify(&PublicKey(device.receipt_key.unwrap_or(device.public_key)))?;
        let shown = receipt.event == ReceiptEvent::Shown;
        let action = if shown {
            "challenge.shown"
        } else {
            "challenge.delivered"
        };
        let actor = format!("device:{}", receipt.device_id);
        let first = self.concurrent_write(now, |w| {
            // A repeat (the device re-fetched the request) writes nothing.
            let first = w.record_receipt(challenge_id, shown, now_ms)?;
            if first {
                w.audit(&NewAudit {
                    actor: &actor,
                    action,
                    target: &row.challenge.account,
                    ip: "",
                    outcome: "ok",
                    detail: challenge_id,
                })?;
            }
            Ok(first)
        })?;
        // A shown receipt that comes first records the delivery too.
        let delivered_now = first && row.delivered_ms.is_none();
        if let Some(after) = since_created(&row, now_ms).filter(|_| delivered_now) {
            self.metrics.delivered(after);
        }
        Ok(())
    }

    /// Marks overdue challenges expired and tells their followers.
    pub fn expire_overdue(&self, now: u64) -> Result<usize, Error> {
        let expired = self.write(now, |w| {
            let expired = w.expire_challenges(now)?;
            for row in &expired {
                w.announce(Event::Settled(row.challenge.id.clone(), "expired".into()));
                w.audit(&NewAudit {
                    actor: "system",
                    action: "challenge.expired",
                    target: &row.challenge.account,
                    ip: "",
                    outcome: "expired",
                    detail: &row.challenge.id,
                })?;
            }
            Ok(expired)
        })?;
        for row in &expired {
            self.settle_after_commit(&row.challenge.id, ChallengeStatus::Expired);
        }
        Ok(expired.len())
    }

    /// Removes a device at its own request (the app removed the account).
    pub fn remove_own_device(&self, device: &DeviceRow, now: u64) -> Result<(), Error> {
        let user = self
            .store
            .user_by_id(device.user_id)?
            .map(|u| u.username)
            .unwrap_or_default();
        let actor = format!("device:{}", device.id);
        self.write(now, |w| {
            w.remove_device(&device.id, now)?;
            w.audit(&NewAudit {
                actor: &actor,
                action: "device.remove",
                target: &user,
                ip: "",
                outcome: "ok",
                detail: "",
            })
        })
    }
}

/// How long after its creation `now_ms` is, for a challenge that recorded
/// its creation in milliseconds (rows from before that have 0).
fn since_created(row: &ChallengeRow, now_ms: u64) -> Option<std::time::Duration> {
    (row.created_ms > 0)
        .then(|| std::time::Duration::from_millis(now_ms.saturating_sub(row.created_ms)))
}

/// The device a message about a challenge must come from: the one the
/// challenge was sent to (`device`, if not removed), naming that same
/// challenge.
fn addressee(
    row: &ChallengeRow,
    device: Option<DeviceRow>,
    challenge_id: &str,
    claimed: &str,
    device_id: &str,
) -> Result<DeviceRow, Error> {
    if claimed != challenge_id || device_id != row.challenge.device_id {
        return Err(Error::refused(
            Code::WrongDevice,
            "this challenge was sent to another device",
        ));
    }
    // The joined read names the challenge's device; checked all the same.
    device
        .filter(|d| d.id == row.challenge.device_id)
        .ok_or_else(|| Error::not_found("device"))
}

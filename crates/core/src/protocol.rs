//! Push protocol messages and their signatures.
//!
//! Every signed message is signed over a canonical byte string, never over
//! JSON: a domain label (`countersign/v1/challenge`, `.../response`,
//! `.../receipt`) so a signature for one kind of message can never pass as
//! another, then each field as a 4-byte big-endian length and its bytes, or
//! as 8 big-endian bytes for numbers. The JSON form is only transport.

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, Signature, SigningKey};
use crate::Error;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Numbers shown on the sign-in page are drawn from this range.
pub const NUMBER_RANGE: std::ops::RangeInclusive<u8> = 10..=99;

/// Why a sign-in is being approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeKind {
    /// A real sign-in.
    SignIn,
    /// A test push from registration or the help desk.
    Test,
}

impl ChallengeKind {
    /// The wire and stored name: `sign_in` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::SignIn => "sign_in",
            ChallengeKind::Test => "test",
        }
    }
}

/// A sign-in waiting for the device's answer. The number shown on the
/// sign-in page is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Unique id.
    pub id: String,
    /// The device asked.
    pub device_id: String,
    /// The account signing in: the bare username, e.g. `cs0101`.
    pub account: String,
    /// The application being signed in to.
    pub application: String,
    /// The client's IP address as the server saw it.
    pub ip: String,
    /// A place name for the IP, or empty.
    pub location: String,
    /// Sign-in or test.
    pub kind: ChallengeKind,
    /// Unix seconds at creation.
    pub created_at: u64,
    /// Unix seconds after which it can no longer be answered.
    pub expires_at: u64,
}

/// A challenge as delivered: signed by the server when sent, with the
/// server's clock at that moment so the device can warn about drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeEnvelope {
    /// Protocol version.
    pub v: u32,
    /// The challenge.
    pub challenge: Challenge,
    /// Server Unix time when sent.
    pub sent_at: u64,
    /// Server signature over [`ChallengeEnvelope::signing_bytes`].
    pub signature: Signature,
    /// After a rotation of the server's signing key: the new key, vouched
    /// for by the old one (see [`crate::key_update`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_update: Option<crate::key_update::KeyUpdate>,
    /// Before the server switches to a new TLS key: its pin, announced by
    /// the signing key (see [`crate::key_update::PinUpdate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_update: Option<crate::key_update::PinUpdate>,
}

impl ChallengeEnvelope {
    /// Signs `challenge` for delivery at server time `sent_at`.
    pub fn sign(challenge: Challenge, sent_at: u64, server_key: &SigningKey) -> Self {
        let signature =
            server_key.sign(&Self::signing_bytes(PROTOCOL_VERSION, &challenge, sent_at));
        ChallengeEnvelope {
            v: PROTOCOL_VERSION,
            challenge,
            sent_at,
            signature,
            key_update: None,
            pin_update: None,
        }
    }

    /// The canonical bytes the server signs.
    pub fn signing_bytes(v: u32, c: &Challenge, sent_at: u64) -> Vec<u8> {
        Canonical::new("countersign/v1/challenge", v)
            .text(&c.id)
            .text(&c.device_id)
            .text(&c.account)
            .text(&c.application)
            .text(&c.ip)
            .text(&c.location)
            .text(c.kind.as_str())
            .number(c.created_at)
            .number(c.expires_at)
            .number(sent_at)
            .finish()
    }

    /// Checks the version and the server's signature.
    pub fn verify(&self, server_key: &PublicKey) -> Result<(), Error> {
        check_version(self.v)?;
        server_key.verify(
            &Self::signing_bytes(self.v, &self.challenge, self.sent_at),
            &self.signature,
        )
    }
}

/// What the person decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// "Yes, it's me", with the number typed in.
    Approve,
    /// "No, it's not me" or "I can't see the number".
    Deny,
    /// Deny and report as fraud: blocks pushes for the account.
    Report,
}

impl Decision {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Report => "report",
        }
    }
}

/// The device's signed answer to a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version.
    pub v: u32,
    /// The challenge answered.
    pub challenge_id: String,
    /// The answering device.
    pub device_id: String,
    /// Approve, deny or report.
    pub decision: Decision,
    /// The number typed in (required to approve).
    pub number: Option<u8>,
    /// Free-text reason for a denial, e.g. `cannot_see_number`.
    #[serde(default)]
    pub reason: String,
    /// Device Unix time of the answer.
    pub answered_at: u64,
    /// Device signature over [`Response::signing_bytes`].
    pub signature: Signature,
}

impl Response {
    /// Builds and signs an answer.
    pub fn sign(
        challenge_id: &str,
        device_id: &str,
        decision: Decision,
        number: Option<u8>,
        reason: &str,
        answered_at: u64,
        device_key: &SigningKey,
    ) -> Result<Self, Error> {
        let mut r = Response {
            v: PROTOCOL_VERSION,
            challenge_id: challenge_id.to_string(),
            device_id: device_id.to_string(),
            decision,
            number,
            reason: reason.to_string(),
            answered_at,
            signature: Signature([0; 64]),
        };
        r.check_shape()?;
        r.signature = device_key.sign(&r.signing_bytes());
        Ok(r)
    }

    /// The canonical bytes the device signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        Canonical::new("countersign/v1/response", self.v)
            .text(&self.challenge_id)
            .text(&self.device_id)
            .text(self.decision.as_str())
            .number(self.number.map_or(0, u64::from))
            .text(&self.reason)
            .number(self.answered_at)
            .finish()
    }

    /// Checks version, shape and the device's signature.
    pub fn verify(&self, device_key: &PublicKey) -> Result<(), Error> {
        check_version(self.v)?;
        self.check_shape()?;
        device_key.verify(&self.signing_bytes(), &self.signature)
    }

    fn check_shape(&self) -> Result<(), Error> {
        match (self.decision, self.number) {
            (Decision::Approve, None) => Err(Error::field("number", "is required to approve")),
            (_, Some(n)) if !NUMBER_RANGE.contains(&n) => {
                Err(Error::field("number", "must be between 10 and 99"))
            }
            _ if self.reason.len() > 64 => Err(Error::field("reason", "is longer than 64 bytes")),
            _ => Ok(()),
        }
    }
}

/// A step the device reports before answering, so the help desk can tell
/// "never arrived" from "arrived but not opened".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptEvent {
    /// The device received the challenge.
    Delivered,
    /// The person opened the prompt.
    Shown,
}

impl ReceiptEvent {
    fn as_str(self) -> &'static str {
        match self {
            ReceiptEvent::Delivered => "delivered",
            ReceiptEvent::Shown => "shown",
        }
    }
}

/// A signed delivery or shown acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Protocol version.
    pub v: u32,
    /// The challenge acknowledged.
    pub challenge_id: String,
    /// The acknowledging device.
    pub device_id: String,
    /// Delivered or shown.
    pub event: ReceiptEvent,
    /// Device Unix time.
    pub at: u64,
    /// Device signature over [`Receipt::signing_bytes`].
    pub signature: Signature,
}

impl Receipt {
    /// Builds and signs a receipt.
    pub fn sign(
        challenge_id: &str,
        device_id: &str,
        event: ReceiptEvent,
        at: u64,
        key: &SigningKey,
    ) -> Self {
        let mut r = Receipt {
            v: PROTOCOL_VERSION,
            challenge_id: challenge_id.into(),
            device_id: device_id.into(),
            event,
            at,
            signature: Signature([0; 64]),
        };
        r.signature = key.sign(&r.signing_bytes());
        r
    }

    /// The canonical bytes the device signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        Canonical::new("countersign/v1/receipt", self.v)
            .text(&self.challenge_id)
            .text(&self.device_id)
            .text(self.event.as_str())
            .number(self.at)
            .finish()
    }

    /// Checks version and the device's signature.
    pub fn verify(&self, device_key: &PublicKey) -> Result<(), Error> {
        check_version(self.v)?;
        device_key.verify(&self.signing_bytes(), &self.signature)
    }
}

/// A random identifier: 16 bytes as base64url (22 characters).
pub fn random_id(rng: &dyn SecureRandom) -> Result<String, Error> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).map_err(|_| Error::Random)?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&b))
}

/// A uniformly random number in [`NUMBER_RANGE`].
pub fn random_number(rng: &dyn SecureRandom) -> Result<u8, Error> {
    let span = u32::from(NUMBER_RANGE.end() - NUMBER_RANGE.start()) + 1;
    Ok(NUMBER_RANGE.start() + crate::random::below(rng, span)? as u8)
}

fn check_version(v: u32) -> Result<(), Error> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Error::field(
            "v",
            format!("protocol version {v} is not supported"),
        ))
    }
}

/// Builder for canonical signing bytes.
pub(crate) struct Canonical(Vec<u8>);

impl Canonical {
    pub(crate) fn new(domain: &str, v: u32) -> Self {
        let c = Canonical(Vec::with_capacity(256));
        c.text(domain).number(u64::from(v))
    }

    pub(crate) fn text(mut self, s: &str) -> Self {
        // Field lengths are bounded by the request size limits far below 4 GiB.
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub(crate) fn number(mut self, n: u64) -> Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn challenge() -> Challenge {
        Challenge {
            id: "ch_1".into(),
            device_id: "dev_1".into(),
            account: "cs0101".into(),
            application: "ALEA Portal".into(),
            ip: "203.0.113.7".into(),
            location: "Montgomery, AL".into(),
            kind: ChallengeKind::SignIn,
            created_at: 1_800_000_000,
            expires_at: 1_800_000_060,
        }
    }

    #[test]
    fn envelope_verifies_and_any_flipped_byte_fails() {
        let rng = SystemRandom::new();
        let server = SigningKey::generate(&rng).unwrap();
        let env = ChallengeEnvelope::sign(challenge(), 1_800_000_001, &server);
        env.verify(&server.public_key()).unwrap();
        let json = serde_json::to_vec(&env).unwrap();
        assert_eq!(
            serde_json::from_slice::<ChallengeEnvelope>(&json).unwrap(),
            env
        );

        // Flip each byte of the signed content: verification must fail.
        let bytes = ChallengeEnvelope::signing_bytes(env.v, &env.challenge, env.sent_at);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(
                server.public_key().verify(&bad, &env.signature).is_err(),
                "byte {i}"
            );
        }
        for i in 0..64 {
            let mut bad = env.clone();
            bad.signature.0[i] ^= 1;
            assert!(
                bad.verify(&server.public_key()).is_err(),
                "signature byte {i}"
            );
        }
        let mut late = env.clone();
        late.challenge.expires_at += 1;
        assert_eq!(late.verify(&server.public_key()), Err(Error::BadSignature));
        let other = SigningKey::generate(&rng).unwrap();
        assert_eq!(env.verify(&other.public_key()), Err(Error::BadSignature));
    }

    #[test]
    fn response_verifies_only_for_its_device_and_content() {
        let rng = SystemRandom::new();
        let device = SigningKey::generate(&rng).unwrap();
        let r = Response::sign(
            "ch_1",
            "dev_1",
            Decision::Approve,
            Some(42),
            "",
            1_800_000_010,
            &device,
        )
        .unwrap();
        r.verify(&device.public_key()).unwrap();
        let mut other_number = r.clone();
        other_number.number = Some(43);
        assert!(other_number.verify(&device.public_key()).is_err());
        let mut deny = r.clone();
        deny.decision = Decision::Deny;
        assert!(deny.verify(&device.public_key()).is_err());
        let thief = SigningKey::generate(&rng).unwrap();
        assert!(r.verify(&thief.public_key()).is_err());
        for i in 0..r.signing_bytes().len() {
            let mut bad = r.signing_bytes();
            bad[i] ^= 0x01;
            assert!(
                device.public_key().verify(&bad, &r.signature).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn domains_separate_message_kinds() {
        let rng = SystemRandom::new();
        let device = SigningKey::generate(&rng).unwrap();
        let receipt = Receipt::sign("ch_1", "dev_1", ReceiptEvent::Delivered, 5, &device);
        receipt.verify(&device.public_key()).unwrap();
        // The same signature over a response's bytes must not verify.
        let r = Response::sign("ch_1", "dev_1", Decision::Deny, None, "", 5, &device).unwrap();
        let forged = Response {
            signature: receipt.signature,
            ..r
        };
        assert!(forged.verify(&device.public_key()).is_err());
    }

    #[test]
    fn approve_needs_a_number_in_range() {
        let device = SigningKey::generate(&SystemRandom::new()).unwrap();
        let none = Response::sign("c", "d", Decision::Approve, None, "", 0, &device);
        assert_eq!(
            none.err().unwrap().to_string(),
            "number: is required to approve"
        );
        assert!(Response::sign("c", "d", Decision::Approve, Some(100), "", 0, &device).is_err());
        assert!(Response::sign("c", "d", Decision::Approve, Some(9), "", 0, &device).is_err());
    }

    #[test]
    fn unknown_versions_are_refused() {
        let server = SigningKey::generate(&SystemRandom::new()).unwrap();
        let mut env = ChallengeEnvelope::sign(challenge(), 1, &server);
        env.v = 2;
        assert_eq!(
            env.verify(&server.public_key()).err().unwrap().to_string(),
            "v: protocol version 2 is not supported"
        );
    }

    #[test]
    fn numbers_cover_the_range() {
        let rng = SystemRandom::new();
        let mut seen = [false; 100];
        for _ in 0..5000 {
            let n = random_number(&rng).unwrap();
            assert!(NUMBER_RANGE.contains(&n));
            seen[n as usize] = true;
        }
        assert!(
            seen[10..=99].iter().all(|s| *s),
            "every number from 10 to 99 appears"
        );
        assert_eq!(random_id(&rng).unwrap().len(), 22);
    }
}

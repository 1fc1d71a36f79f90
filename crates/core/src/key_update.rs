//! A new server signing key, announced to devices. After a rotation the
//! server signs envelopes with its new key and, until the old key retires,
//! attaches the new key signed by the old one. A device that trusts the
//! old key checks that voucher, then the envelope under the new key, and
//! trusts the new key from then on. A device offline past the retirement
//! gets envelopes it cannot check: its account must be enrolled again.
//!
//! A new TLS key is announced the same way, before the server switches to
//! it: each envelope carries the new key's pin and the switch time, signed
//! by the signing key ([`PinUpdate`]). A device trusts both pins until an
//! envelope sent after the switch, then the new one alone.

use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, Signature, SigningKey};
use crate::protocol::{Canonical, ChallengeEnvelope, PROTOCOL_VERSION};
use crate::Error;

/// The server's new key, signed by its old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUpdate {
    /// The key envelopes are signed with from now on.
    pub new_key: PublicKey,
    /// Server Unix time after which the old key vouches no more.
    pub retire_at: u64,
    /// The old key's signature over [`KeyUpdate::signing_bytes`].
    pub signature: Signature,
}

impl KeyUpdate {
    /// `old` vouches for `new_key` until `retire_at`.
    pub fn sign(old: &SigningKey, new_key: PublicKey, retire_at: u64) -> Self {
        KeyUpdate {
            new_key,
            retire_at,
            signature: old.sign(&Self::signing_bytes(&new_key, retire_at)),
        }
    }

    /// The canonical bytes the old key signs.
    pub fn signing_bytes(new_key: &PublicKey, retire_at: u64) -> Vec<u8> {
        Canonical::new("countersign/v1/key-update", PROTOCOL_VERSION)
            .text(&new_key.to_base64())
            .number(retire_at)
            .finish()
    }

    /// Checks that `old` signed it.
    pub fn verify(&self, old: &PublicKey) -> Result<(), Error> {
        old.verify(
            &Self::signing_bytes(&self.new_key, self.retire_at),
            &self.signature,
        )
    }
}

/// The server's next TLS key, announced before the switch and signed by
/// the server's signing key. It names the pin it replaces, so an
/// announcement from an earlier rotation says nothing to a device that
/// has moved on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinUpdate {
    /// The pin being replaced (base64url without padding).
    pub from_pin: String,
    /// SHA-256 of the next certificate's SubjectPublicKeyInfo, base64url
    /// without padding (as the enrollment payload's `p`).
    pub next_pin: String,
    /// Server Unix time from which the server presents the next key.
    pub switch_at: u64,
    /// The signing key's signature over [`PinUpdate::signing_bytes`].
    pub signature: Signature,
}

fn pin_text(pin: &[u8; 32]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(pin)
}

fn pin_of(field: &'static str, text: &str) -> Result<[u8; 32], Error> {
    data_encoding::BASE64URL_NOPAD
        .decode(text.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| Error::field(field, "is not a 32-byte base64url pin"))
}

impl PinUpdate {
    /// `key` announces that `next` replaces `from` at `switch_at`.
    pub fn sign(key: &SigningKey, from: &[u8; 32], next: &[u8; 32], switch_at: u64) -> Self {
        let (from_pin, next_pin) = (pin_text(from), pin_text(next));
        PinUpdate {
            signature: key.sign(&Self::signing_bytes(&from_pin, &next_pin, switch_at)),
            from_pin,
            next_pin,
            switch_at,
        }
    }

    /// The canonical bytes the signing key signs.
    pub fn signing_bytes(from_pin: &str, next_pin: &str, switch_at: u64) -> Vec<u8> {
        Canonical::new("countersign/v1/pin-update", PROTOCOL_VERSION)
            .text(from_pin)
            .text(next_pin)
            .number(switch_at)
            .finish()
    }

    /// The pins (from, next), once `key` (the key the device trusts for
    /// the server's requests) is seen to have signed the announcement.
    pub fn verify(&self, key: &PublicKey) -> Result<([u8; 32], [u8; 32]), Error> {
        key.verify(
            &Self::signing_bytes(&self.from_pin, &self.next_pin, self.switch_at),
            &self.signature,
        )?;
        Ok((
            pin_of("from_pin", &self.from_pin)?,
            pin_of("next_pin", &self.next_pin)?,
        ))
    }
}

/// The TLS pins a device trusts for one server: its pin and, while the
/// server switches keys, the announced next one with the switch time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinTrust {
    /// The pin trusted now.
    pub pin: [u8; 32],
    /// The announced next pin and the server time it takes over.
    pub next: Option<([u8; 32], u64)>,
}

impl PinTrust {
    /// The trust of a device just activated with `pin`, having followed
    /// what the activation answer (sent at server time `sent_at`) said: a
    /// server switching keys says so then too, so that a device enrolled
    /// just before the switch still reaches it after.
    pub fn activated(
        pin: [u8; 32],
        update: Option<&PinUpdate>,
        sent_at: u64,
        signer: &PublicKey,
    ) -> PinTrust {
        let mut trust = PinTrust { pin, next: None };
        trust.follow(update, sent_at, signer);
        trust
    }

    /// Every pin a connection may present: one, or two during a switch.
    pub fn pins(&self) -> Vec<[u8; 32]> {
        std::iter::once(self.pin)
            .chain(self.next.map(|(next, _)| next))
            .collect()
    }

    /// Follows what the server said at server time `sent_at`, in a
    /// message checked under `signer`: an announcement of the key that
    /// replaces this pin (never one from an earlier rotation, nor one
    /// sent after its own switch), and the switch itself once a message
    /// sent at or after it arrives. True when the trust changed.
    pub fn follow(&mut self, update: Option<&PinUpdate>, sent_at: u64, signer: &PublicKey) -> bool {
        let before = *self;
        if let Some(u) = update.filter(|u| u.switch_at > sent_at) {
            if let Ok((from, next)) = u.verify(signer) {
                if from == self.pin && next != self.pin {
                    self.next = Some((next, u.switch_at));
                }
            }
        }
        if let Some((next, at)) = self.next {
            if sent_at >= at {
                self.pin = next;
                self.next = None;
            }
        }
        *self != before
    }
}

impl ChallengeEnvelope {
    /// Checks the envelope against the key a device trusts. An envelope
    /// signed by a newer key passes when it carries that key vouched for
    /// by the trusted one; the newer key is returned, to trust from then
    /// on. Anything else is a bad signature.
    pub fn verify_trusting(&self, trusted: &PublicKey) -> Result<Option<PublicKey>, Error> {
        if self.verify(trusted).is_ok() {
            return Ok(None);
        }
        let update = self.key_update.as_ref().ok_or(Error::BadSignature)?;
        update.verify(trusted)?;
        self.verify(&update.new_key)?;
        Ok(Some(update.new_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Challenge, ChallengeKind};
    use ring::rand::SystemRandom;

    fn challenge() -> Challenge {
        Challenge {
            id: "c1".into(),
            device_id: "d1".into(),
            account: "cs0101".into(),
            application: "LETS".into(),
            ip: String::new(),
            location: String::new(),
            kind: ChallengeKind::SignIn,
            created_at: 1,
            expires_at: 100,
        }
    }

    #[test]
    fn a_device_follows_a_new_key_only_when_the_old_one_vouches_for_it() {
        let rng = SystemRandom::new();
        let old = SigningKey::generate(&rng).unwrap();
        let new = SigningKey::generate(&rng).unwrap();
        let stranger = SigningKey::generate(&rng).unwrap();
        let trusted = old.public_key();

        let before = ChallengeEnvelope::sign(challenge(), 5, &old);
        assert_eq!(before.verify_trusting(&trusted), Ok(None));

        let mut after = ChallengeEnvelope::sign(challenge(), 5, &new);
        assert_eq!(
            after.verify_trusting(&trusted),
            Err(Error::BadSignature),
            "no voucher"
        );
        after.key_update = Some(KeyUpdate::sign(&old, new.public_key(), 50));
        assert_eq!(after.verify_trusting(&trusted), Ok(Some(new.public_key())));
        assert_eq!(after.verify_trusting(&new.public_key()), Ok(None));

        // A voucher from any other key, or one altered, counts for nothing.
        let mut forged = ChallengeEnvelope::sign(challenge(), 5, &stranger);
        forged.key_update = Some(KeyUpdate::sign(&stranger, stranger.public_key(), 50));
        assert_eq!(forged.verify_trusting(&trusted), Err(Error::BadSignature));
        let mut altered = after.clone();
        if let Some(u) = altered.key_update.as_mut() {
            u.retire_at = 51;
        }
        assert_eq!(altered.verify_trusting(&trusted), Err(Error::BadSignature));
        // Round trip through JSON keeps the voucher; envelopes without one
        // leave the field out.
        let json = serde_json::to_string(&after).unwrap();
        assert_eq!(
            serde_json::from_str::<ChallengeEnvelope>(&json).unwrap(),
            after
        );
        assert!(!serde_json::to_string(&before)
            .unwrap()
            .contains("key_update"));
    }

    #[test]
    fn a_device_follows_only_the_announcement_of_its_own_pin_and_switches_after() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let stranger = SigningKey::generate(&rng).unwrap();
        let signer = key.public_key();
        let (k0, k1, k2) = ([0; 32], [1; 32], [2; 32]);
        let mut trust = PinTrust {
            pin: k1,
            next: None,
        };

        // Not signed by the server's key, or altered: nothing.
        let forged = PinUpdate::sign(&stranger, &k1, &k2, 500);
        assert!(!trust.follow(Some(&forged), 100, &signer));
        let mut moved = PinUpdate::sign(&key, &k1, &k2, 500);
        moved.switch_at = 400;
        assert!(!trust.follow(Some(&moved), 100, &signer));
        // An announcement from an earlier rotation (k0 to k1), replayed.
        let old = PinUpdate::sign(&key, &k0, &k1, 50);
        assert!(!trust.follow(Some(&old), 100, &signer));
        let old_late = PinUpdate::sign(&key, &k0, &k2, 500);
        assert!(!trust.follow(Some(&old_late), 100, &signer));
        assert_eq!(
            trust,
            PinTrust {
                pin: k1,
                next: None
            }
        );

        // The server's announcement: both pins until the switch.
        let update = PinUpdate::sign(&key, &k1, &k2, 500);
        assert!(trust.follow(Some(&update), 100, &signer));
        assert_eq!(trust.pins(), [k1, k2]);
        // Sent after its own switch time, an announcement is stale.
        let mut fresh = PinTrust {
            pin: k1,
            next: None,
        };
        assert!(!fresh.follow(Some(&update), 500, &signer));
        // A message before the switch changes nothing; the first one at
        // or after it leaves the new pin alone, and the same announcement
        // replayed then says nothing.
        assert!(!trust.follow(None, 499, &signer));
        assert!(trust.follow(None, 500, &signer));
        assert_eq!(
            trust,
            PinTrust {
                pin: k2,
                next: None
            }
        );
        assert!(!trust.follow(Some(&update), 100, &signer));
        assert_eq!(trust.pins(), [k2]);

        // A well-signed announcement of something that is not a pin.
        let mut short = PinUpdate::sign(&key, &k2, &k0, 900);
        short.next_pin = "AAAA".into();
        short.signature = key.sign(&PinUpdate::signing_bytes(&short.from_pin, "AAAA", 900));
        assert!(matches!(short.verify(&signer), Err(Error::Field { .. })));
    }
}

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
/// the server's signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinUpdate {
    /// SHA-256 of the next certificate's SubjectPublicKeyInfo, base64url
    /// without padding (as the enrollment payload's `p`).
    pub next_pin: String,
    /// Server Unix time from which the server presents the next key.
    pub switch_at: u64,
    /// The signing key's signature over [`PinUpdate::signing_bytes`].
    pub signature: Signature,
}

impl PinUpdate {
    /// `key` announces `next_pin` from `switch_at` on.
    pub fn sign(key: &SigningKey, next_pin: &[u8; 32], switch_at: u64) -> Self {
        let next_pin = data_encoding::BASE64URL_NOPAD.encode(next_pin);
        PinUpdate {
            signature: key.sign(&Self::signing_bytes(&next_pin, switch_at)),
            next_pin,
            switch_at,
        }
    }

    /// The canonical bytes the signing key signs.
    pub fn signing_bytes(next_pin: &str, switch_at: u64) -> Vec<u8> {
        Canonical::new("countersign/v1/pin-update", PROTOCOL_VERSION)
            .text(next_pin)
            .number(switch_at)
            .finish()
    }

    /// The next pin, once `key` (the key that signed the envelope) is seen
    /// to have signed the announcement.
    pub fn verify(&self, key: &PublicKey) -> Result<[u8; 32], Error> {
        key.verify(
            &Self::signing_bytes(&self.next_pin, self.switch_at),
            &self.signature,
        )?;
        data_encoding::BASE64URL_NOPAD
            .decode(self.next_pin.as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| Error::field("next_pin", "is not a 32-byte base64url pin"))
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
    fn a_next_pin_counts_only_when_the_signing_key_announced_it() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let stranger = SigningKey::generate(&rng).unwrap();
        let update = PinUpdate::sign(&key, &[7; 32], 99);
        assert_eq!(update.verify(&key.public_key()), Ok([7; 32]));
        assert_eq!(
            update.verify(&stranger.public_key()),
            Err(Error::BadSignature)
        );
        let mut moved = update.clone();
        moved.switch_at = 100;
        assert_eq!(moved.verify(&key.public_key()), Err(Error::BadSignature));
        let mut other = update.clone();
        other.next_pin = data_encoding::BASE64URL_NOPAD.encode(&[8; 32]);
        assert_eq!(other.verify(&key.public_key()), Err(Error::BadSignature));
        // A well-signed announcement of something that is not a pin.
        let mut short = PinUpdate::sign(&key, &[7; 32], 99);
        short.next_pin = "AAAA".into();
        short.signature = key.sign(&PinUpdate::signing_bytes("AAAA", 99));
        assert!(matches!(
            short.verify(&key.public_key()),
            Err(Error::Field { .. })
        ));
    }
}

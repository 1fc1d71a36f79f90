//! A new server signing key, announced to devices. After a rotation the
//! server signs envelopes with its new key and, until the old key retires,
//! attaches the new key signed by the old one. A device that trusts the
//! old key checks that voucher, then the envelope under the new key, and
//! trusts the new key from then on. A device offline past the retirement
//! gets envelopes it cannot check: its account must be enrolled again.

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
}

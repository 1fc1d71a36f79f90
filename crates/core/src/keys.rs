//! Ed25519 keys (ring): the server's key signs challenge envelopes, each
//! device's key signs its answers.

use ring::rand::SecureRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::secret::SecretBytes;
use crate::Error;

/// An Ed25519 private key. Never printed; its PKCS#8 form is wiped on drop.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: SecretBytes,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public_key())
    }
}

impl SigningKey {
    /// A fresh key pair.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let doc = Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| Error::Random)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key from its PKCS#8 v2 document.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(bytes)
            .map_err(|_| Error::BadKey("not an Ed25519 PKCS#8 key"))?;
        Ok(SigningKey {
            pair,
            pkcs8: SecretBytes::new(bytes.to_vec()),
        })
    }

    /// The PKCS#8 document, for sealing into storage.
    pub fn pkcs8(&self) -> &SecretBytes {
        &self.pkcs8
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut s = [0u8; 64];
        s.copy_from_slice(self.pair.sign(message).as_ref());
        Signature(s)
    }
}

/// An Ed25519 public key; base64url (unpadded) in JSON and URIs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), Error> {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, &signature.0)
            .map_err(|_| Error::BadSignature)
    }

    /// Parses the base64url form.
    pub fn from_base64(field: &'static str, s: &str) -> Result<Self, Error> {
        decode_fixed(field, s).map(PublicKey)
    }

    /// The base64url form.
    pub fn to_base64(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(&self.0)
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// An Ed25519 signature; base64url in JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The base64url form.
    pub fn to_base64(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(&self.0)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

/// Decodes unpadded base64url into exactly `N` bytes.
pub(crate) fn decode_fixed<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], Error> {
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(s.trim_end_matches('=').as_bytes())
        .map_err(|_| Error::field(field, "is not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| Error::field(field, format!("must be {N} bytes")))
}

macro_rules! base64_serde {
    ($t:ty, $n:literal, $field:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&data_encoding::BASE64URL_NOPAD.encode(&self.0))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                decode_fixed::<$n>($field, &s)
                    .map(Self)
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
base64_serde!(PublicKey, 32, "public key");
base64_serde!(Signature, 64, "signature");

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn sign_verify_and_reload() {
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let sig = key.sign(b"hello");
        key.public_key().verify(b"hello", &sig).unwrap();
        assert_eq!(
            key.public_key().verify(b"hellO", &sig),
            Err(Error::BadSignature)
        );
        let again = SigningKey::from_pkcs8(key.pkcs8().expose()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert!(SigningKey::from_pkcs8(b"junk").is_err());
    }

    #[test]
    fn public_keys_round_trip_through_text() {
        let key = SigningKey::generate(&SystemRandom::new())
            .unwrap()
            .public_key();
        assert_eq!(PublicKey::from_base64("k", &key.to_base64()).unwrap(), key);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), key);
        assert_eq!(
            PublicKey::from_base64("k", "AAAA")
                .err()
                .unwrap()
                .to_string(),
            "k: must be 32 bytes"
        );
    }
}

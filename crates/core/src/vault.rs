//! Vault cryptography: passcode-derived keys (PBKDF2-HMAC-SHA256) and
//! AES-256-GCM sealing with associated data. The storage lives in the device
//! crate; this is only the arithmetic, with randomness passed in.
//!
//! A sealed blob is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The
//! associated data names what the blob is and where it belongs (for example
//! `account/42/secret`), so a blob copied into another row or field fails
//! to open.

use std::num::NonZeroU32;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

/// The length of a sealed blob's nonce, at its start.
pub use ring::aead::NONCE_LEN;
use ring::pbkdf2;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret::{KeyBytes, Passcode, SecretBytes};
use crate::Error;

/// PBKDF2-HMAC-SHA256 iterations for new vaults: the OWASP 2023 figure.
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Fewest iterations a stored vault may claim, so a tampered header cannot
/// weaken the derivation to nothing.
pub const MIN_ITERATIONS: u32 = 100_000;
/// Most iterations accepted, so a tampered header cannot stall the app.
pub const MAX_ITERATIONS: u32 = 50_000_000;

/// How a key is derived from a passcode; stored beside the data it protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// Random per-vault salt.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
}

impl KdfParams {
    /// New parameters with a fresh 16-byte salt and `iterations` rounds.
    pub fn generate(rng: &dyn SecureRandom, iterations: u32) -> Result<Self, Error> {
        let mut salt = vec![0u8; 16];
        rng.fill(&mut salt).map_err(|_| Error::Random)?;
        Ok(KdfParams { iterations, salt })
    }

    /// Derives the key for `passcode`. Costs `iterations` HMAC rounds.
    pub fn derive(&self, passcode: &Passcode) -> Result<SealingKey, Error> {
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.iterations) {
            return Err(Error::field(
                "iterations",
                format!("{} is outside the accepted range", self.iterations),
            ));
        }
        if self.salt.len() < 16 {
            return Err(Error::field("salt", "is shorter than 16 bytes"));
        }
        let iterations = NonZeroU32::new(self.iterations).ok_or(Error::Unseal)?;
        let mut key = Zeroizing::new([0u8; 32]);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &self.salt,
            passcode.expose().as_bytes(),
            key.as_mut(),
        );
        Ok(SealingKey(key))
    }
}

/// What sealing adds to a plaintext: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + ring::aead::MAX_TAG_LEN;

/// An AES-256-GCM key: a passcode-derived key-encryption key or a random
/// data key. Wiped on drop; never printed.
pub struct SealingKey(KeyBytes);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    /// A fresh random key.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill(key.as_mut()).map_err(|_| Error::Random)?;
        Ok(SealingKey(key))
    }

    /// Encrypts `plaintext`, binding it to `aad`.
    pub fn seal(
        &self,
        rng: &dyn SecureRandom,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, Error> {
        // Wiped if sealing fails while it still holds the plaintext.
        let mut out = Zeroizing::new(Vec::with_capacity(SEAL_OVERHEAD + plaintext.len()));
        out.resize(NONCE_LEN, 0);
        out.extend_from_slice(plaintext);
        let tag = self.seal_blob(rng, aad, &mut out)?;
        out.extend_from_slice(tag.as_ref());
        Ok(std::mem::take(&mut *out))
    }

    /// Seals in place, for large plaintexts (no copy): `buf` holds the
    /// associated data (its first `aad_len` bytes, left in clear),
    /// [`NONCE_LEN`] bytes of room for the nonce, then the plaintext. The
    /// part after the associated data becomes a blob as [`SealingKey::seal`]
    /// makes it. Reserve [`SEAL_OVERHEAD`] beyond the plaintext so that
    /// appending the tag does not move the buffer.
    pub fn seal_after(
        &self,
        rng: &dyn SecureRandom,
        buf: &mut Vec<u8>,
        aad_len: usize,
    ) -> Result<(), Error> {
        if buf.len().saturating_sub(aad_len) < NONCE_LEN {
            return Err(Error::Field {
                field: "sealed buffer",
                problem: "no room for the nonce after the associated data".into(),
            });
        }
        let (aad, blob) = buf.split_at_mut(aad_len);
        let tag = self.seal_blob(rng, aad, blob)?;
        buf.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Opens in place what [`SealingKey::seal_after`] sealed: `buf` holds
    /// the associated data (its first `aad_len` bytes), then the blob.
    /// Returns the plaintext, which is now in `buf` (wipe it after use).
    pub fn open_after<'b>(&self, buf: &'b mut [u8], aad_len: usize) -> Result<&'b [u8], Error> {
        if buf.len() < aad_len {
            return Err(Error::Unseal);
        }
        let (aad, blob) = buf.split_at_mut(aad_len);
        self.open_blob(aad, blob)
    }

    /// Decrypts a blob sealed with this key and the same `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<SecretBytes, Error> {
        let mut buf = Zeroizing::new(blob.to_vec());
        let plain = self.open_blob(aad, &mut buf)?;
        Ok(SecretBytes::new(plain.to_vec()))
    }

    /// Seals `blob` (room for the nonce, then the plaintext) in place
    /// under a fresh random nonce, which it writes first; the tag, to
    /// append, is returned.
    fn seal_blob(
        &self,
        rng: &dyn SecureRandom,
        aad: &[u8],
        blob: &mut [u8],
    ) -> Result<ring::aead::Tag, Error> {
        let (nonce, plaintext) = blob.split_at_mut(NONCE_LEN);
        rng.fill(nonce).map_err(|_| Error::Random)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Random)?;
        self.aead()
            .seal_in_place_separate_tag(nonce, Aad::from(aad), plaintext)
            .map_err(|_| Error::Random)
    }

    /// Opens `blob` (nonce, ciphertext, tag) in place; the plaintext.
    fn open_blob<'b>(&self, aad: &[u8], blob: &'b mut [u8]) -> Result<&'b [u8], Error> {
        if blob.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Error::Unseal);
        }
        let (nonce, sealed) = blob.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Unseal)?;
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(aad), sealed)
            .map_err(|_| Error::Unseal)?;
        Ok(plain)
    }

    /// Seals another key under this one (data-key wrapping).
    pub fn wrap(
        &self,
        rng: &dyn SecureRandom,
        key: &SealingKey,
        aad: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.seal(rng, key.0.as_ref(), aad)
    }

    /// Opens a key wrapped with [`SealingKey::wrap`].
    pub fn unwrap_key(&self, blob: &[u8], aad: &[u8]) -> Result<SealingKey, Error> {
        let plain = self.open(blob, aad)?;
        let bytes: [u8; 32] = plain.expose().try_into().map_err(|_| Error::Unseal)?;
        Ok(SealingKey(Zeroizing::new(bytes)))
    }

    /// The raw key, for callers that must hand it to another primitive.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a key from stored bytes (e.g. the server's master key file).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::BadKey("a sealing key is 32 bytes"))?;
        Ok(SealingKey(Zeroizing::new(arr)))
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key always fits AES-256.
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, self.0.as_ref()).unwrap_or_else(|_| unreachable!()),
        )
    }
}

pub(crate) mod b64 {
    //! Serde helpers: bytes as unpadded base64url.
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::BASE64URL_NOPAD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        data_encoding::BASE64URL_NOPAD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    fn params() -> KdfParams {
        KdfParams {
            iterations: MIN_ITERATIONS,
            salt: vec![9; 16],
        }
    }

    #[test]
    fn derived_key_opens_what_it_sealed() {
        let rng = SystemRandom::new();
        let key = params().derive(&Passcode::new("246810")).unwrap();
        let blob = key
            .seal(&rng, b"JBSWY3DPEHPK3PXP", b"account/1/secret")
            .unwrap();
        assert_eq!(
            key.open(&blob, b"account/1/secret").unwrap().expose(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(
            !blob.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"),
            "no plaintext in the blob"
        );
    }

    #[test]
    fn each_seal_takes_a_fresh_nonce_in_place_or_not() {
        // One key seals many things (every secret of a vault, a backup
        // with a key file): a repeated nonce would undo AES-GCM.
        let rng = SystemRandom::new();
        let key = params().derive(&Passcode::new("246810")).unwrap();
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..64 {
            let blob = key.seal(&rng, b"same secret", b"same place").unwrap();
            assert!(
                nonces.insert(blob[..NONCE_LEN].to_vec()),
                "a nonce came twice"
            );
            let mut buf = b"hdr".to_vec();
            buf.resize(3 + NONCE_LEN, 0);
            buf.extend_from_slice(b"same secret");
            key.seal_after(&rng, &mut buf, 3).unwrap();
            assert!(
                nonces.insert(buf[3..3 + NONCE_LEN].to_vec()),
                "a nonce came twice in place"
            );
        }
    }

    #[test]
    fn sealing_in_place_makes_the_same_blob_and_binds_the_clear_header() {
        let rng = SystemRandom::new();
        let key = SealingKey::generate(&rng).unwrap();
        let head = b"countersign-backup v1\n{}\n";
        let secret = b"SQLite format 3 and the folder's keys";
        let mut buf = Vec::with_capacity(head.len() + SEAL_OVERHEAD + secret.len());
        buf.extend_from_slice(head);
        buf.extend_from_slice(&[0; NONCE_LEN]);
        buf.extend_from_slice(secret);
        let room = buf.capacity();
        key.seal_after(&rng, &mut buf, head.len()).unwrap();
        assert_eq!(buf.capacity(), room, "sealed where it lay, never grown");
        assert_eq!(buf.len(), room, "the overhead is what sealing adds");
        assert_eq!(&buf[..head.len()], head, "the header stays in clear");
        assert!(!buf.windows(secret.len()).any(|w| w == secret));
        // What follows the header is a blob `open` opens, with the header
        // as its associated data; and it opens in place.
        assert_eq!(key.open(&buf[head.len()..], head).unwrap().expose(), secret);
        assert_eq!(
            key.open_after(&mut buf.clone(), head.len()).unwrap(),
            secret
        );
        // A blob `seal` made opens in place behind its header too.
        let blob = key.seal(&rng, secret, head).unwrap();
        let mut framed = [head.as_slice(), &blob].concat();
        assert_eq!(key.open_after(&mut framed, head.len()).unwrap(), secret);
        // An altered header, a flipped bit, a cut buffer: refused.
        let mut altered = buf.clone();
        altered[0] ^= 1;
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let mut cut = buf[..head.len() + SEAL_OVERHEAD - 1].to_vec();
        for bad in [&mut altered, &mut flipped, &mut cut] {
            assert!(matches!(
                key.open_after(bad, head.len()),
                Err(Error::Unseal)
            ));
        }
        // No room for the nonce: refused, and nothing changed.
        let mut no_room = head.to_vec();
        assert!(key.seal_after(&rng, &mut no_room, head.len()).is_err());
        assert_eq!(no_room, head);
    }

    #[test]
    fn wrong_passcode_fails_cleanly() {
        let rng = SystemRandom::new();
        let key = params().derive(&Passcode::new("246810")).unwrap();
        let blob = key.seal(&rng, b"secret", b"ad").unwrap();
        let wrong = params().derive(&Passcode::new("246811")).unwrap();
        assert_eq!(wrong.open(&blob, b"ad").err(), Some(Error::Unseal));
    }

    #[test]
    fn tampering_or_swapping_associated_data_fails() {
        let rng = SystemRandom::new();
        let key = SealingKey::generate(&rng).unwrap();
        let blob = key.seal(&rng, b"secret", b"account/1/secret").unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(
                key.open(&bad, b"account/1/secret").is_err(),
                "flipped byte {i}"
            );
        }
        assert!(
            key.open(&blob, b"account/2/secret").is_err(),
            "moved to another row"
        );
        assert!(
            key.open(&blob[..blob.len() - 1], b"account/1/secret")
                .is_err(),
            "truncated"
        );
        assert!(key.open(&[], b"").is_err());
    }

    #[test]
    fn data_keys_wrap_and_unwrap() {
        let rng = SystemRandom::new();
        let kek = params().derive(&Passcode::new("123456")).unwrap();
        let data_key = SealingKey::generate(&rng).unwrap();
        let wrapped = kek.wrap(&rng, &data_key, b"vault/data-key").unwrap();
        let back = kek.unwrap_key(&wrapped, b"vault/data-key").unwrap();
        assert_eq!(back.expose(), data_key.expose());
    }

    #[test]
    fn weak_or_absurd_parameters_are_refused() {
        let p = Passcode::new("123456");
        assert!(KdfParams {
            iterations: 1,
            salt: vec![0; 16]
        }
        .derive(&p)
        .is_err());
        assert!(KdfParams {
            iterations: u32::MAX,
            salt: vec![0; 16]
        }
        .derive(&p)
        .is_err());
        assert!(KdfParams {
            iterations: MIN_ITERATIONS,
            salt: vec![0; 4]
        }
        .derive(&p)
        .is_err());
    }

    #[test]
    fn same_passcode_and_salt_give_the_same_key() {
        let a = params().derive(&Passcode::new("x1y2z3")).unwrap();
        let b = params().derive(&Passcode::new("x1y2z3")).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "SealingKey(<redacted>)");
    }
}

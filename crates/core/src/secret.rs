//! Types for secrets: wiped from memory on drop, never printed.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Secret bytes: an OTP secret, a key, a decrypted blob. `Debug` prints
/// `<redacted>`; the memory is wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

/// Compared in constant time: `==` on secrets must not leak where they
/// differ.
impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret's bytes; keep the borrow short.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A passcode or passphrase typed by a person. `Debug` prints `<redacted>`;
/// the memory is wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Passcode(String);

impl Passcode {
    /// Takes ownership of the typed text.
    pub fn new(text: impl Into<String>) -> Self {
        Passcode(text.into())
    }

    /// The passcode's text; keep the borrow short.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `other` is the same passcode (a confirmation), compared in
    /// constant time.
    pub fn matches(&self, other: &Passcode) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl fmt::Debug for Passcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A 256-bit symmetric key, wiped on drop.
pub type KeyBytes = Zeroizing<[u8; 32]>;

/// Compares two byte strings in time that depends only on their lengths
/// (codes, MACs, token hashes: never compare those with `==`).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let s = SecretBytes::new(b"hunter2".to_vec());
        let p = Passcode::new("123456");
        assert_eq!(format!("{s:?} {p:?}"), "<redacted> <redacted>");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"123456", b"123456"));
        assert!(!constant_time_eq(b"123456", b"123457"));
        assert!(!constant_time_eq(b"12345", b"123456"));
    }
}

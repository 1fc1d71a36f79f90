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

/// How hard a passcode is to guess, as the app says it while it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// Shorter than [`Passcode::MIN_LEN`]: refused.
    TooShort,
    /// Accepted; longer and mixed would be stronger.
    Fair,
    /// At least ten characters of three kinds or more.
    Strong,
}

impl Strength {
    /// What the app shows under the field.
    pub fn hint(self) -> &'static str {
        match self {
            Strength::TooShort => "At least 6 characters.",
            Strength::Fair => "Fair: longer and mixed is stronger.",
            Strength::Strong => "Strong passcode.",
        }
    }
}

impl Passcode {
    /// The fewest characters a passcode may have.
    pub const MIN_LEN: usize = 6;

    /// How strong this passcode is: too short below [`Passcode::MIN_LEN`]
    /// characters, strong from ten characters of three kinds (lower case,
    /// upper case, digits, others), fair between.
    pub fn strength(&self) -> Strength {
        let p = self.expose();
        let len = p.chars().count();
        let has = |f: fn(&char) -> bool| p.chars().any(|c| f(&c));
        let kinds = [
            has(char::is_ascii_lowercase),
            has(char::is_ascii_uppercase),
            has(char::is_ascii_digit),
            has(|c| !c.is_ascii_alphanumeric()),
        ]
        .into_iter()
        .filter(|k| *k)
        .count();
        if len < Self::MIN_LEN {
            Strength::TooShort
        } else if len >= 10 && kinds >= 3 {
            Strength::Strong
        } else {
            Strength::Fair
        }
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
    fn passcode_strength_counts_characters_and_kinds() {
        let s = |p: &str| Passcode::new(p).strength();
        assert_eq!(s("12345"), Strength::TooShort);
        assert_eq!(s("ab£de"), Strength::TooShort, "five characters, six bytes");
        assert_eq!(s("246810"), Strength::Fair);
        assert_eq!(s("abcdefghijk"), Strength::Fair, "one kind");
        assert_eq!(s("Abcdefghi1"), Strength::Strong);
        assert_eq!(s("abcdefgh-1"), Strength::Strong);
        assert_eq!(s("Abc-12"), Strength::Fair, "mixed but short");
    }

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

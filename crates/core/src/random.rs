//! Uniform random draws from the system generator. Every draw rejects the
//! values past the last whole multiple of the range, so no outcome is
//! likelier than another (a plain `% n` would favour the low ones): the
//! number to match, codes, temporary-password digits, CAPTCHA pictures and
//! the security questions asked all come from here.

use ring::rand::SecureRandom;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// Draws from a buffer of randomness, refilled as it runs out. The buffer
/// is wiped when the draws end (it may have made a code).
pub struct Draws<'a> {
    rng: &'a dyn SecureRandom,
    buf: [u8; 64],
    at: usize,
}

impl<'a> Draws<'a> {
    /// Draws from `rng`.
    pub fn new(rng: &'a dyn SecureRandom) -> Self {
        Draws {
            rng,
            buf: [0; 64],
            at: 64,
        }
    }

    /// A number in `0..n`, each equally likely. `n` must not be 0.
    pub fn below(&mut self, n: u32) -> Result<u32, Error> {
        if n == 0 {
            return Err(Error::Random);
        }
        loop {
            if let Some(v) = accept(self.next_u32()?, n) {
                return Ok(v);
            }
        }
    }

    /// `len` characters drawn from `alphabet` (ASCII), each equally likely;
    /// wiped when dropped.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> Result<Zeroizing<String>, Error> {
        let mut out = Zeroizing::new(String::with_capacity(len));
        for _ in 0..len {
            let i = self.below(alphabet.len() as u32)? as usize;
            out.push(char::from(alphabet[i]));
        }
        Ok(out)
    }

    fn next_u32(&mut self) -> Result<u32, Error> {
        if self.at + 4 > self.buf.len() {
            self.rng.fill(&mut self.buf).map_err(|_| Error::Random)?;
            self.at = 0;
        }
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buf[self.at..self.at + 4]);
        self.at += 4;
        Ok(u32::from_le_bytes(b))
    }
}

/// The rejection rule: a raw draw `v` gives `v % n` unless it lies past
/// the last whole multiple of `n` below 2^32 (then draw again).
fn accept(v: u32, n: u32) -> Option<u32> {
    let span = 1u64 << 32;
    let limit = span - span % u64::from(n);
    (u64::from(v) < limit).then_some(v % n)
}

impl Drop for Draws<'_> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// One number in `0..n` from `rng`.
pub fn below(rng: &dyn SecureRandom, n: u32) -> Result<u32, Error> {
    Draws::new(rng).below(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_last_whole_multiple_are_drawn_again() {
        // n = 3: 2^32 % 3 = 1, so only u32::MAX is past the last multiple.
        assert_eq!(accept(u32::MAX, 3), None);
        assert_eq!(accept(u32::MAX - 1, 3), Some((u32::MAX - 1) % 3));
        assert_eq!(accept(5, 3), Some(2));
        // n = 90: the last 2^32 % 90 = 76 values are rejected.
        assert_eq!(accept(u32::MAX - 75, 90), None);
        assert!(accept(u32::MAX - 76, 90).is_some());
    }

    #[test]
    fn every_value_is_drawn_about_equally_often() {
        let rng = ring::rand::SystemRandom::new();
        let mut draws = Draws::new(&rng);
        let mut counts = [0u32; 90];
        for _ in 0..90_000 {
            counts[draws.below(90).unwrap() as usize] += 1;
        }
        // 1,000 expected each; six standard deviations (~190) either side.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn strings_use_only_the_alphabet_and_an_empty_range_is_refused() {
        let rng = ring::rand::SystemRandom::new();
        let s = Draws::new(&rng).string(b"ab", 40).unwrap();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b == b'a' || b == b'b'));
        assert!(Draws::new(&rng).below(0).is_err());
    }
}

//! The CAPTCHA on the recovery page: five characters drawn by the server
//! into a PNG, each glyph moved and roughened, with noise lines and dots.
//! Only a hash of the answer is kept (in the browser session), and an
//! answer is checked once.
//!
//! A CAPTCHA slows a script down; it does not stop a determined one. The
//! controls that bound recovery attempts are the per-address limit and
//! the account lockout, which every recovery step counts against.

use std::collections::HashMap;
use std::sync::Mutex;

use countersign_core::random::Draws;
use image::{GrayImage, Luma};
use ring::rand::SecureRandom;

/// Characters that cannot be mistaken for one another.
pub const ALPHABET: &[u8] = b"ACDEFHJKLMNPRTUVWXY34679";

/// Characters in a CAPTCHA.
pub const LENGTH: usize = 5;

/// Width and height of the image.
pub const SIZE: (u32, u32) = (200, 70);

/// Pixels per font cell.
pub const CELL: u32 = 4;

/// The 5×7 glyph of `c` (rows top to bottom, bit 4 = left column). Every
/// glyph touches all four edges of its box.
pub fn glyph(c: u8) -> Option<[u8; 7]> {
    Some(match c {
        b'A' => [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        b'C' => [
            0b01111, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b01111,
        ],
        b'D' => [
            0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110,
        ],
        b'E' => [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
        b'F' => [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        b'H' => [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        b'J' => [
            0b00111, 0b00001, 0b00001, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
        b'K' => [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
        b'L' => [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
        b'M' => [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
        b'N' => [
            0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b10001,
        ],
        b'P' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        b'R' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
        b'T' => [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        b'U' => [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        b'V' => [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
        b'W' => [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b11011, 0b10001,
        ],
        b'X' => [
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
        b'Y' => [
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        b'3' => [
            0b11110, 0b00001, 0b00001, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
        b'4' => [
            0b10010, 0b10010, 0b10010, 0b11111, 0b00010, 0b00010, 0b00010,
        ],
        b'6' => [
            0b01110, 0b10000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
        b'7' => [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b10000,
        ],
        b'9' => [
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001, 0b01110,
        ],
        _ => return None,
    })
}

/// Every character with its glyph (for readers of the picture, such as the
/// tests').
pub fn font() -> Vec<(char, [u8; 7])> {
    ALPHABET
        .iter()
        .filter_map(|&c| glyph(c).map(|g| (char::from(c), g)))
        .collect()
}

/// A drawn CAPTCHA.
pub struct Captcha {
    /// The characters to type.
    pub answer: String,
    /// The PNG.
    pub png: Vec<u8>,
}

/// Draws a new CAPTCHA with randomness from `rng`.
pub fn generate(rng: &dyn SecureRandom) -> Result<Captcha, crate::Error> {
    let mut draws = Draws::new(rng);
    let answer = draws.string(ALPHABET, LENGTH)?.to_string();
    let mut noise = Noise(draws);
    let (w, h) = SIZE;
    let mut img = GrayImage::from_pixel(w, h, Luma([235]));
    // Background dots.
    for _ in 0..400 {
        let (x, y) = (noise.below(w), noise.below(h));
        img.put_pixel(x, y, Luma([60 + noise.below(120) as u8]));
    }
    for (i, c) in answer.bytes().enumerate() {
        let rows = glyph(c).ok_or_else(|| crate::Error::Internal("captcha glyph".into()))?;
        let x0 = 12 + i as u32 * 36 + noise.below(9);
        let y0 = 8 + noise.below(22);
        let shade = 20 + noise.below(50) as u8;
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..5u32 {
                if bits & (0b10000 >> col) == 0 {
                    continue;
                }
                let (cx, cy) = (x0 + col * CELL, y0 + r as u32 * CELL);
                for dy in 0..CELL {
                    for dx in 0..CELL {
                        img.put_pixel(cx + dx, cy + dy, Luma([shade]));
                    }
                }
            }
        }
    }
    // Thin lines across the text, as dark as it.
    for _ in 0..4 {
        let (ya, yb) = (noise.below(h) as f32, noise.below(h) as f32);
        for x in 0..w {
            let y = ya + (yb - ya) * x as f32 / w as f32;
            img.put_pixel(x, (y as u32).min(h - 1), Luma([40]));
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| crate::Error::Internal(format!("captcha: {e}")))?;
    Ok(Captcha { answer, png })
}

/// An answer as it is compared: without spaces, in upper case.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Random numbers for the picture. A failing generator yields 0s (a
/// plain picture): the answer itself is drawn first and its failure is
/// reported.
struct Noise<'a>(Draws<'a>);

impl Noise<'_> {
    fn below(&mut self, n: u32) -> u32 {
        self.0.below(n).unwrap_or(0)
    }
}

/// Pictures tried (by their MAC) until they expire: one try per picture,
/// even when the browser's cookie is sent again. Kept in memory, bounded;
/// in the database when instances share one.
#[derive(Default)]
pub struct UsedCaptchas(
    Mutex<HashMap<String, u64>>,
    Option<std::sync::Arc<crate::store::Store>>,
);

/// Tried pictures remembered at most (ten minutes' worth of a flood).
const MAX_USED: usize = 100_000;

impl UsedCaptchas {
    /// Remembered in `store`, for every instance that shares it.
    pub fn shared(store: std::sync::Arc<crate::store::Store>) -> Self {
        UsedCaptchas(Mutex::default(), Some(store))
    }

    /// Records the picture with MAC `mac`, valid until `expiry`, as tried;
    /// `false` if it was tried before (or too many live ones to remember).
    pub fn first_use(&self, mac: &str, expiry: u64, now: u64) -> bool {
        if let Some(store) = &self.1 {
            // A failure to record counts as used: one try per picture.
            return store
                .write(now, |w| w.first_use(&format!("captcha {mac}"), expiry))
                .unwrap_or(false);
        }
        let mut used = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if used.len() >= MAX_USED {
            used.retain(|_, until| *until > now);
        }
        if used.len() >= MAX_USED {
            return false;
        }
        used.insert(mac.to_string(), expiry).is_none()
    }
}

/// The key of the CAPTCHA MACs, derived from the master key (so every
/// server instance sharing the data folder's keys accepts them).
pub fn key(master: &[u8]) -> ring::hmac::Key {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"countersign");
    let prk = salt.extract(master);
    let info: [&[u8]; 1] = [b"web pre-session captcha"];
    match prk.expand(&info, ring::hmac::HMAC_SHA256) {
        Ok(okm) => ring::hmac::Key::from(okm),
        // Only an output longer than 255 hash blocks fails; this is one.
        Err(_) => ring::hmac::Key::new(ring::hmac::HMAC_SHA256, master),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_distinct_and_fills_its_box() {
        let mut seen = std::collections::HashSet::new();
        for &c in ALPHABET {
            let g = glyph(c).unwrap();
            assert!(seen.insert(g), "{} repeats a glyph", c as char);
            assert!(
                g[0] != 0 && g[6] != 0,
                "{} does not reach top and bottom",
                c as char
            );
            let or = g.iter().fold(0, |a, r| a | r);
            assert!(
                or & 0b10000 != 0 && or & 1 != 0,
                "{} does not reach both sides",
                c as char
            );
        }
    }

    #[test]
    fn a_captcha_is_a_png_of_five_alphabet_characters_and_differs_each_time() {
        let rng = ring::rand::SystemRandom::new();
        let a = generate(&rng).unwrap();
        let b = generate(&rng).unwrap();
        assert_eq!(a.answer.len(), LENGTH);
        assert!(a.answer.bytes().all(|c| ALPHABET.contains(&c)));
        let img = image::load_from_memory(&a.png).unwrap();
        assert_eq!((img.width(), img.height()), SIZE);
        assert_ne!(a.png, b.png);
    }

    #[test]
    fn answers_compare_without_case_or_spaces() {
        assert_eq!(normalise("k7pxa"), "K7PXA");
        assert_eq!(normalise(" K7P XA "), "K7PXA");
        assert_ne!(normalise("K7PX"), "K7PXA");
    }
}

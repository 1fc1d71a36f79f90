//! One-time passwords: TOTP (RFC 6238) and HOTP (RFC 4226), computed by
//! `totp-rs` from parameters this crate has already validated.

use serde::{Deserialize, Serialize};
use totp_rs::{Builder, Totp};

use crate::secret::SecretBytes;
use crate::Error;

/// The HMAC hash of an OTP account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Algorithm {
    /// HMAC-SHA1, the default and by far the most common.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// The name used in otpauth URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1`, `SHA256` or `SHA512` in any case.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Ok(Algorithm::Sha1),
            "SHA256" => Ok(Algorithm::Sha256),
            "SHA512" => Ok(Algorithm::Sha512),
            _ => Err(Error::field(
                "algorithm",
                format!(
                    "'{}' is not SHA1, SHA256 or SHA512",
                    crate::uri::truncate(s)
                ),
            )),
        }
    }

    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
            Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
            Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

/// Time-based or counter-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum OtpKind {
    /// A new code every `period` seconds.
    Totp {
        /// Seconds per time step.
        period: u32,
    },
    /// A new code each time the counter advances.
    Hotp {
        /// The counter value the next code is computed from.
        counter: u64,
    },
}

/// Digits allowed in a code.
pub const DIGITS: std::ops::RangeInclusive<u32> = 6..=8;
/// Periods allowed for TOTP, in seconds.
pub const PERIODS: std::ops::RangeInclusive<u32> = 1..=3600;
/// Shortest secret accepted: 80 bits, what many real services issue.
pub const MIN_SECRET_BYTES: usize = 10;
/// Longest secret accepted.
pub const MAX_SECRET_BYTES: usize = 128;

/// A validated OTP generator: secret plus parameters.
#[derive(Clone)]
pub struct Otp {
    totp: Totp,
    kind: OtpKind,
    digits: u32,
}

impl std::fmt::Debug for Otp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otp")
            .field("kind", &self.kind)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Otp {
    /// Builds a generator, checking every parameter.
    pub fn new(
        secret: &SecretBytes,
        algorithm: Algorithm,
        digits: u32,
        kind: OtpKind,
    ) -> Result<Self, Error> {
        check_secret(secret.expose())?;
        if !DIGITS.contains(&digits) {
            return Err(Error::field(
                "digits",
                format!("{digits} is not between 6 and 8"),
            ));
        }
        let step = match kind {
            OtpKind::Totp { period } if PERIODS.contains(&period) => u64::from(period),
            OtpKind::Totp { period } => {
                return Err(Error::field(
                    "period",
                    format!("{period} s is not between 1 and 3600"),
                ))
            }
            // HOTP is TOTP with a one-second step evaluated at the counter.
            OtpKind::Hotp { .. } => 1,
        };
        let totp = Builder::new()
            .with_algorithm(algorithm.to_totp_rs())
            .with_digits(digits as u8)
            .with_secret(secret.expose().to_vec())
            .with_step_duration(step)
            .with_skew(0)
            .build_noncompliant();
        Ok(Otp { totp, kind, digits })
    }

    /// The kind and its period or counter.
    pub fn kind(&self) -> OtpKind {
        self.kind
    }

    /// The TOTP code at Unix time `now`, or the HOTP code at the stored counter.
    pub fn code(&self, now: u64) -> String {
        match self.kind {
            OtpKind::Totp { .. } => self.totp.generate(now).to_string(),
            OtpKind::Hotp { counter } => self.totp.generate(counter).to_string(),
        }
    }

    /// The TOTP code of time step `step`.
    pub fn code_at_step(&self, step: u64) -> String {
        self.totp
            .generate(step.saturating_mul(self.step()))
            .to_string()
    }

    /// Seconds per step (1 for HOTP).
    fn step(&self) -> u64 {
        match self.kind {
            OtpKind::Totp { period } => u64::from(period),
            OtpKind::Hotp { .. } => 1,
        }
    }

    /// Seconds until the TOTP code changes at Unix time `now` (0 for HOTP).
    pub fn seconds_left(&self, now: u64) -> u64 {
        match self.kind {
            OtpKind::Totp { period } => u64::from(period) - now % u64::from(period),
            OtpKind::Hotp { .. } => 0,
        }
    }

    /// Checks a TOTP `code` at Unix time `now`, accepting `skew` steps either
    /// side. Returns the matched time step, so the caller can refuse a step
    /// it has already accepted. The comparison is constant-time.
    pub fn verify_totp(&self, code: &str, now: u64, skew: u64) -> Option<u64> {
        let OtpKind::Totp { period } = self.kind else {
            return None;
        };
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let origin = now / u64::from(period);
        let mut matched = None;
        // Check every step in the window, so timing does not reveal which matched.
        for step in origin.saturating_sub(skew)..=origin.saturating_add(skew) {
            let candidate = self.code_at_step(step);
            if crate::secret::constant_time_eq(candidate.as_bytes(), code.as_bytes())
                && matched.is_none()
            {
                matched = Some(step);
            }
        }
        matched
    }

    /// Checks an HOTP `code` against counters `counter..counter + look_ahead`.
    /// Returns the matched counter; the caller stores `matched + 1`.
    pub fn verify_hotp(&self, code: &str, look_ahead: u64) -> Option<u64> {
        let OtpKind::Hotp { counter } = self.kind else {
            return None;
        };
        let code = code.trim();
        let mut matched = None;
        for c in counter..counter.saturating_add(look_ahead.max(1)) {
            let candidate = self.totp.generate(c).to_string();
            if crate::secret::constant_time_eq(candidate.as_bytes(), code.as_bytes())
                && matched.is_none()
            {
                matched = Some(c);
            }
        }
        matched
    }
}

/// Checks a secret's length.
pub(crate) fn check_secret(secret: &[u8]) -> Result<(), Error> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::field(
            "secret",
            format!("is {} bits; at least 80 are needed", secret.len() * 8),
        ));
    }
    if secret.len() > MAX_SECRET_BYTES {
        return Err(Error::field(
            "secret",
            format!("is longer than {MAX_SECRET_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Decodes a base32 secret as people and services write it: any case, with
/// or without `=` padding, with spaces or dashes between groups.
pub fn decode_base32(text: &str) -> Result<SecretBytes, Error> {
    let mut clean = zeroize::Zeroizing::new(String::with_capacity(text.len()));
    for c in text.chars() {
        match c {
            ' ' | '-' | '\t' | '=' => {}
            c if c.is_ascii_alphabetic() => clean.push(c.to_ascii_uppercase()),
            '2'..='7' => clean.push(c),
            _ => return Err(Error::field("secret", "is not base32 (A–Z and 2–7)")),
        }
    }
    // Re-pad so the strict decoder accepts any length.
    let padded_len = clean.len().div_ceil(8) * 8;
    while clean.len() < padded_len {
        clean.push('=');
    }
    let bytes = data_encoding::BASE32
        .decode(clean.as_bytes())
        .map_err(|_| {
            Error::field(
                "secret",
                "is not valid base32 (wrong length or trailing bits)",
            )
        })?;
    let secret = SecretBytes::new(bytes);
    check_secret(secret.expose())?;
    Ok(secret)
}

/// Encodes a secret as unpadded upper-case base32, the otpauth form.
pub fn encode_base32(secret: &SecretBytes) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(data_encoding::BASE32_NOPAD.encode(secret.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otp(secret: &[u8], alg: Algorithm, digits: u32, kind: OtpKind) -> Otp {
        Otp::new(&SecretBytes::new(secret.to_vec()), alg, digits, kind).expect("valid parameters")
    }

    /// RFC 4226 Appendix D: HOTP-SHA1, secret "12345678901234567890".
    #[test]
    fn rfc4226_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in want.iter().enumerate() {
            let o = otp(
                b"12345678901234567890",
                Algorithm::Sha1,
                6,
                OtpKind::Hotp {
                    counter: counter as u64,
                },
            );
            assert_eq!(o.code(0), *code, "counter {counter}");
        }
    }

    /// RFC 6238 Appendix B: 8 digits, 30 s, one seed per hash.
    #[test]
    fn rfc6238_vectors() {
        let sha1 = b"12345678901234567890".as_slice();
        let sha256 = b"12345678901234567890123456789012".as_slice();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        let period = OtpKind::Totp { period: 30 };
        for (t, c1, c256, c512) in table {
            assert_eq!(
                otp(sha1, Algorithm::Sha1, 8, period).code(t),
                c1,
                "SHA1 at {t}"
            );
            assert_eq!(
                otp(sha256, Algorithm::Sha256, 8, period).code(t),
                c256,
                "SHA256 at {t}"
            );
            assert_eq!(
                otp(sha512, Algorithm::Sha512, 8, period).code(t),
                c512,
                "SHA512 at {t}"
            );
        }
    }

    #[test]
    fn verification_returns_the_matched_step_within_skew() {
        let o = otp(
            b"12345678901234567890",
            Algorithm::Sha1,
            8,
            OtpKind::Totp { period: 30 },
        );
        assert_eq!(o.verify_totp("07081804", 1111111109, 1), Some(37037036));
        // The previous and next step are accepted with skew 1...
        assert_eq!(
            o.verify_totp("07081804", 1111111109 + 30, 1),
            Some(37037036)
        );
        assert_eq!(
            o.verify_totp("07081804", 1111111109 - 30, 1),
            Some(37037036)
        );
        // ...but not two steps away, nor with skew 0 one step away.
        assert_eq!(o.verify_totp("07081804", 1111111109 + 60, 1), None);
        assert_eq!(o.verify_totp("07081804", 1111111109 + 30, 0), None);
        assert_eq!(o.verify_totp("0708180", 1111111109, 1), None);
        assert_eq!(o.verify_totp("0708180x", 1111111109, 1), None);
    }

    #[test]
    fn hotp_verification_looks_ahead() {
        let o = otp(
            b"12345678901234567890",
            Algorithm::Sha1,
            6,
            OtpKind::Hotp { counter: 2 },
        );
        assert_eq!(o.verify_hotp("969429", 3), Some(3));
        assert_eq!(o.verify_hotp("287082", 3), None, "counter 1 is behind");
    }

    #[test]
    fn eighty_bit_secrets_work_and_shorter_ones_do_not() {
        let s = decode_base32("JBSWY3DPEHPK3PXP").expect("80-bit secret");
        assert_eq!(s.len(), 10);
        assert!(Otp::new(&s, Algorithm::Sha1, 6, OtpKind::Totp { period: 30 }).is_ok());
        let err = decode_base32("JBSWY3DP").expect_err("40 bits");
        assert_eq!(
            err.to_string(),
            "secret: is 40 bits; at least 80 are needed"
        );
    }

    #[test]
    fn base32_is_read_the_way_people_write_it() {
        let want = decode_base32("HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K").expect("valid");
        for text in [
            "hzhv7cioLKROPPDLBG3R2IM74TIJ6T3K",
            "HZHV 7CIO LKRO PPDL BG3R 2IM7 4TIJ 6T3K",
            "HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K====",
        ] {
            assert_eq!(decode_base32(text).expect(text), want);
        }
        assert!(decode_base32("HZHV7CIO1KRO").is_err(), "1 is not base32");
    }

    #[test]
    fn parameters_out_of_range_are_refused() {
        let s = SecretBytes::new(vec![7; 20]);
        let totp = OtpKind::Totp { period: 30 };
        assert_eq!(
            Otp::new(&s, Algorithm::Sha1, 9, totp)
                .err()
                .unwrap()
                .to_string(),
            "digits: 9 is not between 6 and 8"
        );
        assert!(Otp::new(&s, Algorithm::Sha1, 6, OtpKind::Totp { period: 0 }).is_err());
    }

    #[test]
    fn seconds_left_counts_down() {
        let o = otp(&[1; 20], Algorithm::Sha1, 6, OtpKind::Totp { period: 30 });
        assert_eq!(o.seconds_left(60), 30);
        assert_eq!(o.seconds_left(89), 1);
    }
}

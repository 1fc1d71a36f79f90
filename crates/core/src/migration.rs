//! `otpauth-migration://offline?data=...` exports (Google Authenticator's
//! "Transfer accounts"): a base64 protobuf listing many accounts.
//!
//! The message is small and fixed, so it is read by a short wire-format
//! reader here instead of generated code:
//!
//! ```text
//! MigrationPayload { repeated OtpParameters otp_parameters = 1; version = 2; batch_size = 3; batch_index = 4; batch_id = 5 }
//! OtpParameters { bytes secret = 1; string name = 2; string issuer = 3;
//!                 Algorithm algorithm = 4; DigitCount digits = 5; OtpType type = 6; int64 counter = 7 }
//! ```

use crate::otp::{Algorithm, OtpKind};
use crate::otpauth::{strip_prefix_ci, OtpAccount};
use crate::secret::SecretBytes;
use crate::uri::{percent_decode, Query};
use crate::Error;

/// Parses an export URI into its accounts (at least one).
pub fn parse(uri: &str) -> Result<Vec<OtpAccount>, Error> {
    let rest = strip_prefix_ci(uri.trim(), "otpauth-migration://offline").ok_or_else(|| {
        Error::Unsupported("expected otpauth-migration://offline?data=...".into())
    })?;
    let query = Query::parse(rest.strip_prefix('?').unwrap_or(rest))?;
    let raw = query
        .raw("data")
        .ok_or_else(|| Error::field("data", "is missing"))?;
    // '+' is part of base64 here, not an encoded space.
    let b64 = percent_decode("data", raw, false)?.replace(' ', "+");
    let bytes = data_encoding::BASE64
        .decode(b64.as_bytes())
        .or_else(|_| data_encoding::BASE64_NOPAD.decode(b64.trim_end_matches('=').as_bytes()))
        .map_err(|_| Error::field("data", "is not valid base64"))?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let mut accounts = Vec::new();
    let mut reader = Reader(&bytes);
    while let Some((field, value)) = reader.next_field()? {
        if let (1, Value::Bytes(msg)) = (field, value) {
            accounts.push(account(msg)?);
        }
    }
    if accounts.is_empty() {
        return Err(Error::field("data", "holds no accounts"));
    }
    Ok(accounts)
}

/// Formats accounts as one export URI.
pub fn format(accounts: &[OtpAccount]) -> String {
    let mut payload = Vec::new();
    for a in accounts {
        let mut m = Vec::new();
        put_bytes(&mut m, 1, a.secret.expose());
        let name = match &a.issuer {
            Some(i) => format!("{i}:{}", a.account),
            None => a.account.clone(),
        };
        put_bytes(&mut m, 2, name.as_bytes());
        if let Some(i) = &a.issuer {
            put_bytes(&mut m, 3, i.as_bytes());
        }
        let alg = match a.algorithm {
            Algorithm::Sha1 => 1,
            Algorithm::Sha256 => 2,
            Algorithm::Sha512 => 3,
        };
        put_varint_field(&mut m, 4, alg);
        put_varint_field(&mut m, 5, if a.digits == 8 { 2 } else { 1 });
        match a.kind {
            OtpKind::Hotp { counter } => {
                put_varint_field(&mut m, 6, 1);
                put_varint_field(&mut m, 7, counter);
            }
            OtpKind::Totp { .. } => put_varint_field(&mut m, 6, 2),
        }
        put_bytes(&mut payload, 1, &m);
        m.iter_mut().for_each(|b| *b = 0);
    }
    put_varint_field(&mut payload, 2, 1);
    put_varint_field(&mut payload, 3, 1);
    let b64 = data_encoding::BASE64.encode(&payload);
    payload.iter_mut().for_each(|b| *b = 0);
    format!(
        "otpauth-migration://offline?data={}",
        crate::uri::percent_encode(&b64)
    )
}

fn account(msg: &[u8]) -> Result<OtpAccount, Error> {
    let (mut secret, mut name, mut issuer) = (None, None, None);
    let (mut algorithm, mut digits, mut hotp, mut counter) = (Algorithm::Sha1, 6, false, 0u64);
    let mut reader = Reader(msg);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => secret = Some(SecretBytes::new(b.to_vec())),
            (2, Value::Bytes(b)) => name = Some(utf8("name", b)?),
            (3, Value::Bytes(b)) => issuer = Some(utf8("issuer", b)?),
            (4, Value::Varint(v)) => {
                algorithm = match v {
                    0 | 1 => Algorithm::Sha1,
                    2 => Algorithm::Sha256,
                    3 => Algorithm::Sha512,
                    _ => {
                        return Err(Error::field(
                            "algorithm",
                            "MD5 or an unknown hash is not supported",
                        ))
                    }
                }
            }
            (5, Value::Varint(v)) => {
                digits = match v {
                    0 | 1 => 6,
                    2 => 8,
                    _ => return Err(Error::field("digits", "unknown digit count")),
                }
            }
            (6, Value::Varint(v)) => hotp = v == 1,
            (7, Value::Varint(v)) => counter = v,
            _ => {}
        }
    }
    let secret =
        secret.ok_or_else(|| Error::field("secret", "is missing from an exported account"))?;
    let name = name.unwrap_or_default();
    let issuer = issuer.filter(|i| !i.is_empty());
    // Exports often repeat the issuer as a name prefix ("ALEA:jd2468").
    let account = match (&issuer, name.split_once(':')) {
        (Some(i), Some((prefix, rest))) if prefix == i => rest.to_string(),
        (None, Some((_, rest))) => rest.to_string(),
        _ => name,
    };
    let kind = if hotp {
        OtpKind::Hotp { counter }
    } else {
        OtpKind::Totp { period: 30 }
    };
    let account = OtpAccount {
        issuer,
        account: account.trim().to_string(),
        secret,
        algorithm,
        digits,
        kind,
    };
    if account.account.is_empty() {
        return Err(Error::field("name", "an exported account has no name"));
    }
    account.otp()?;
    Ok(account)
}

fn utf8(field: &'static str, b: &[u8]) -> Result<String, Error> {
    String::from_utf8(b.to_vec()).map_err(|_| Error::field(field, "is not valid UTF-8"))
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// A protobuf wire-format reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or_else(truncated)?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::field("data", "has an over-long number"))
    }

    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, Error> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| truncated())?;
                if len > self.0.len() {
                    return Err(truncated());
                }
                let (b, rest) = self.0.split_at(len);
                self.0 = rest;
                Value::Bytes(b)
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                self.0 = self.0.get(n..).ok_or_else(truncated)?;
                Value::Varint(0)
            }
            _ => return Err(Error::field("data", "is not a migration payload")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn truncated() -> Error {
    Error::field("data", "is truncated")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The export in the QR corpus: two TOTP accounts and one HOTP.
    const EXPORT: &str = "otpauth-migration://offline?data=CjoKFLZgLnXBrBv%2BJUaKQTeH3Z%2FYvhFlEhZBTEVBOmpkMjQ2OEBhbGFjb3AuZ292GgRBTEVBIAEoATACCjcKFEYYvyLwFydwrtjOyDPCa8QMEzXEEhFhbGljZUBleGFtcGxlLmNvbRoGR2l0SHViIAEoATACCigKCuho1f6kwSsYd24SDEJhbms6asO8cmdlbhoEQmFuayABKAEwATgFEAEYASAAKOeKrdwG";

    #[test]
    fn reads_a_real_export() {
        let accounts = parse(EXPORT).unwrap();
        let names: Vec<String> = accounts.iter().map(|a| a.display_name()).collect();
        assert_eq!(
            names,
            [
                "ALEA (jd2468@alacop.gov)",
                "GitHub (alice@example.com)",
                "Bank (jürgen)"
            ]
        );
        assert_eq!(accounts[0].kind, OtpKind::Totp { period: 30 });
        assert_eq!(accounts[2].kind, OtpKind::Hotp { counter: 5 });
        assert_eq!(accounts[2].secret.len(), 10);
    }

    #[test]
    fn format_then_parse_is_identity() {
        let accounts = parse(EXPORT).unwrap();
        assert_eq!(parse(&format(&accounts)).unwrap(), accounts);
    }

    #[test]
    fn malformed_exports_are_named() {
        let cases = [
            ("otpauth-migration://offline", "data: is missing"),
            (
                "otpauth-migration://offline?data=!!!",
                "data: is not valid base64",
            ),
            (
                "otpauth-migration://offline?data=CjoKFLZg",
                "data: is truncated",
            ),
            (
                "otpauth-migration://offline?data=EAE%3D",
                "data: holds no accounts",
            ),
            (
                "otpauth://totp/x",
                "unsupported URI: expected otpauth-migration://offline?data=...",
            ),
        ];
        for (uri, want) in cases {
            assert_eq!(
                parse(uri).err().map(|e| e.to_string()).as_deref(),
                Some(want),
                "{uri}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_data_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let uri = format!("otpauth-migration://offline?data={}", data_encoding::BASE64.encode(&data));
            let _ = parse(&uri);
        }
    }
}

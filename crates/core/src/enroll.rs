//! The enrollment payload shown as a QR code on the registration page:
//!
//! ```text
//! countersign://enroll?v=1&s=<server URL>&c=<activation code>&a=<account>
//!     &i=<issuer>&k=<server Ed25519 public key>&p=<TLS certificate pin>
//! ```

use crate::keys::{decode_fixed, PublicKey};
use crate::otpauth::strip_prefix_ci;
use crate::uri::{percent_encode, truncate, Query};
use crate::Error;

/// The payload version this build reads and writes.
pub const ENROLLMENT_VERSION: u32 = 1;

/// Everything a device needs to activate with a server.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// Server base URL, `https://host[:port]` (or `http://` behind a proxy).
    pub server: String,
    /// One-time activation code (secret until used).
    pub code: String,
    /// The account being enrolled, e.g. `cs0101@alacop.gov`.
    pub account: String,
    /// Who issues it, e.g. `ALEA`.
    pub issuer: String,
    /// The server's key: only challenges it signed are shown.
    pub server_key: PublicKey,
    /// SHA-256 of the server certificate's SubjectPublicKeyInfo, to pin a
    /// self-signed certificate.
    pub pin: Option<[u8; 32]>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("server", &self.server)
            .field("code", &"<redacted>")
            .field("account", &self.account)
            .field("issuer", &self.issuer)
            .field("server_key", &self.server_key)
            .field(
                "pin",
                &self.pin.map(|p| data_encoding::BASE64URL_NOPAD.encode(&p)),
            )
            .finish()
    }
}

impl Enrollment {
    /// Parses and validates a `countersign://enroll?...` payload.
    pub fn parse(payload: &str) -> Result<Self, Error> {
        let rest = strip_prefix_ci(payload.trim(), "countersign://enroll")
            .ok_or_else(|| Error::Unsupported("expected a countersign://enroll payload".into()))?;
        let query = Query::parse(rest.strip_prefix('?').unwrap_or(rest))?;
        let version = query.required("v")?;
        if version != ENROLLMENT_VERSION.to_string() {
            return Err(Error::field(
                "v",
                format!(
                    "version '{}' is not supported; update the app",
                    truncate(&version)
                ),
            ));
        }
        let e = Enrollment {
            server: query.required("s")?,
            code: query.required("c")?,
            account: query.required("a")?,
            issuer: query.required("i")?,
            server_key: PublicKey::from_base64("k", &query.required("k")?)?,
            pin: query
                .text("p")?
                .filter(|p| !p.is_empty())
                .map(|p| decode_fixed("p", &p))
                .transpose()?,
        };
        e.validate()?;
        Ok(e)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), Error> {
        check_server_url(&self.server)?;
        if !(16..=128).contains(&self.code.len())
            || !self
                .code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::field(
                "c",
                "the activation code must be 16–128 letters, digits, '-' or '_'",
            ));
        }
        if self.account.trim().is_empty() || self.account.len() > 254 {
            return Err(Error::field("a", "the account must be 1–254 characters"));
        }
        if self.issuer.trim().is_empty() || self.issuer.len() > 64 {
            return Err(Error::field("i", "the issuer must be 1–64 characters"));
        }
        Ok(())
    }

    /// Formats the payload.
    pub fn to_uri(&self) -> String {
        let mut s = format!(
            "countersign://enroll?v={ENROLLMENT_VERSION}&s={}&c={}&a={}&i={}&k={}",
            percent_encode(&self.server),
            percent_encode(&self.code),
            percent_encode(&self.account),
            percent_encode(&self.issuer),
            self.server_key.to_base64(),
        );
        if let Some(pin) = &self.pin {
            s.push_str("&p=");
            s.push_str(&data_encoding::BASE64URL_NOPAD.encode(pin));
        }
        s
    }
}

/// A server base URL: `http(s)://host[:port][/path]`, no query, fragment,
/// credentials or whitespace.
pub fn check_server_url(url: &str) -> Result<(), Error> {
    let rest = strip_prefix_ci(url, "https://")
        .or_else(|| strip_prefix_ci(url, "http://"))
        .ok_or_else(|| Error::field("s", "the server URL must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        return Err(Error::field(
            "s",
            format!("'{}' is not a server base URL", truncate(url)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Enrollment {
        Enrollment {
            server: "https://127.0.0.1:8443".into(),
            code: "k3J9-xq2_ZZ81mnbVa".into(),
            account: "cs0101@alacop.gov".into(),
            issuer: "ALEA".into(),
            server_key: PublicKey([7; 32]),
            pin: Some([9; 32]),
        }
    }

    #[test]
    fn round_trip() {
        let e = sample();
        assert_eq!(Enrollment::parse(&e.to_uri()).unwrap(), e);
        let no_pin = Enrollment {
            pin: None,
            ..sample()
        };
        assert_eq!(Enrollment::parse(&no_pin.to_uri()).unwrap(), no_pin);
    }

    #[test]
    fn debug_hides_the_activation_code() {
        assert!(!format!("{:?}", sample()).contains("k3J9"));
    }

    #[test]
    fn malformed_payloads_are_named() {
        let good = sample().to_uri();
        let cases = [
            (
                "otpauth://totp/x".to_string(),
                "unsupported URI: expected a countersign://enroll payload",
            ),
            (
                good.replace("v=1", "v=2"),
                "v: version '2' is not supported; update the app",
            ),
            (good.replace("&c=k3J9-xq2_ZZ81mnbVa", ""), "c: is missing"),
            (
                good.replace("k3J9-xq2_ZZ81mnbVa", "short"),
                "c: the activation code must be 16–128 letters, digits, '-' or '_'",
            ),
            (
                good.replace("https%3A%2F%2F", "ftp%3A%2F%2F"),
                "s: the server URL must start with https:// or http://",
            ),
            (good.replace("&k=", "&k=AA"), "k: is not base64url"),
            (good.replace("&p=", "&p=AAAA"), "p: must be 32 bytes"),
            (good.replace("a=cs0101@alacop.gov", "a="), "a: is empty"),
        ];
        for (uri, want) in cases {
            assert_eq!(
                Enrollment::parse(&uri)
                    .err()
                    .map(|e| e.to_string())
                    .as_deref(),
                Some(want),
                "{uri}"
            );
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(
            host in "[a-z][a-z0-9.-]{0,20}", port in 1u16.., code in "[A-Za-z0-9_-]{16,64}",
            account in "[\\PC]{1,40}", issuer in "[\\PC]{1,20}", key in any::<[u8; 32]>(), pin in any::<Option<[u8; 32]>>()
        ) {
            prop_assume!(!account.trim().is_empty() && !issuer.trim().is_empty());
            let e = Enrollment { server: format!("https://{host}:{port}"), code, account, issuer, server_key: PublicKey(key), pin };
            prop_assert_eq!(Enrollment::parse(&e.to_uri()).unwrap(), e);
        }
    }
}

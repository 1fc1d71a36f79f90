//! `otpauth://` URIs (the Google Key Uri Format) as scanned from a QR code.

use crate::otp::{self, Algorithm, Otp, OtpKind};
use crate::secret::SecretBytes;
use crate::uri::{percent_decode, percent_encode, truncate, Query};
use crate::Error;

/// An OTP account as an otpauth URI describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpAccount {
    /// Who issued it, e.g. `ALEA`; from the `issuer` parameter or the label prefix.
    pub issuer: Option<String>,
    /// The account name, e.g. `jd2468@alacop.gov`.
    pub account: String,
    /// The shared secret.
    pub secret: SecretBytes,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Code length, 6 to 8.
    pub digits: u32,
    /// TOTP period or HOTP counter.
    pub kind: OtpKind,
}

impl OtpAccount {
    /// Parses an `otpauth://totp/...` or `otpauth://hotp/...` URI.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        let uri = uri.trim();
        let rest = strip_prefix_ci(uri, "otpauth://")
            .ok_or_else(|| Error::Unsupported("expected a URI starting with otpauth://".into()))?;
        let (kind_name, rest) = rest.split_once('/').ok_or_else(|| {
            Error::field(
                "type",
                "missing: expected otpauth://totp/ or otpauth://hotp/",
            )
        })?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let query = Query::parse(query)?;

        let label = percent_decode("label", label, false)?;
        let (label_issuer, account) = match label.split_once(':') {
            Some((i, a)) => (Some(i.trim().to_string()), a.trim().to_string()),
            None => (None, label.trim().to_string()),
        };
        if account.is_empty() {
            return Err(Error::field("label", "the account name is empty"));
        }
        // The issuer parameter wins over the label prefix, as the format says.
        let issuer = query
            .text("issuer")?
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty())
            .or(label_issuer.filter(|i| !i.is_empty()));

        let secret = otp::decode_base32(&zeroize::Zeroizing::new(query.required("secret")?))?;
        let algorithm = match query.text("algorithm")? {
            Some(a) => Algorithm::parse(&a)?,
            None => Algorithm::Sha1,
        };
        let digits = number(&query, "digits", 6)?;
        let kind = match kind_name.to_ascii_lowercase().as_str() {
            "totp" => OtpKind::Totp {
                period: number(&query, "period", 30)?,
            },
            "hotp" => OtpKind::Hotp {
                counter: query
                    .text("counter")?
                    .ok_or_else(|| Error::field("counter", "is missing (required for hotp)"))?
                    .parse()
                    .map_err(|_| Error::field("counter", "is not a whole number"))?,
            },
            other => {
                return Err(Error::field(
                    "type",
                    format!("'{}' is neither totp nor hotp", truncate(other)),
                ))
            }
        };
        let account = OtpAccount {
            issuer,
            account,
            secret,
            algorithm,
            digits,
            kind,
        };
        account.otp()?;
        Ok(account)
    }

    /// An account from a secret key typed by hand (as services print it
    /// beside their QR code: base32, any case, spaces allowed), with the
    /// usual defaults: TOTP, SHA-1, six digits, 30 seconds. `name` is the
    /// account name to show ("Account" when empty).
    pub fn from_typed_key(key: &str, name: &str) -> Result<Self, Error> {
        let name = name.trim();
        let account = OtpAccount {
            issuer: None,
            account: if name.is_empty() { "Account" } else { name }.to_string(),
            secret: otp::decode_base32(key.trim())?,
            algorithm: Algorithm::Sha1,
            digits: 6,
            kind: OtpKind::Totp { period: 30 },
        };
        account.otp()?;
        Ok(account)
    }

    /// Formats the account as a canonical otpauth URI.
    pub fn to_uri(&self) -> String {
        let (kind, extra) = match self.kind {
            OtpKind::Totp { period } => ("totp", format!("period={period}")),
            OtpKind::Hotp { counter } => ("hotp", format!("counter={counter}")),
        };
        // The label splits at its first colon: an issuer prefix with a
        // colon of its own is left empty (the `issuer` parameter names it),
        // and an account with a colon always gets a prefix, empty or not.
        let prefix = self.issuer.as_deref().filter(|i| !i.contains(':'));
        let label = match prefix {
            Some(i) => format!("{}:{}", percent_encode(i), percent_encode(&self.account)),
            None if self.issuer.is_some() || self.account.contains(':') => {
                format!(":{}", percent_encode(&self.account))
            }
            None => percent_encode(&self.account),
        };
        let issuer = self
            .issuer
            .as_deref()
            .map(|i| format!("&issuer={}", percent_encode(i)))
            .unwrap_or_default();
        format!(
            "otpauth://{kind}/{label}?secret={}{issuer}&algorithm={}&digits={}&{extra}",
            otp::encode_base32(&self.secret).as_str(),
            self.algorithm.as_str(),
            self.digits,
        )
    }

    /// A code generator for this account.
    pub fn otp(&self) -> Result<Otp, Error> {
        Otp::new(&self.secret, self.algorithm, self.digits, self.kind)
    }

    /// How the account is shown to a person: `Issuer (account)` or the account.
    pub fn display_name(&self) -> String {
        match &self.issuer {
            Some(i) => format!("{i} ({})", self.account),
            None => self.account.clone(),
        }
    }
}

fn number(query: &Query<'_>, field: &'static str, default: u32) -> Result<u32, Error> {
    match query.text(field)? {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| Error::field(field, format!("'{}' is not a whole number", truncate(&v)))),
    }
}

pub(crate) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CLEAN: &str = "otpauth://totp/ALEA:jd2468@alacop.gov?secret=HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K&issuer=ALEA&algorithm=SHA1&digits=6&period=30";

    #[test]
    fn a_typed_key_becomes_a_totp_account() {
        let a = OtpAccount::from_typed_key(
            " hzhv 7cio lkro ppdl bg3r 2im7 4tij 6t3k ",
            " cs0101@alacop.gov ",
        )
        .unwrap();
        let b = OtpAccount::parse(CLEAN).unwrap();
        assert_eq!(a.account, "cs0101@alacop.gov");
        assert_eq!(a.secret, b.secret);
        assert_eq!(a.otp().unwrap().code(59), b.otp().unwrap().code(59));
        assert_eq!(OtpAccount::parse(&a.to_uri()).unwrap(), a);
        let unnamed = OtpAccount::from_typed_key("HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K", "").unwrap();
        assert_eq!(unnamed.account, "Account");
        // What was wrong, never the key.
        let e = OtpAccount::from_typed_key("HZHV7CIO-not-base32!", "x").unwrap_err();
        assert!(
            e.to_string().contains("base32") && !e.to_string().contains("HZHV"),
            "{e}"
        );
        let e = OtpAccount::from_typed_key("JBSWY3DP", "x").unwrap_err();
        assert!(e.to_string().contains("at least 80"), "{e}");
    }

    #[test]
    fn parses_the_common_form() {
        let a = OtpAccount::parse(CLEAN).unwrap();
        assert_eq!(a.issuer.as_deref(), Some("ALEA"));
        assert_eq!(a.account, "jd2468@alacop.gov");
        assert_eq!(a.secret.len(), 20);
        assert_eq!(
            (a.algorithm, a.digits, a.kind),
            (Algorithm::Sha1, 6, OtpKind::Totp { period: 30 })
        );
        assert_eq!(a.to_uri(), CLEAN);
    }

    #[test]
    fn colons_in_the_account_or_issuer_survive_a_round_trip() {
        // Found by the fuzzer: an empty label prefix, a colon in the account.
        let found = "otpauth://totp/:ALEAALEAd2j:468@alacop.gov?secret=HZHV7CIOLKROPLBG3R2IM74TIJKT6T63&isALEA:ALEA";
        let a = OtpAccount::parse(found).unwrap();
        assert_eq!(
            (a.issuer.as_deref(), a.account.as_str()),
            (None, "ALEAALEAd2j:468@alacop.gov")
        );
        assert_eq!(OtpAccount::parse(&a.to_uri()).unwrap(), a);
        let b = OtpAccount {
            issuer: Some("Corp:East".into()),
            account: "jd:1".into(),
            ..a
        };
        assert_eq!(OtpAccount::parse(&b.to_uri()).unwrap(), b);
    }

    #[test]
    fn parses_unicode_labels_encoded_and_raw() {
        let pct = OtpAccount::parse("otpauth://totp/Soci%C3%A9t%C3%A9%20G%C3%A9n%C3%A9rale:zo%C3%AB.m%C3%BCller%40exemple.fr?secret=47C7WLR3RYOL2MPL3E5DF7ZF7QBRYLZI&issuer=Soci%C3%A9t%C3%A9%20G%C3%A9n%C3%A9rale").unwrap();
        assert_eq!(pct.issuer.as_deref(), Some("Société Générale"));
        assert_eq!(pct.account, "zoë.müller@exemple.fr");
        let raw = OtpAccount::parse("otpauth://totp/みずほ銀行:田中太郎@example.jp?secret=EVJFUWXNDKJM45T37WA7JIIUJVXUK57Z&issuer=みずほ銀行").unwrap();
        assert_eq!(raw.issuer.as_deref(), Some("みずほ銀行"));
        assert_eq!(raw.account, "田中太郎@example.jp");
    }

    #[test]
    fn accepts_lenient_variants() {
        let a = OtpAccount::parse("OTPAUTH://TOTP/mb1357%40alacop.gov?secret=jbsw y3dp ehpk 3pxp====&issuer=ALEA&algorithm=sha256&digits=8&period=60").unwrap();
        assert_eq!(a.account, "mb1357@alacop.gov");
        assert_eq!(a.secret.len(), 10);
        assert_eq!(
            (a.algorithm, a.digits, a.kind),
            (Algorithm::Sha256, 8, OtpKind::Totp { period: 60 })
        );
        let h = OtpAccount::parse(
            "otpauth://hotp/ALEA:jd?secret=YOREZK4HUJ3RHIH7AST6SYILOCSZ6M6C&counter=5",
        )
        .unwrap();
        assert_eq!(h.kind, OtpKind::Hotp { counter: 5 });
    }

    #[test]
    fn every_malformed_field_is_named() {
        let cases = [
            (
                "https://x/y",
                "unsupported URI: expected a URI starting with otpauth://",
            ),
            (
                "otpauth://totp",
                "type: missing: expected otpauth://totp/ or otpauth://hotp/",
            ),
            (
                "otpauth://motp/a?secret=JBSWY3DPEHPK3PXP",
                "type: 'motp' is neither totp nor hotp",
            ),
            (
                "otpauth://totp/?secret=JBSWY3DPEHPK3PXP",
                "label: the account name is empty",
            ),
            (
                "otpauth://totp/ALEA:?secret=JBSWY3DPEHPK3PXP",
                "label: the account name is empty",
            ),
            (
                "otpauth://totp/a%4?secret=JBSWY3DPEHPK3PXP",
                "label: contains a malformed %-escape",
            ),
            ("otpauth://totp/a", "secret: is missing"),
            ("otpauth://totp/a?secret=", "secret: is empty"),
            (
                "otpauth://totp/a?secret=JBSW!Y3DP",
                "secret: is not base32 (A–Z and 2–7)",
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DP",
                "secret: is 40 bits; at least 80 are needed",
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&algorithm=MD5",
                "algorithm: 'MD5' is not SHA1, SHA256 or SHA512",
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=5",
                "digits: 5 is not between 6 and 8",
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&digits=six",
                "digits: 'six' is not a whole number",
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&period=0",
                "period: 0 s is not between 1 and 3600",
            ),
            (
                "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP",
                "counter: is missing (required for hotp)",
            ),
            (
                "otpauth://hotp/a?secret=JBSWY3DPEHPK3PXP&counter=-1",
                "counter: is not a whole number",
            ),
            (
                "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP&secret=JBSWY3DPEHPK3PXP",
                "query: parameter 'secret' is given twice",
            ),
        ];
        for (uri, want) in cases {
            assert_eq!(
                OtpAccount::parse(uri)
                    .err()
                    .map(|e| e.to_string())
                    .as_deref(),
                Some(want),
                "{uri}"
            );
        }
    }

    #[test]
    fn errors_never_echo_the_secret() {
        let err = OtpAccount::parse("otpauth://totp/a?secret=SECRETSECRET1")
            .err()
            .unwrap();
        assert!(!err.to_string().contains("SECRETSECRET"));
    }

    fn any_account() -> impl Strategy<Value = OtpAccount> {
        let text = "[\\PC]{1,20}".prop_filter("no colon, not blank", |s: &String| {
            s.trim() == s && !s.is_empty()
        });
        (
            proptest::option::of(text.clone()),
            text,
            proptest::collection::vec(any::<u8>(), 10..64),
            prop_oneof![
                Just(Algorithm::Sha1),
                Just(Algorithm::Sha256),
                Just(Algorithm::Sha512)
            ],
            6u32..=8,
            prop_oneof![
                (1u32..=3600).prop_map(|period| OtpKind::Totp { period }),
                any::<u64>().prop_map(|counter| OtpKind::Hotp { counter })
            ],
        )
            .prop_map(
                |(issuer, account, secret, algorithm, digits, kind)| OtpAccount {
                    issuer,
                    account,
                    secret: SecretBytes::new(secret),
                    algorithm,
                    digits,
                    kind,
                },
            )
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(a in any_account()) {
            prop_assert_eq!(OtpAccount::parse(&a.to_uri()).unwrap(), a);
        }

        #[test]
        fn parse_never_panics(s in "otpauth://[a-z]{0,5}/[\\PC]{0,40}") {
            let _ = OtpAccount::parse(&s);
        }
    }
}

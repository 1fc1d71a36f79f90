//! Small URI helpers shared by the payload parsers: percent-encoding and
//! query strings.

use crate::Error;

/// Decodes `%XX` escapes (and, in query values, `+` as a space) into UTF-8.
pub(crate) fn percent_decode(
    field: &'static str,
    s: &str,
    plus_is_space: bool,
) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::field(field, "contains a malformed %-escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::field(field, "is not valid UTF-8"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `@`
/// (valid in paths and queries, and common in account names).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A parsed query string: raw (still encoded) values by name. Repeated
/// names are an error, so a payload cannot say two things at once.
pub(crate) struct Query<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Query<'a> {
    pub(crate) fn parse(query: &'a str) -> Result<Self, Error> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(Error::Field {
                    field: "query",
                    problem: format!("parameter '{}' is given twice", truncate(name)),
                });
            }
            pairs.push((name, value));
        }
        Ok(Query { pairs })
    }

    /// The raw value of a parameter (names compare case-insensitively).
    pub(crate) fn raw(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The decoded value of a parameter.
    pub(crate) fn text(&self, field: &'static str) -> Result<Option<String>, Error> {
        self.raw(field)
            .map(|v| percent_decode(field, v, true))
            .transpose()
    }

    /// The decoded value of a required parameter.
    pub(crate) fn required(&self, field: &'static str) -> Result<String, Error> {
        match self.text(field)? {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(Error::field(field, "is empty")),
            None => Err(Error::field(field, "is missing")),
        }
    }
}

/// Shortens untrusted text quoted back in an error message.
pub(crate) fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(24).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        let s = "Société Générale: zoë@x.fr";
        assert_eq!(
            percent_decode("label", &percent_encode(s), false).unwrap(),
            s
        );
    }

    #[test]
    fn bad_escapes_are_refused() {
        assert!(percent_decode("label", "a%2", false).is_err());
        assert!(percent_decode("label", "a%zz", false).is_err());
        assert!(percent_decode("label", "%FF", false).is_err());
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Query::parse("secret=A&Secret=B").err().unwrap();
        assert!(err.to_string().contains("given twice"));
    }
}

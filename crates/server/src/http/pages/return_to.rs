//! Where a sign-in may send the browser afterwards: an application on the
//! allow-list (`web.return_to_allow`), matched on the parsed address by
//! scheme, host and port exactly, and by path at a segment boundary when
//! the entry has one. Never by text prefix: `https://app.example` must not
//! let through `https://app.example.evil.example`,
//! `https://app.example@evil.example` or `https://app.exampleevil.com`.

use url::Url;

/// Why a `return_to` was refused (for the audit row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It holds a control character (CR/LF would split headers).
    ControlCharacter,
    /// It is not an absolute http(s) address.
    NotAnAddress,
    /// It names a user or password (`https://app@evil`).
    Credentials,
    /// No entry of the allow-list matches it.
    NotAllowed,
}

impl Refusal {
    /// For the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ControlCharacter => "control character",
            Refusal::NotAnAddress => "not an absolute http(s) address",
            Refusal::Credentials => "user or password in the address",
            Refusal::NotAllowed => "not on the allow-list",
        }
    }
}

/// The address to go to after sign-in (normalised), if `target` matches
/// an entry of `allow`.
pub fn check(target: &str, allow: &[String]) -> Result<String, Refusal> {
    if target.chars().any(char::is_control) {
        return Err(Refusal::ControlCharacter);
    }
    let url = Url::parse(target).map_err(|_| Refusal::NotAnAddress)?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(Refusal::NotAnAddress);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    if allow.iter().any(|entry| matches(&url, entry)) {
        Ok(url.to_string())
    } else {
        Err(Refusal::NotAllowed)
    }
}

/// Whether `url` is within the allow-list `entry`.
fn matches(url: &Url, entry: &str) -> bool {
    let Ok(allowed) = Url::parse(entry) else {
        return false;
    };
    if url.scheme() != allowed.scheme()
        || url.host() != allowed.host()
        || url.port_or_known_default() != allowed.port_or_known_default()
    {
        return false;
    }
    let prefix = allowed.path();
    let path = url.path();
    prefix == "/"
        || path == prefix
        || (prefix.ends_with('/') && path.starts_with(prefix))
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        vec![
            "https://app.example".into(),
            "https://portal.example:8443/lets".into(),
        ]
    }

    #[test]
    fn the_listed_applications_are_allowed() {
        for ok in [
            "https://app.example",
            "https://app.example/",
            "https://APP.example/cases?id=4#top",
            "https://app.example:443/x",
            "https://portal.example:8443/lets",
            "https://portal.example:8443/lets/reports",
        ] {
            assert!(check(ok, &allow()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn look_alikes_are_refused() {
        for (bad, why) in [
            ("https://app.example.evil.example", Refusal::NotAllowed),
            ("https://app.example@evil.example", Refusal::Credentials),
            ("https://user:pw@app.example/", Refusal::Credentials),
            ("https://app.exampleevil.com", Refusal::NotAllowed),
            ("http://app.example/", Refusal::NotAllowed),
            ("https://app.example:444/", Refusal::NotAllowed),
            ("https://portal.example:8443/letsgo", Refusal::NotAllowed),
            ("https://portal.example/lets", Refusal::NotAllowed),
            ("https://evil.example/", Refusal::NotAllowed),
            ("//app.example/", Refusal::NotAnAddress),
            ("/my", Refusal::NotAnAddress),
            ("javascript:alert(1)", Refusal::NotAnAddress),
            (
                "https://app.example/\r\nSet-Cookie: x=1",
                Refusal::ControlCharacter,
            ),
            ("https://app.example/\n", Refusal::ControlCharacter),
        ] {
            assert_eq!(check(bad, &allow()), Err(why), "{bad:?}");
        }
    }
}

//! What the anonymous pages (sign-in's first step, New User Registration,
//! "Can't access your account?") keep before anyone is known: nothing in
//! the database, so anonymous traffic cannot grow it. The browser holds a
//! random form token in a `__Host-` cookie that every form must repeat (a
//! page on another site can neither read nor set it), and, for the
//! recovery CAPTCHA, a MAC that binds the picture's answer to that token
//! and to an expiry. A session row is stored only when such a form is
//! posted with the right token.

use axum::http::HeaderMap;
use ring::hmac;
use ring::rand::SecureRandom;

use crate::domain::captcha::UsedCaptchas;
use crate::{Error, Server};

/// The cookie's name (`__Host-`: Secure, path `/`, no domain).
const COOKIE: &str = "__Host-cs_pre";

/// How long a CAPTCHA may be answered.
const CAPTCHA_SECONDS: u64 = 600;

/// The anonymous state a browser carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreSession {
    /// The form token (random, 256 bits).
    pub token: String,
    /// A CAPTCHA shown: its expiry and the MAC of its answer.
    captcha: Option<(u64, String)>,
}

impl PreSession {
    /// Records the picture this browser carries as tried; `false` if it
    /// was tried before (or there is none).
    pub fn first_try(&self, used: &UsedCaptchas, now: u64) -> bool {
        match &self.captcha {
            Some((expiry, mac)) => used.first_use(mac, *expiry, now),
            None => false,
        }
    }

    /// A new token.
    pub fn new(s: &Server) -> Result<Self, Error> {
        let mut b = [0u8; 32];
        s.rng
            .fill(&mut b)
            .map_err(|_| Error::Internal("random generator failed".into()))?;
        Ok(PreSession {
            token: data_encoding::BASE64URL_NOPAD.encode(&b),
            captcha: None,
        })
    }

    /// The one the request carries, if well formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = crate::http::extract::cookie(headers, COOKIE)?;
        let mut parts = value.split('.');
        let token = parts.next().filter(|t| t.len() == 43)?.to_string();
        let captcha = match (parts.next(), parts.next()) {
            (Some(expiry), Some(mac)) => Some((expiry.parse().ok()?, mac.to_string())),
            _ => None,
        };
        Some(PreSession { token, captcha })
    }

    /// The one the request carries, or a new one.
    pub fn carried_or_new(s: &Server, headers: &HeaderMap) -> Result<Self, Error> {
        match Self::from_headers(headers) {
            Some(p) => Ok(p),
            None => Self::new(s),
        }
    }

    /// Its `Set-Cookie` value (a browser session cookie).
    pub fn cookie(&self) -> String {
        let value = match &self.captcha {
            Some((expiry, mac)) => format!("{}.{expiry}.{mac}", self.token),
            None => self.token.clone(),
        };
        format!("{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax")
    }

    /// Whether a form's token is this one (constant time).
    pub fn form_ok(&self, typed: Option<&String>) -> bool {
        typed.is_some_and(|t| {
            countersign_core::secret::constant_time_eq(t.as_bytes(), self.token.as_bytes())
        })
    }

    /// Remembers a CAPTCHA's answer (as a MAC only the server can make).
    pub fn set_captcha(&mut self, key: &hmac::Key, answer: &str, now: u64) {
        let expiry = now + CAPTCHA_SECONDS;
        let mac = hmac::sign(key, &self.captcha_input(expiry, answer));
        self.captcha = Some((expiry, data_encoding::BASE64URL_NOPAD.encode(mac.as_ref())));
    }

    /// Whether `typed` answers the CAPTCHA shown, before it expired.
    pub fn captcha_matches(&self, key: &hmac::Key, typed: &str, now: u64) -> bool {
        let Some((expiry, mac)) = &self.captcha else {
            return false;
        };
        let Ok(mac) = data_encoding::BASE64URL_NOPAD.decode(mac.as_bytes()) else {
            return false;
        };
        *expiry > now && hmac::verify(key, &self.captcha_input(*expiry, typed), &mac).is_ok()
    }

    /// What the MAC covers: the token, the expiry and the answer as the
    /// CAPTCHA compares it.
    fn captcha_input(&self, expiry: u64, answer: &str) -> Vec<u8> {
        let answer = crate::domain::captcha::normalise(answer);
        format!("captcha\n{}\n{expiry}\n{answer}", self.token).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    fn pre() -> PreSession {
        PreSession {
            token: "a".repeat(43),
            captcha: None,
        }
    }

    #[test]
    fn a_captcha_matches_its_answer_until_it_expires_and_only_for_its_token() {
        let key = crate::domain::captcha::key(&[7; 32]);
        let mut p = pre();
        p.set_captcha(&key, "AB3CD", 1000);
        assert!(p.captcha_matches(&key, " ab3 cd", 1000));
        assert!(!p.captcha_matches(&key, "AB3CE", 1000));
        assert!(!p.captcha_matches(&key, "AB3CD", 1000 + CAPTCHA_SECONDS));
        let mut other = p.clone();
        other.token = "b".repeat(43);
        assert!(
            !other.captcha_matches(&key, "AB3CD", 1000),
            "bound to the token"
        );
        assert!(!p.captcha_matches(&crate::domain::captcha::key(&[8; 32]), "AB3CD", 1000));
        // A longer expiry written by the browser breaks the MAC.
        let mut stretched = p.clone();
        if let Some((expiry, _)) = &mut stretched.captcha {
            *expiry += 3600;
        }
        assert!(!stretched.captcha_matches(&key, "AB3CD", 1000));

        // One try per picture.
        let used = UsedCaptchas::default();
        assert!(p.first_try(&used, 1000));
        assert!(!p.first_try(&used, 1001));
        assert!(!pre().first_try(&used, 1000), "no picture, no try");
    }

    #[test]
    fn the_cookie_reads_back() {
        let key = crate::domain::captcha::key(&[7; 32]);
        let mut p = pre();
        for _ in 0..2 {
            let cookie = p.cookie();
            let value = cookie.split(';').next().unwrap();
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, value.parse().unwrap());
            assert_eq!(PreSession::from_headers(&headers), Some(p.clone()));
            p.set_captcha(&key, "X", 5);
        }
        assert!(p.form_ok(Some(&"a".repeat(43))));
        assert!(!p.form_ok(Some(&"b".repeat(43))));
        assert!(!p.form_ok(None));
    }
}

//! Single sign-on: Countersign as an OpenID Connect provider. An
//! application sends the officer's browser to `authorize`; the sign-in
//! pages run as for any sign-in; the application receives a one-time code
//! and exchanges it for an ID token that says who signed in, when, and
//! with what (`amr`, `acr`). Logout ends the browser session and what it
//! gave every application.
//!
//! Only the authorization code flow exists (no implicit or hybrid flow);
//! PKCE (S256) is required of public clients.

pub mod authorize;
pub mod clients;
pub mod direct;
pub mod logout;
pub mod tokens;

pub use authorize::{AuthRequest, Next, Refusal, SignedIn};
pub use clients::{Client, NewClient};
pub use tokens::{IdClaims, Tokens, UserInfo};

use crate::store::{Factor, FactorMethod};

/// How long a retired signing key stays published: as long as anything it
/// signed may still be presented (an ID token, or a logout token's two
/// minutes), and a code's wait before that.
pub fn keys_published_for(config: &crate::infra::config::Config) -> u64 {
    (config.oidc.token_minutes * 60).max(logout::LOGOUT_TOKEN_SECONDS) + config.oidc.code_seconds
}

/// The assurance a sign-in reached (`acr`): `mfa` when the session proved
/// a method registered before it (a number-matched push, a code, the
/// questions), `pwd` otherwise. A method registered in the same session
/// proves nothing about who holds the account, so it does not reach `mfa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acr {
    /// The password alone (or with a method registered in that session).
    Password,
    /// The password and a second factor.
    Mfa,
}

impl Acr {
    /// Both, as published.
    pub const ALL: [Acr; 2] = [Acr::Mfa, Acr::Password];

    /// As sent in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Acr::Password => "pwd",
            Acr::Mfa => "mfa",
        }
    }

    /// What a session's proven factor reaches.
    pub fn of(factor: Option<Factor>) -> Self {
        match factor {
            Some(f) if !f.by_registration => Acr::Mfa,
            _ => Acr::Password,
        }
    }
}

/// The authentication methods a session really used (RFC 8176): `pwd`,
/// then the second factor's (`swk` and `user` for the number-matched push:
/// a key held by the app, and the officer typing the number; `otp`, `sms`,
/// `tel`, `kba`), and `mfa` when [`Acr::Mfa`] was reached.
pub fn amr(factor: Option<Factor>) -> Vec<&'static str> {
    let mut out = vec!["pwd"];
    if let Some(f) = factor {
        out.extend_from_slice(match f.method {
            FactorMethod::App => &["swk", "user"][..],
            FactorMethod::AppCode => &["otp"],
            FactorMethod::Sms => &["sms"],
            FactorMethod::Voice => &["tel"],
            FactorMethod::Questions => &["kba"],
        });
    }
    if Acr::of(factor) == Acr::Mfa {
        out.push("mfa");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factor(method: FactorMethod, by_registration: bool) -> Option<Factor> {
        Some(Factor {
            method,
            at: 1,
            by_registration,
        })
    }

    #[test]
    fn amr_says_what_was_used_and_mfa_only_for_a_method_held_before() {
        assert_eq!(amr(None), ["pwd"]);
        assert_eq!(
            amr(factor(FactorMethod::App, false)),
            ["pwd", "swk", "user", "mfa"]
        );
        assert_eq!(amr(factor(FactorMethod::Sms, false)), ["pwd", "sms", "mfa"]);
        assert_eq!(
            amr(factor(FactorMethod::Voice, false)),
            ["pwd", "tel", "mfa"]
        );
        assert_eq!(
            amr(factor(FactorMethod::AppCode, false)),
            ["pwd", "otp", "mfa"]
        );
        assert_eq!(
            amr(factor(FactorMethod::Questions, false)),
            ["pwd", "kba", "mfa"]
        );
        assert_eq!(amr(factor(FactorMethod::App, true)), ["pwd", "swk", "user"]);
        assert_eq!(Acr::of(factor(FactorMethod::App, true)), Acr::Password);
        assert_eq!(Acr::of(None), Acr::Password);
        assert_eq!(Acr::of(factor(FactorMethod::Sms, false)), Acr::Mfa);
    }
}

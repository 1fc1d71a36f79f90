//! The token endpoint's work: a code is exchanged once, by the application
//! it was issued to, with the same redirect address and the PKCE verifier
//! of its challenge, for an ID token and an access token; and the access
//! token reads the officer's claims (userinfo).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Client;
use crate::domain::{sha256, Code, Error, Server};
use crate::store::{CodeRow, NewAudit, TakenCode, TokenRow, UserRow};

/// What a code is exchanged for.
pub struct Tokens {
    /// For userinfo (opaque; stored as a hash).
    pub access_token: Zeroizing<String>,
    /// The signed ID token.
    pub id_token: String,
    /// Seconds both are valid.
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: String,
}

/// An ID token's claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    /// This provider.
    pub iss: String,
    /// The officer, stable and opaque.
    pub sub: String,
    /// The application.
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued.
    pub iat: u64,
    /// When the officer last gave the password.
    pub auth_time: u64,
    /// The request's nonce.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// The browser session.
    pub sid: String,
    /// `mfa` or `pwd`.
    pub acr: String,
    /// The methods used.
    pub amr: Vec<String>,
    /// The application (the only audience).
    pub azp: String,
    /// The officer's username.
    pub preferred_username: String,
    /// The officer's name.
    pub name: String,
    /// The officer's address.
    pub email: String,
}

/// What userinfo answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    /// As in the ID token.
    pub sub: String,
    /// The officer's username.
    pub preferred_username: String,
    /// The officer's name.
    pub name: String,
    /// The officer's address.
    pub email: String,
}

/// A PKCE verifier's shape (RFC 7636 §4.1).
fn verifier_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Why a fresh code does not go with this token request, if it does not.
fn mismatch(
    row: &CodeRow,
    client: &Client,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Option<&'static str> {
    if row.client_id != client.id {
        return Some("code issued to another application");
    }
    if row.redirect_uri != redirect_uri {
        return Some("redirect_uri differs from the authorization request");
    }
    match (row.code_challenge.as_str(), verifier) {
        ("", None) => None,
        ("", Some(_)) => Some("code_verifier without a code_challenge"),
        (_, None) => Some("code_verifier missing"),
        (challenge, Some(v)) => {
            let computed = data_encoding::BASE64URL_NOPAD.encode(&sha256(v.as_bytes()));
            let equal = countersign_core::secret::constant_time_eq(
                computed.as_bytes(),
                challenge.as_bytes(),
            );
            (!verifier_ok(v) || !equal).then_some("code_verifier does not match")
        }
    }
}

/// Why a code that was never issued (or is long gone) is refused.
const UNKNOWN_CODE: &str = "the code is not valid";

impl Server {
    /// Exchanges `code` for tokens, for the authenticated `client`.
    pub fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        ip: &str,
        now: u64,
    ) -> Result<Tokens, Error> {
        let hash = sha256(code.as_bytes());
        let row = NewAudit::of(&client.id, "oidc.token", "", ip);
        let lifetime = self.config.oidc.token_minutes * 60;
        let access_token = crate::domain::random_token(&self.rng)?;
        // The code is taken and its access token stored in one
        // transaction: a replay, whenever it comes, finds the token to
        // revoke.
        let mut unknown = false;
        let granted = self.write(now, |w| {
            // The refusal's row, and the answer (`why`, unless the row
            // says more).
            let refused =
                |w: &mut crate::store::Write<'_>, user: i64, why: &'static str, audited: &str| {
                    // Only for the row: a failed lookup must not undo what
                    // the transaction revoked.
                    let target = w.user_by_id(user).ok().flatten();
                    let target = target.map(|u| u.username).unwrap_or_default();
                    w.audit(&NewAudit {
                        target: &target,
                        ..row.with("refused", audited)
                    })?;
                    Ok(Err(why))
                };
            let c = match w.take_code(&hash, now)? {
                // Audited below, within a limit: anyone may send codes
                // for a public application, and an unknown one changes
                // nothing.
                TakenCode::Unknown => {
                    unknown = true;
                    return Ok(Err(UNKNOWN_CODE));
                }
                TakenCode::Spent(c) => {
                    let audited = "code used again or expired: its tokens are revoked";
                    let why = "the code was used already or expired";
                    return refused(w, c.user_id, why, audited);
                }
                TakenCode::Fresh(c) => c,
            };
            if let Some(why) = mismatch(&c, client, redirect_uri, verifier) {
                return refused(w, c.user_id, why, why);
            }
            let Some(user) = w.user_by_id(c.user_id)?.filter(|u| !u.disabled) else {
                let why = "the account is disabled";
                return refused(w, c.user_id, why, why);
            };
            let token = TokenRow {
                client_id: client.id.clone(),
                user_id: user.id,
                sid: c.sid.clone(),
                scope: c.scope.clone(),
                expires_at: now + lifetime,
                revoked: false,
            };
            w.insert_access_token(&sha256(access_token.as_bytes()), &hash, &token)?;
            let detail = format!("amr={} acr={}", c.amr, c.acr);
            w.audit(&NewAudit {
                target: &user.username,
                ..row.with("ok", &detail)
            })?;
            Ok(Ok((c, user)))
        })?;
        // Its own count: made-up codes must not use up the row a failed
        // client authentication from the same address gets.
        if unknown
            && self
                .audit_once_a_minute
                .take("oidc.token.unknown-code", ip, now)
        {
            self.audit(row.with("refused", UNKNOWN_CODE), now)?;
        }
        let (c, user) = granted.map_err(|why| Error::refused(Code::InvalidGrant, why))?;
        let claims = IdClaims {
            iss: self.config.public_url(),
            sub: user.subject.clone(),
            aud: client.id.clone(),
            exp: now + lifetime,
            iat: now,
            auth_time: c.auth_time,
            nonce: c.nonce.clone(),
            sid: c.sid.clone(),
            acr: c.acr.clone(),
            amr: c.amr.split(' ').map(str::to_string).collect(),
            azp: client.id.clone(),
            preferred_username: user.username.clone(),
            name: full_name(&user),
            email: self.email_of(&user),
        };
        let id_token = self
            .token_keys
            .sign(client.id_token_alg, &claims)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Tokens {
            access_token: Zeroizing::new(access_token),
            id_token,
            expires_in: lifetime,
            scope: c.scope,
        })
    }

    /// The officer an access token speaks for.
    pub fn userinfo(&self, access_token: &str, now: u64) -> Result<UserInfo, Error> {
        let refused = || Error::refused(Code::Unauthorized, "the access token is not valid");
        let token = self
            .store
            .access_token(&sha256(access_token.as_bytes()))?
            .filter(|t| !t.revoked && t.expires_at > now)
            .ok_or_else(refused)?;
        let user = self
            .store
            .user_by_id(token.user_id)?
            .filter(|u| !u.disabled)
            .ok_or_else(refused)?;
        Ok(UserInfo {
            sub: user.subject.clone(),
            preferred_username: user.username.clone(),
            name: full_name(&user),
            email: self.email_of(&user),
        })
    }

    /// The officer's address: `username@email_domain`.
    fn email_of(&self, user: &UserRow) -> String {
        format!("{}@{}", user.username, self.config.email_domain)
    }
}

fn full_name(user: &UserRow) -> String {
    format!("{} {}", user.first_name, user.last_name)
}

//! Single sign-on: the applications (OpenID Connect clients) registered
//! here, authorization requests waiting for a sign-in, authorization codes,
//! access tokens, and which applications each browser session signed in
//! to (for logout). Codes and tokens are stored as SHA-256 hashes only.

use super::db::{args, Row};
use super::{Store, StoreError, Write};

mod schema;
pub(super) use schema::{API_CHALLENGES, SCHEMA};

/// An application registered with the command line (those in the
/// configuration file are not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// The `client_id`.
    pub id: String,
    /// The name officers see ("LETS").
    pub name: String,
    /// SHA-256 of the secret; `None` for a public client (PKCE only).
    pub secret_hash: Option<Vec<u8>>,
    /// Where codes may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where a logout may return, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are posted; empty: none.
    pub backchannel_logout_uri: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub id_token_alg: String,
    /// Sessions must have proven a second factor.
    pub require_mfa: bool,
    /// The longest age of a sign-in the application accepts, in seconds.
    pub max_age: Option<u64>,
    /// Registered.
    pub created_at: u64,
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     backchannel_logout_uri, id_token_alg, require_mfa, max_age, created_at";

fn lines(s: String) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

fn client(r: &Row<'_>) -> Result<ClientRow, StoreError> {
    Ok(ClientRow {
        id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        redirect_uris: lines(r.get(3)?),
        post_logout_redirect_uris: lines(r.get(4)?),
        backchannel_logout_uri: r.get(5)?,
        id_token_alg: r.get(6)?,
        require_mfa: r.get(7)?,
        max_age: r.get(8)?,
        created_at: r.get(9)?,
    })
}

/// An authorization code as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The application it was issued to.
    pub client_id: String,
    /// The officer.
    pub user_id: i64,
    /// The browser session's public id.
    pub sid: String,
    /// The `redirect_uri` of the request (the token request must repeat it).
    pub redirect_uri: String,
    /// The request's `nonce` (may be empty).
    pub nonce: String,
    /// The PKCE S256 challenge (empty: none was sent).
    pub code_challenge: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// When the officer last gave the password.
    pub auth_time: u64,
    /// The methods used, space-separated (`amr`).
    pub amr: String,
    /// The assurance reached (`acr`).
    pub acr: String,
    /// Issued.
    pub created_at: u64,
    /// Ends.
    pub expires_at: u64,
}

const CODE_COLUMNS: &str =
    "code_hash, client_id, user_id, sid, redirect_uri, nonce, code_challenge, \
     scope, auth_time, amr, acr, created_at, expires_at";

fn code(r: &Row<'_>) -> Result<CodeRow, StoreError> {
    Ok(CodeRow {
        code_hash: r.get(0)?,
        client_id: r.get(1)?,
        user_id: r.get(2)?,
        sid: r.get(3)?,
        redirect_uri: r.get(4)?,
        nonce: r.get(5)?,
        code_challenge: r.get(6)?,
        scope: r.get(7)?,
        auth_time: r.get(8)?,
        amr: r.get(9)?,
        acr: r.get(10)?,
        created_at: r.get(11)?,
        expires_at: r.get(12)?,
    })
}

/// What taking a code found.
#[derive(Debug)]
pub enum TakenCode {
    /// Unused and live: it is used now.
    Fresh(CodeRow),
    /// Used before (a replay), or expired.
    Spent(CodeRow),
    /// Never issued.
    Unknown,
}

/// An access token as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The application.
    pub client_id: String,
    /// The officer.
    pub user_id: i64,
    /// The browser session's public id.
    pub sid: String,
    /// The scopes granted.
    pub scope: String,
    /// Ends.
    pub expires_at: u64,
    /// Revoked (a replayed code, a logout).
    pub revoked: bool,
}

/// An authorization request waiting for the browser to sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingRequest {
    /// The application.
    pub client_id: String,
    /// The request's query string, as received.
    pub query: String,
    /// Received.
    pub created_at: u64,
}

impl Store {
    /// A registered application.
    pub fn client(&self, id: &str) -> Result<Option<ClientRow>, StoreError> {
        self.read(|db| {
            db.opt(
                &format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE id = ?1"),
                args![id],
                client,
            )
        })
    }

    /// Every registered application, by id.
    pub fn clients(&self) -> Result<Vec<ClientRow>, StoreError> {
        self.read(|db| {
            db.all(
                &format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients ORDER BY id"),
                args![],
                client,
            )
        })
    }

    /// A live authorization request.
    pub fn waiting_request(
        &self,
        id: &str,
        now: u64,
    ) -> Result<Option<WaitingRequest>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT client_id, query, created_at FROM oidc_requests WHERE id = ?1 AND expires_at > ?2",
                args![id, now],
                |r| {
                    Ok(WaitingRequest {
                        client_id: r.get(0)?,
                        query: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
        })
    }

    /// An access token by hash.
    pub fn access_token(&self, hash: &[u8]) -> Result<Option<TokenRow>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT client_id, user_id, sid, scope, expires_at, revoked FROM oidc_tokens WHERE token_hash = ?1",
                args![hash],
                |r| {
                    Ok(TokenRow {
                        client_id: r.get(0)?,
                        user_id: r.get(1)?,
                        sid: r.get(2)?,
                        scope: r.get(3)?,
                        expires_at: r.get(4)?,
                        revoked: r.get(5)?,
                    })
                },
            )
        })
    }

    /// The application that asked for push `challenge_id` through the
    /// direct MFA API, if one did.
    pub fn api_challenge_client(&self, challenge_id: &str) -> Result<Option<String>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT client_id FROM api_challenges WHERE challenge_id = ?1",
                args![challenge_id],
                |r| r.get(0),
            )
        })
    }

    /// The applications browser session `sid` signed in to.
    pub fn signins_of(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        self.read(|db| {
            db.all(
                "SELECT client_id FROM oidc_signins WHERE sid = ?1 ORDER BY at",
                args![sid],
                |r| r.get(0),
            )
        })
    }
}

impl Write<'_> {
    /// Registers an application; `false` if the id is taken.
    pub fn insert_client(&self, c: &ClientRow) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            &format!("INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING"),
            args![
                c.id,
                c.name,
                c.secret_hash,
                c.redirect_uris.join("\n"),
                c.post_logout_redirect_uris.join("\n"),
                c.backchannel_logout_uri,
                c.id_token_alg,
                c.require_mfa,
                c.max_age,
                c.created_at
            ],
        )? == 1)
    }

    /// Records that `client_id` asked for push `challenge_id` (rows older
    /// than a day go: their challenges have long expired).
    pub fn insert_api_challenge(
        &self,
        challenge_id: &str,
        client_id: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.exec(
            "DELETE FROM api_challenges WHERE created_at < ?1 - 86400",
            args![now],
        )?;
        db.exec(
            "INSERT INTO api_challenges (challenge_id, client_id, created_at) VALUES (?1, ?2, ?3)",
            args![challenge_id, client_id, now],
        )?;
        Ok(())
    }

    /// Removes an application and revokes its tokens; `false` if unknown.
    pub fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let db = self.db();
        db.exec(
            "UPDATE oidc_tokens SET revoked = 1 WHERE client_id = ?1",
            args![id],
        )?;
        db.exec("DELETE FROM oidc_codes WHERE client_id = ?1", args![id])?;
        Ok(db.exec("DELETE FROM oidc_clients WHERE id = ?1", args![id])? == 1)
    }

    /// Replaces an application's secret hash; `false` if unknown.
    pub fn set_client_secret(&self, id: &str, hash: &[u8]) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "UPDATE oidc_clients SET secret_hash = ?2 WHERE id = ?1",
            args![id, hash],
        )? == 1)
    }

    /// Keeps an authorization request while the browser signs in.
    pub fn insert_waiting_request(
        &self,
        id: &str,
        r: &WaitingRequest,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let db = self.db();
        db.exec(
            "DELETE FROM oidc_requests WHERE expires_at <= ?1",
            args![r.created_at],
        )?;
        db.exec(
            "INSERT INTO oidc_requests (id, client_id, query, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![id, r.client_id, r.query, r.created_at, expires_at],
        )?;
        Ok(())
    }

    /// Ends a waiting request (answered).
    pub fn delete_waiting_request(&self, id: &str) -> Result<(), StoreError> {
        self.db()
            .exec("DELETE FROM oidc_requests WHERE id = ?1", args![id])?;
        Ok(())
    }

    /// Stores a new code, and that its session signed in to the client.
    pub fn insert_code(&self, c: &CodeRow) -> Result<(), StoreError> {
        let db = self.db();
        // Spent codes are kept a day, to recognise a replay.
        db.exec(
            "DELETE FROM oidc_codes WHERE expires_at <= ?1 - 86400",
            args![c.created_at],
        )?;
        db.exec(
            &format!("INSERT INTO oidc_codes ({CODE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
            args![
                c.code_hash,
                c.client_id,
                c.user_id,
                c.sid,
                c.redirect_uri,
                c.nonce,
                c.code_challenge,
                c.scope,
                c.auth_time,
                c.amr,
                c.acr,
                c.created_at,
                c.expires_at
            ],
        )?;
        db.exec(
            "INSERT INTO oidc_signins (sid, client_id, user_id, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (sid, client_id) DO UPDATE SET at = excluded.at",
            args![c.sid, c.client_id, c.user_id, c.created_at],
        )?;
        Ok(())
    }

    /// Uses a code: [`TakenCode::Fresh`] the first time while it lives.
    /// A spent code's tokens are revoked here, in the same transaction.
    pub fn take_code(&self, hash: &[u8], now: u64) -> Result<TakenCode, StoreError> {
        let db = self.db();
        let fresh = db.opt(
            &format!(
                "UPDATE oidc_codes SET used_at = ?2 WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2 \
                 RETURNING {CODE_COLUMNS}"
            ),
            args![hash, now],
            code,
        )?;
        if let Some(row) = fresh {
            return Ok(TakenCode::Fresh(row));
        }
        let spent = db.opt(
            &format!("SELECT {CODE_COLUMNS} FROM oidc_codes WHERE code_hash = ?1"),
            args![hash],
            code,
        )?;
        Ok(match spent {
            Some(row) => {
                db.exec(
                    "UPDATE oidc_tokens SET revoked = 1 WHERE code_hash = ?1",
                    args![hash],
                )?;
                TakenCode::Spent(row)
            }
            None => TakenCode::Unknown,
        })
    }

    /// Stores an access token issued for a code.
    pub fn insert_access_token(
        &self,
        token_hash: &[u8],
        code_hash: &[u8],
        t: &TokenRow,
    ) -> Result<(), StoreError> {
        self.db().exec(
            "INSERT INTO oidc_tokens (token_hash, code_hash, client_id, user_id, sid, scope, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![token_hash, code_hash, t.client_id, t.user_id, t.sid, t.scope, t.expires_at],
        )?;
        Ok(())
    }

    /// Ends what browser session `sid` gave applications (its tokens and
    /// its sign-ins); returns the applications it had signed in to.
    pub fn end_signins(&self, sid: &str, now: u64) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        db.exec(
            "UPDATE oidc_tokens SET revoked = 1 WHERE sid = ?1",
            args![sid],
        )?;
        // A code not yet exchanged must not outlive the session either.
        db.exec(
            "DELETE FROM oidc_codes WHERE sid = ?1 AND used_at IS NULL",
            args![sid],
        )?;
        db.exec("DELETE FROM oidc_tokens WHERE expires_at <= ?1", args![now])?;
        db.all(
            "DELETE FROM oidc_signins WHERE sid = ?1 RETURNING client_id",
            args![sid],
            |r| r.get(0),
        )
    }
}

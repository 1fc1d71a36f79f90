//! The single sign-on tables, as migrations.

/// The schema (a migration).
pub(in crate::store) const SCHEMA: &str = r#"
CREATE TABLE oidc_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash BLOB,
    redirect_uris TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '',
    backchannel_logout_uri TEXT NOT NULL DEFAULT '',
    id_token_alg TEXT NOT NULL DEFAULT 'RS256',
    require_mfa INTEGER NOT NULL DEFAULT 1,
    max_age INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE oidc_requests (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE oidc_codes (
    code_hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sid TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope TEXT NOT NULL,
    auth_time INTEGER NOT NULL,
    amr TEXT NOT NULL,
    acr TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE oidc_tokens (
    token_hash BLOB PRIMARY KEY,
    code_hash BLOB NOT NULL,
    client_id TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sid TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX oidc_tokens_code ON oidc_tokens(code_hash);
CREATE INDEX oidc_tokens_sid ON oidc_tokens(sid);
CREATE TABLE oidc_signins (
    sid TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    PRIMARY KEY (sid, client_id)
);
ALTER TABLE web_sessions ADD COLUMN sid TEXT NOT NULL DEFAULT '';
ALTER TABLE web_sessions ADD COLUMN authenticated_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN subject TEXT NOT NULL DEFAULT '';
UPDATE users SET subject = lower(hex(randomblob(16)));
"#;

/// The direct MFA API's pushes: which application asked for each.
pub(in crate::store) const API_CHALLENGES: &str = r#"
CREATE TABLE api_challenges (
    challenge_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"#;

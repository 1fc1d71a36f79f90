//! Single sign-on settings: token lifetimes and the applications
//! (OpenID Connect clients) registered in the file. Applications can also
//! be registered with `countersign-server client add`; both kinds are
//! checked the same way when the server starts.

use serde::Deserialize;

/// `[oidc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// Seconds an authorization code may wait for its exchange.
    pub code_seconds: u64,
    /// Minutes an ID token and an access token are valid.
    pub token_minutes: u64,
    /// Minutes an authorization request may wait for the officer to sign in.
    pub request_minutes: u64,
    /// Applications registered in the file.
    pub clients: Vec<ClientConfig>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            code_seconds: 60,
            token_minutes: 10,
            request_minutes: 15,
            clients: Vec::new(),
        }
    }
}

/// One `[[oidc.clients]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The `client_id`.
    pub id: String,
    /// The name officers see ("LETS").
    pub name: String,
    /// Where codes may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where a logout may return, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// SHA-256 of the client secret, in hex (`countersign-server client
    /// hash-secret` prints it); absent for a public client, which must
    /// use PKCE.
    #[serde(default)]
    pub secret_sha256: Option<String>,
    /// `RS256` (the default), `ES256` or `EdDSA`.
    #[serde(default)]
    pub id_token_alg: Option<String>,
    /// Whether a sign-in must have proven a second factor (default yes).
    #[serde(default = "yes")]
    pub require_mfa: bool,
    /// The longest age of a sign-in the application accepts, in seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Where logout tokens are posted.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
}

fn yes() -> bool {
    true
}

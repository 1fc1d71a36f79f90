//! The authorization request: what an application may ask, checked before
//! the officer sees anything, and what the browser's session must do
//! before a code is issued (sign in, sign in again, prove a second factor).

use url::Url;

use super::{amr, Acr, Client};
use crate::domain::{sha256, Error, Server};
use crate::store::{CodeRow, Factor, NewAudit};

/// An authorization request that passed every check.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The application.
    pub client: Client,
    /// Where the code goes (one of the client's, exactly).
    pub redirect_uri: String,
    /// Returned as given.
    pub state: String,
    /// Put in the ID token as given.
    pub nonce: String,
    /// The scopes asked (`openid` among them).
    pub scope: String,
    /// The PKCE S256 challenge, or empty.
    pub code_challenge: String,
    /// `prompt=login`: the officer must give the password again.
    pub prompt_login: bool,
    /// `prompt=none`: nothing may be shown; an error if anything must be.
    pub prompt_none: bool,
    /// The oldest sign-in accepted, in seconds: the request's `max_age`
    /// or the client's, whichever is smaller.
    pub max_age: Option<u64>,
    /// A second factor is required: the client's rule, or `acr_values`
    /// asking for `mfa`.
    pub require_mfa: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The application or its redirect address is unknown: the officer is
    /// told, and nothing is sent anywhere.
    Page(String),
    /// An error returned to the application at its redirect address.
    Redirect {
        /// Where.
        redirect_uri: String,
        /// The request's `state`.
        state: String,
        /// The OAuth error code.
        error: &'static str,
        /// For the application's developers.
        description: String,
    },
}

/// The browser session as an authorization sees it.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The officer.
    pub user_id: i64,
    /// The session's public id.
    pub sid: String,
    /// When the officer last gave the password (0: not in this session).
    pub authenticated_at: u64,
    /// The second factor proven, if any.
    pub factor: Option<Factor>,
    /// Whether the account has any method to prove.
    pub has_methods: bool,
}

/// What must happen before a code is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing: issue it.
    Issue,
    /// Sign in (again): the password, then a method.
    SignIn,
    /// Prove a registered method.
    Prove,
    /// Register methods (the account has none, and the application needs
    /// a second factor).
    Register,
    /// Nothing may be shown (`prompt=none`): refused.
    Refuse(Refusal),
}

impl AuthRequest {
    /// What the session `who` must still do. `asked_at` is when a request
    /// that waited for a sign-in was received (`None`: it is arriving
    /// now): `prompt=login` needs a password given since.
    pub fn next(&self, who: Option<&SignedIn>, asked_at: Option<u64>, now: u64) -> Next {
        let stale = who.is_none_or(|w| {
            if w.authenticated_at == 0 {
                return true;
            }
            // A password given since the request arrived is as fresh as
            // the request can ask, however long the second step took.
            if asked_at.is_some_and(|at| w.authenticated_at >= at) {
                return false;
            }
            self.prompt_login
                || self
                    .max_age
                    .is_some_and(|max| now.saturating_sub(w.authenticated_at) > max)
        });
        let needs = if stale {
            Next::SignIn
        } else if self.require_mfa && who.is_some_and(|w| Acr::of(w.factor) != Acr::Mfa) {
            if who.is_some_and(|w| w.has_methods) {
                Next::Prove
            } else {
                Next::Register
            }
        } else {
            Next::Issue
        };
        if self.prompt_none && needs != Next::Issue {
            let error = if needs == Next::SignIn {
                "login_required"
            } else {
                "interaction_required"
            };
            return Next::Refuse(self.refusal(error, "the officer must sign in at Countersign"));
        }
        needs
    }

    /// An error for the application.
    pub fn refusal(&self, error: &'static str, description: &str) -> Refusal {
        Refusal::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            error,
            description: description.into(),
        }
    }
}

/// The longest `state` and `nonce` accepted.
const MAX_ECHOED: usize = 512;

impl Server {
    /// Reads and checks an authorization request's query string.
    pub fn authorization_request(
        &self,
        query: &str,
    ) -> Result<Result<AuthRequest, Refusal>, Error> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Ok(Err(Refusal::Page(format!(
                    "The application's request gives '{}' twice.",
                    k.escape_debug()
                ))));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let Some(client_id) = get("client_id") else {
            return Ok(Err(Refusal::Page(
                "The application's request does not say which application it is.".into(),
            )));
        };
        let Some(client) = self.client(client_id)? else {
            return Ok(Err(Refusal::Page(
                "The application that sent you here is not registered with this portal.".into(),
            )));
        };
        let redirect_uri = get("redirect_uri").unwrap_or_default();
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Ok(Err(Refusal::Page(format!(
                "{} asked to return to an address it has not registered. Nothing was sent.",
                client.name
            ))));
        }
        // Too long to send back: refused without echoing it anywhere.
        let echoed = |name| get(name).map_or(0, str::len);
        if echoed("state") > MAX_ECHOED || echoed("nonce") > MAX_ECHOED {
            return Ok(Err(Refusal::Page(
                "The application's request is too long (state and nonce are limited to 512 bytes)."
                    .into(),
            )));
        }
        let mut req = AuthRequest {
            redirect_uri: redirect_uri.to_string(),
            state: get("state").unwrap_or_default().to_string(),
            nonce: get("nonce").unwrap_or_default().to_string(),
            scope: get("scope").unwrap_or_default().to_string(),
            code_challenge: get("code_challenge").unwrap_or_default().to_string(),
            prompt_login: false,
            prompt_none: false,
            max_age: client.max_age,
            require_mfa: client.require_mfa,
            client,
        };
        Ok(check(&mut req, &get).map(|()| req))
    }

    /// Issues a code for `req` to the session `who`; returns the address
    /// that takes it to the application.
    pub fn issue_code(
        &self,
        req: &AuthRequest,
        who: &SignedIn,
        username: &str,
        ip: &str,
        now: u64,
    ) -> Result<String, Error> {
        let code = crate::domain::random_token(&self.rng)?;
        let amr = amr(who.factor).join(" ");
        let row = CodeRow {
            code_hash: sha256(code.as_bytes()).to_vec(),
            client_id: req.client.id.clone(),
            user_id: who.user_id,
            sid: who.sid.clone(),
            redirect_uri: req.redirect_uri.clone(),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            scope: req.scope.clone(),
            auth_time: who.authenticated_at,
            acr: Acr::of(who.factor).as_str().into(),
            amr: amr.clone(),
            created_at: now,
            expires_at: now + self.config.oidc.code_seconds,
        };
        let detail = format!("client={} amr={amr}", req.client.id);
        self.write(now, |w| {
            w.insert_code(&row)?;
            w.audit(&NewAudit::of(username, "oidc.authorize", username, ip).with("ok", &detail))
        })?;
        Ok(redirect_with(
            &req.redirect_uri,
            &[
                ("code", code.as_str()),
                ("state", &req.state),
                ("iss", &self.config.public_url()),
            ],
        ))
    }

    /// Records an authorization that was refused or cancelled: `who` is
    /// the signed-in officer, if any. Anonymous ones are recorded once a
    /// minute per address, since anyone can send them.
    pub fn audit_refused_authorization(
        &self,
        who: &str,
        ip: &str,
        client: &str,
        why: &str,
        now: u64,
    ) -> Result<(), Error> {
        if who.is_empty() && !self.audit_once_a_minute.take("oidc.authorize", ip, now) {
            return Ok(());
        }
        let client: String = client.chars().take(64).collect();
        let why: String = why.chars().take(200).collect();
        let detail = format!("client={client} {why}");
        self.audit(
            NewAudit::of(who, "oidc.authorize", who, ip).with("refused", &detail),
            now,
        )
    }

    /// The address that takes a refusal back to the application.
    pub fn refusal_location(
        &self,
        redirect_uri: &str,
        state: &str,
        error: &str,
        description: &str,
    ) -> String {
        redirect_with(
            redirect_uri,
            &[
                ("error", error),
                ("error_description", description),
                ("state", state),
                ("iss", &self.config.public_url()),
            ],
        )
    }
}

/// `uri` with `pairs` added to its query (an empty value is left out).
pub fn redirect_with(uri: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        // Registered addresses are checked URLs; this cannot happen.
        Err(_) => uri.to_string(),
    }
}

/// Every rule past the client and its redirect address; the request is
/// completed from its `prompt`, `max_age` and `acr_values`.
fn check<'a>(req: &mut AuthRequest, get: &impl Fn(&str) -> Option<&'a str>) -> Result<(), Refusal> {
    let refuse = |req: &AuthRequest, error, description: &str| Err(req.refusal(error, description));
    if get("response_type") != Some("code") {
        return refuse(
            req,
            "unsupported_response_type",
            "only the authorization code flow (response_type=code) is supported",
        );
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return refuse(
            req,
            "invalid_request",
            "only response_mode=query is supported",
        );
    }
    if get("request").is_some() {
        return refuse(
            req,
            "request_not_supported",
            "request objects are not supported",
        );
    }
    if get("request_uri").is_some() {
        return refuse(
            req,
            "request_uri_not_supported",
            "request_uri is not supported",
        );
    }
    if !req.scope.split(' ').any(|s| s == "openid") {
        return refuse(req, "invalid_scope", "the scope must include openid");
    }
    let method = get("code_challenge_method");
    if req.code_challenge.is_empty() {
        if method.is_some() {
            return refuse(
                req,
                "invalid_request",
                "code_challenge_method without code_challenge",
            );
        }
        if req.client.is_public() {
            return refuse(
                req,
                "invalid_request",
                "a public client must use PKCE (S256)",
            );
        }
    } else {
        if method != Some("S256") {
            return refuse(req, "invalid_request", "code_challenge_method must be S256");
        }
        let c = &req.code_challenge;
        if c.len() != 43 || data_encoding::BASE64URL_NOPAD.decode(c.as_bytes()).is_err() {
            return refuse(
                req,
                "invalid_request",
                "code_challenge must be a base64url SHA-256",
            );
        }
    }
    for p in get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
    {
        match p {
            "login" => req.prompt_login = true,
            "none" => req.prompt_none = true,
            "consent" | "select_account" => {}
            _ => return refuse(req, "invalid_request", "unknown prompt value"),
        }
    }
    if req.prompt_none && req.prompt_login {
        return refuse(
            req,
            "invalid_request",
            "prompt=none cannot be combined with others",
        );
    }
    if let Some(max) = get("max_age") {
        let Ok(max) = max.parse::<u64>() else {
            return refuse(
                req,
                "invalid_request",
                "max_age must be a number of seconds",
            );
        };
        req.max_age = Some(req.max_age.map_or(max, |c| c.min(max)));
    }
    if req.max_age == Some(0) {
        req.prompt_login = true;
    }
    if get("acr_values").is_some_and(|a| a.split(' ').any(|v| v == Acr::Mfa.as_str())) {
        req.require_mfa = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The applications that hand their sign-in to Countersign: registered in
//! the configuration file or with `countersign-server client add`, each
//! checked the same way. A secret is shown once and stored as its SHA-256
//! (it is 256 random bits, so a slow hash adds nothing); it is compared in
//! constant time.

use url::Url;
use zeroize::Zeroizing;

use crate::domain::{sha256, Code, Error, Server};
use crate::infra::config::ClientConfig;
use crate::infra::token_keys::TokenAlg;
use crate::store::{ClientRow, NewAudit};

/// An application (OpenID Connect client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// The name officers see ("Sign in to continue to LETS").
    pub name: String,
    /// SHA-256 of the secret; `None`: a public client, which must use PKCE.
    pub secret_hash: Option<[u8; 32]>,
    /// Where codes may be sent, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Where a logout may return, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are posted.
    pub backchannel_logout_uri: Option<String>,
    /// How its ID tokens are signed.
    pub id_token_alg: TokenAlg,
    /// Whether a sign-in must have proven a second factor.
    pub require_mfa: bool,
    /// The longest age of a sign-in it accepts, in seconds.
    pub max_age: Option<u64>,
    /// Registered in the configuration file (the command line cannot
    /// change it).
    pub in_config: bool,
}

/// What `client add` registers.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// The `client_id`: 2–64 of `a-z 0-9 . _ -`.
    pub id: String,
    /// The name officers see.
    pub name: String,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// Where a logout may return.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are posted.
    pub backchannel_logout_uri: Option<String>,
    /// A public client (no secret; PKCE required).
    pub public: bool,
    /// How its ID tokens are signed.
    pub id_token_alg: TokenAlg,
    /// Whether a sign-in must have proven a second factor.
    pub require_mfa: bool,
    /// The longest age of a sign-in it accepts, in seconds.
    pub max_age: Option<u64>,
}

impl Client {
    /// Whether it has no secret (and so must use PKCE).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// An entry of the configuration file, checked.
    pub fn from_config(c: &ClientConfig) -> Result<Self, Error> {
        let secret_hash = match &c.secret_sha256 {
            None => None,
            Some(hex) => Some(
                data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "client '{}': secret_sha256 must be 64 hex digits",
                            c.id
                        ))
                    })?,
            ),
        };
        let alg = match &c.id_token_alg {
            None => TokenAlg::Rs256,
            Some(name) => TokenAlg::parse(name).ok_or_else(|| {
                invalid(format!(
                    "client '{}': id_token_alg must be RS256, ES256 or EdDSA",
                    c.id
                ))
            })?,
        };
        let client = Client {
            id: c.id.clone(),
            name: c.name.clone(),
            secret_hash,
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            id_token_alg: alg,
            require_mfa: c.require_mfa,
            max_age: c.max_age,
            in_config: true,
        };
        client.check()?;
        Ok(client)
    }

    fn from_row(r: ClientRow) -> Self {
        Client {
            secret_hash: r.secret_hash.and_then(|h| <[u8; 32]>::try_from(h).ok()),
            id_token_alg: TokenAlg::parse(&r.id_token_alg).unwrap_or(TokenAlg::Rs256),
            backchannel_logout_uri: Some(r.backchannel_logout_uri).filter(|u| !u.is_empty()),
            id: r.id,
            name: r.name,
            redirect_uris: r.redirect_uris,
            post_logout_redirect_uris: r.post_logout_redirect_uris,
            require_mfa: r.require_mfa,
            max_age: r.max_age,
            in_config: false,
        }
    }

    /// Every rule of a registration: the id's characters, a name, at least
    /// one redirect address, and each address absolute, without fragment
    /// or credentials, and https (http only on loopback).
    pub fn check(&self) -> Result<(), Error> {
        let id_ok = (2..=64).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !id_ok {
            return Err(invalid(format!(
                "client id '{}': use 2–64 of a-z, 0-9, '.', '_' and '-'",
                self.id.escape_debug()
            )));
        }
        let name = self.name.trim();
        if name.is_empty()
            || name.len() > 64
            || countersign_core::text::first_unsafe(name).is_some()
        {
            return Err(invalid(format!(
                "client '{}': the name must be 1–64 printable characters",
                self.id
            )));
        }
        if self.redirect_uris.is_empty() {
            return Err(invalid(format!(
                "client '{}': give at least one redirect URI",
                self.id
            )));
        }
        let uris = self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
            .chain(&self.backchannel_logout_uri);
        for uri in uris {
            check_uri(uri).map_err(|problem| {
                invalid(format!(
                    "client '{}': '{}' {problem}",
                    self.id,
                    uri.escape_debug()
                ))
            })?;
        }
        if self.max_age == Some(0) {
            return Err(invalid(format!(
                "client '{}': max_age must be at least 1 second",
                self.id
            )));
        }
        Ok(())
    }
}

fn invalid(message: String) -> Error {
    Error::invalid("invalid_client_metadata", message)
}

/// Why an address cannot be registered, if it cannot.
fn check_uri(uri: &str) -> Result<(), &'static str> {
    let url = Url::parse(uri).map_err(|_| "is not an absolute URL")?;
    if url.fragment().is_some() {
        return Err("must not have a fragment (#)");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold a user or password");
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must be https (http only on loopback)"),
    }
}

impl Server {
    /// An application by `client_id`: the file's first, then the
    /// registered ones.
    pub fn client(&self, id: &str) -> Result<Option<Client>, Error> {
        if let Some(c) = self.config_clients.iter().find(|c| c.id == id) {
            return Ok(Some(c.clone()));
        }
        Ok(self.store.client(id)?.map(Client::from_row))
    }

    /// Every application, the file's first.
    pub fn clients(&self) -> Result<Vec<Client>, Error> {
        let mut all = self.config_clients.clone();
        for row in self.store.clients()? {
            if !all.iter().any(|c| c.id == row.id) {
                all.push(Client::from_row(row));
            }
        }
        Ok(all)
    }

    /// Registers an application; returns its secret (shown once), or
    /// `None` for a public client.
    pub fn add_client(
        &self,
        new: NewClient,
        actor: &str,
        now: u64,
    ) -> Result<Option<Zeroizing<String>>, Error> {
        let secret = if new.public {
            None
        } else {
            Some(self.new_client_secret()?)
        };
        let client = Client {
            id: new.id,
            name: new.name.trim().to_string(),
            secret_hash: secret.as_ref().map(|s| sha256(s.as_bytes())),
            redirect_uris: new.redirect_uris,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            backchannel_logout_uri: new.backchannel_logout_uri,
            id_token_alg: new.id_token_alg,
            require_mfa: new.require_mfa,
            max_age: new.max_age,
            in_config: false,
        };
        client.check()?;
        let exists = || {
            Error::refused(
                Code::ClientExists,
                format!("an application '{}' is registered already", client.id),
            )
        };
        if self.config_clients.iter().any(|c| c.id == client.id) {
            return Err(exists());
        }
        let row = ClientRow {
            id: client.id.clone(),
            name: client.name.clone(),
            secret_hash: client.secret_hash.map(|h| h.to_vec()),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: client.backchannel_logout_uri.clone().unwrap_or_default(),
            id_token_alg: client.id_token_alg.as_str().into(),
            require_mfa: client.require_mfa,
            max_age: client.max_age,
            created_at: now,
        };
        let added = self.write(now, |w| {
            let added = w.insert_client(&row)?;
            if added {
                w.audit(
                    &NewAudit::of(actor, "client.add", &client.id, "").with("ok", &client.name),
                )?;
            }
            Ok(added)
        })?;
        if !added {
            return Err(exists());
        }
        Ok(secret)
    }

    /// Removes a registered application and revokes its tokens.
    pub fn remove_client(&self, id: &str, actor: &str, now: u64) -> Result<(), Error> {
        self.registered_client(id)?;
        self.write(now, |w| {
            w.delete_client(id)?;
            w.audit(&NewAudit::of(actor, "client.remove", id, "").with("ok", ""))
        })
    }

    /// Gives a registered confidential application a new secret (shown
    /// once); the old one stops working at once.
    pub fn rotate_client_secret(
        &self,
        id: &str,
        actor: &str,
        now: u64,
    ) -> Result<Zeroizing<String>, Error> {
        let client = self.registered_client(id)?;
        if client.is_public() {
            return Err(Error::invalid(
                "invalid_client_metadata",
                format!("'{id}' is a public client: it has no secret"),
            ));
        }
        let secret = self.new_client_secret()?;
        self.write(now, |w| {
            w.set_client_secret(id, &sha256(secret.as_bytes()))?;
            w.audit(&NewAudit::of(actor, "client.rotate_secret", id, "").with("ok", ""))
        })?;
        Ok(secret)
    }

    /// The application presenting `secret` (`None`: a public client's
    /// token request). Unknown id and wrong secret get the same answer.
    /// A failure is recorded (`action` names the endpoint), once a
    /// minute per address: anyone can send them.
    pub fn authenticate_client(
        &self,
        id: &str,
        secret: Option<&str>,
        action: &str,
        ip: &str,
        now: u64,
    ) -> Result<Client, Error> {
        let client = self.client(id)?;
        let ok = match client.as_ref().map(|c| (&c.secret_hash, secret)) {
            Some((None, None)) => true,
            Some((Some(hash), Some(given))) => {
                countersign_core::secret::constant_time_eq(hash, &sha256(given.as_bytes()))
            }
            _ => false,
        };
        match client {
            Some(client) if ok => Ok(client),
            _ => {
                if self.audit_once_a_minute.take(action, ip, now) {
                    let id: String = id.chars().take(64).collect();
                    let detail = format!("client={id} client authentication failed");
                    self.audit(
                        NewAudit::of("", action, "", ip).with("refused", &detail),
                        now,
                    )?;
                }
                Err(Error::refused(
                    Code::InvalidClient,
                    "client authentication failed",
                ))
            }
        }
    }

    /// A registered (not configured) application, for the commands that
    /// change one.
    fn registered_client(&self, id: &str) -> Result<Client, Error> {
        if self.config_clients.iter().any(|c| c.id == id) {
            return Err(Error::invalid(
                "invalid_client_metadata",
                format!("'{id}' is defined in the configuration file: change it there"),
            ));
        }
        self.store
            .client(id)?
            .map(Client::from_row)
            .ok_or_else(|| Error::not_found("application"))
    }

    fn new_client_secret(&self) -> Result<Zeroizing<String>, Error> {
        Ok(countersign_core::random::Draws::new(&self.rng).string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            43,
        )?)
    }
}

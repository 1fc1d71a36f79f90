//! The relying-party side, on the `openidconnect` crate: discovery, the
//! authorization URL with PKCE and a nonce, the code exchange with the
//! ID token's validation, userinfo, and the logout URL.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndSessionUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, TokenResponse,
};

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Countersign, as this application knows it.
pub struct Provider {
    client: Client,
    http: reqwest::Client,
    end_session: Option<EndSessionUrl>,
    url: String,
}

/// A sign-in in progress: what the callback must check.
pub struct Pending {
    /// The `state` sent.
    pub state: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

/// A signed-in officer.
#[derive(Clone)]
pub struct SignedIn {
    /// `preferred_username`.
    pub username: String,
    /// `name`.
    pub name: String,
    /// `email`.
    pub email: String,
    /// `amr`.
    pub amr: Vec<String>,
    /// `acr`.
    pub acr: String,
    /// The ID token's claims, as JSON.
    pub claims: String,
    /// Userinfo's answer, as JSON.
    pub userinfo: String,
    id_token: String,
}

/// 128 random bits, base64url.
pub fn random() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    data_encoding::BASE64URL_NOPAD.encode(&b)
}

/// An HTTP client that trusts the web PKI's roots plus `ca`, and never
/// follows redirects (the library's advice against request forgery).
fn http_client(ca: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading {}", ca.display()))?
        {
            roots.add(cert.context("a certificate")?)?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

impl Provider {
    /// Discovers the provider at `issuer`.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        secret: &str,
        url: &str,
        ca: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let http = http_client(ca)?;
        let metadata =
            ProviderMetadataWithLogout::discover_async(IssuerUrl::new(issuer.into())?, &http)
                .await?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.into()),
            Some(ClientSecret::new(secret.into())),
        )
        .set_redirect_uri(RedirectUrl::new(format!("{url}/callback"))?);
        Ok(Provider {
            client,
            http,
            end_session,
            url: url.to_string(),
        })
    }

    /// The address that starts a sign-in, and what its callback checks.
    pub fn start(&self) -> (url::Url, Pending) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        (
            url,
            Pending {
                state: state.secret().clone(),
                nonce,
                verifier,
            },
        )
    }

    /// Exchanges the code, validates the ID token, reads userinfo.
    pub async fn finish(&self, code: &str, pending: Pending) -> anyhow::Result<SignedIn> {
        let tokens = self
            .client
            .exchange_code(AuthorizationCode::new(code.into()))?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("token request: {e:?}"))?;
        let id_token = tokens.id_token().context("no ID token")?;
        let verifier = self.client.id_token_verifier().set_allowed_algs(vec![
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EdDsa,
        ]);
        let claims = id_token
            .claims(&verifier, &pending.nonce)
            .map_err(|e| anyhow!("the ID token does not verify: {e}"))?;
        let userinfo: CoreUserInfoClaims = self
            .client
            .user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            )?
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("userinfo: {e:?}"))?;
        let text =
            |c: Option<&openidconnect::EndUserName>| c.map(|n| n.to_string()).unwrap_or_default();
        Ok(SignedIn {
            username: claims
                .preferred_username()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            name: text(claims.name().and_then(|n| n.get(None))),
            email: claims.email().map(|e| e.to_string()).unwrap_or_default(),
            amr: claims
                .auth_method_refs()
                .map(|a| a.iter().map(|m| m.to_string()).collect())
                .unwrap_or_default(),
            acr: claims
                .auth_context_ref()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            claims: serde_json::to_string_pretty(claims)?,
            userinfo: serde_json::to_string_pretty(&userinfo)?,
            id_token: id_token.to_string(),
        })
    }

    /// Where to send the browser to sign out at Countersign too.
    pub fn logout_url(&self, s: &SignedIn) -> String {
        let Some(end) = &self.end_session else {
            return "/signed-out".into();
        };
        let hint: Result<openidconnect::core::CoreIdToken, _> = s.id_token.parse();
        let mut req = LogoutRequest::from(end.clone()).set_state(CsrfToken::new_random());
        if let Ok(hint) = hint {
            req = req.set_id_token_hint(&hint);
        }
        if let Ok(back) = PostLogoutRedirectUrl::new(format!("{}/signed-out", self.url)) {
            req = req.set_post_logout_redirect_uri(back);
        }
        req.http_get_url().to_string()
    }
}

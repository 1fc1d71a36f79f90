//! Single sign-on over HTTPS on loopback: an application's authorization
//! request through the sign-in pages, the number answered by a device, the
//! code exchanged for tokens checked against the published keys, single
//! sign-on for a second application, and logout through the sign-out
//! pages. `crates/e2e/tests/sso.rs` drives the same endpoints in chromium
//! through `lets-demo`, a relying party on the `openidconnect` crate.

mod authlib;
mod backchannel;
mod direct;
mod refusals;

use crate::common::{between, TestDevice, TestServer};
use countersign_core::pin::PinnedVerifier;
use countersign_core::protocol::Decision;
use countersign_server::domain::methods::Authority;
use countersign_server::domain::oidc::{IdClaims, NewClient};
use countersign_server::infra::token_keys::TokenAlg;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

/// The officers' password after their first sign-in.
const NEW: &str = "Correct-Horse-9-Battery";
/// Where the applications take their codes (nothing listens there: the
/// tests read the redirect instead of following it).
const LETS_CB: &str = "http://127.0.0.1:9/lets/callback";
const SCRAP_CB: &str = "http://127.0.0.1:9/scrap/callback";
const LETS_BYE: &str = "http://127.0.0.1:9/lets/signed-out";
/// A PKCE verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92Q5KTrE0jtq5lXaYpbX2kYSuZw8";
const CHALLENGE: &str = "5DSN7o6PmcQ54_rLZlge04ib_Y58wML8Fuua1G7d5pk";

/// A server whose address is known before it starts (the issuer must be
/// the address applications reach), with two applications registered.
struct Sso {
    ts: TestServer,
    lets_secret: String,
}

impl Sso {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut NewClient)) -> Self {
        Self::configured(|_| {}, tweak).await
    }

    async fn configured(
        config: impl FnOnce(&mut countersign_server::infra::config::Config),
        tweak: impl FnOnce(&mut NewClient),
    ) -> Self {
        let port = countersign_testkit::free_port();
        let ts = TestServer::start_with(|c| {
            c.listen = format!("127.0.0.1:{port}").parse().unwrap();
            config(c);
        })
        .await;
        let mut lets = client("lets", "LETS", LETS_CB);
        lets.post_logout_redirect_uris = vec![LETS_BYE.into()];
        tweak(&mut lets);
        let lets_secret = ts.server.add_client(lets, "test", 1).unwrap().unwrap();
        let mut scrap = client("scrap", "SCRAP", SCRAP_CB);
        scrap.public = true;
        scrap.id_token_alg = TokenAlg::EdDsa;
        ts.server.add_client(scrap, "test", 1).unwrap();
        Sso {
            ts,
            lets_secret: lets_secret.to_string(),
        }
    }

    /// An officer with the app and the security questions, whose first
    /// password is changed at the first sign-in.
    async fn officer(&self, username: &str) -> (String, TestDevice) {
        let temp = self.ts.add_user(username);
        let device = self.ts.enroll(username).await;
        let answers: Vec<(usize, String)> = (0..5).map(|q| (q, format!("answer {q}"))).collect();
        self.ts
            .server
            .register_answers(username, &answers, Authority::Proven, "", 1)
            .unwrap()
            .unwrap();
        (temp, device)
    }

    fn authorize_url(&self, client: &str, redirect: &str, extra: &str) -> String {
        format!(
            "/oidc/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid%20profile&state=st-1&nonce=n-1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
            urlencode(redirect)
        )
    }

    /// Exchanges `code` at the token endpoint as LETS (Basic).
    async fn lets_token(&self, code: &str, verifier: &str) -> (u16, Value) {
        let r = self
            .ts
            .http
            .post(format!("{}/oidc/token", self.ts.url))
            .basic_auth("lets", Some(&self.lets_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", LETS_CB),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The ID token's claims, checked against the published keys, the
    /// issuer and the audience.
    async fn verify(&self, id_token: &str, audience: &str) -> IdClaims {
        let set: JwkSet = self
            .ts
            .http
            .get(format!("{}/oidc/jwks", self.ts.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(id_token).unwrap();
        let jwk = set
            .find(header.kid.as_deref().unwrap())
            .expect("a published key");
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.ts.url]);
        v.set_audience(&[audience]);
        jsonwebtoken::decode::<IdClaims>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims
    }

    async fn userinfo(&self, access_token: &str) -> (u16, String) {
        let r = self
            .ts
            .http
            .get(format!("{}/oidc/userinfo", self.ts.url))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn client(id: &str, name: &str, redirect: &str) -> NewClient {
    NewClient {
        id: id.into(),
        name: name.into(),
        redirect_uris: vec![redirect.into()],
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        public: false,
        id_token_alg: TokenAlg::Rs256,
        require_mfa: true,
        max_age: None,
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A browser that follows redirects within the server and stops at the
/// first one that leaves it (to an application).
struct Agent {
    http: reqwest::Client,
    base: String,
}

/// What a request came to: the status, where it ended (path and query, or
/// the application's full address when it left the server), and the page.
struct Visit {
    status: u16,
    at: String,
    page: String,
}

impl Agent {
    fn new(ts: &TestServer) -> Self {
        let base = ts.url.clone();
        let stay = base.clone();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(
                PinnedVerifier::client_config(ts.server.tls_pin.unwrap()).unwrap(),
            )
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::custom(move |a| {
                if a.url().as_str().starts_with(&stay) {
                    a.follow()
                } else {
                    a.stop()
                }
            }))
            .build()
            .unwrap();
        Agent { http, base }
    }

    async fn visit(&self, r: reqwest::RequestBuilder) -> Visit {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let at = match r.headers().get("location") {
            Some(l) if r.status().is_redirection() => l.to_str().unwrap().to_string(),
            _ => {
                let u = r.url();
                format!(
                    "{}{}",
                    u.path(),
                    u.query().map(|q| format!("?{q}")).unwrap_or_default()
                )
            }
        };
        Visit {
            status,
            at,
            page: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Visit {
        self.visit(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// Posts a form as a browser does: with the page's hidden fields (the
    /// CSRF token, where the sign-in returns) and `fields`.
    async fn post(&self, path: &str, page: &str, fields: &[(&str, &str)]) -> Visit {
        let mut form: Vec<(String, String)> = hidden_fields(page);
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.visit(self.http.post(format!("{}{path}", self.base)).form(&form))
            .await
    }

    /// From the email page (`v`) to the push page: email, password (the
    /// first time, the temporary one, then the new one is set).
    async fn password_steps(&self, v: Visit, user: &str, temp: Option<&str>) -> Visit {
        let v = if v.at.starts_with("/signin?") || v.at == "/signin" {
            let v = self.post("/signin", &v.page, &[("email", user)]).await;
            assert_eq!(v.at, "/signin/password", "{}", v.page);
            v
        } else {
            v
        };
        match temp {
            Some(temp) => {
                let v = self
                    .post("/signin/password", &v.page, &[("password", temp)])
                    .await;
                self.post(
                    "/signin/update-password",
                    &v.page,
                    &[("current", temp), ("new", NEW), ("confirm", NEW)],
                )
                .await
            }
            None => {
                self.post("/signin/password", &v.page, &[("password", NEW)])
                    .await
            }
        }
    }

    /// On the push page: the device approves the number shown; then "Stay
    /// signed in?" no. Where that leads.
    async fn approve_and_stay(&self, ts: &TestServer, dev: &TestDevice, push: Visit) -> Visit {
        assert_eq!(push.at, "/signin/mfa", "{}", push.page);
        let id = between(&push.page, "data-id=\"", "\"").to_string();
        let number: u8 = between(&push.page, "aria-live=\"polite\">", "<")
            .trim()
            .parse()
            .unwrap();
        let pending = dev.poll(ts, 5).await;
        let envelope = pending
            .iter()
            .find(|e| e.challenge.id == id)
            .expect("the page's push");
        assert_eq!(
            envelope.challenge.application, "LETS",
            "the prompt names the application"
        );
        dev.answer(ts, &dev.response(&id, Decision::Approve, Some(number)))
            .await;
        let v = self.get("/signin/mfa/done").await;
        assert_eq!(v.at, "/signin/stay", "{}", v.page);
        self.post("/signin/stay", &v.page, &[("stay", "no")]).await
    }
}

/// The hidden inputs of a page, each name once.
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in page.split("type=\"hidden\" name=\"").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        let value = between(part, "value=\"", "\"")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), value));
        }
    }
    out
}

/// The query parameter `name` of an address.
fn param(address: &str, name: &str) -> Option<String> {
    url::Url::parse(address)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_signs_the_officer_in_with_the_number_and_a_second_one_without_asking() {
    let sso = Sso::start().await;
    let ts = &sso.ts;
    let (temp, dev) = sso.officer("cs0701").await;
    let b = Agent::new(ts);

    // LETS sends the browser here; the sign-in pages say where it goes.
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    assert!(v.at.starts_with("/signin?authorize="), "{}", v.at);
    assert!(
        v.page.contains("to continue to <strong>LETS</strong>"),
        "{}",
        v.page
    );
    let push = b.password_steps(v, "cs0701", Some(&temp)).await;
    let back = b.approve_and_stay(ts, &dev, push).await;

    // Back at LETS with a code, its state and this issuer (RFC 9207).
    assert!(back.at.starts_with(LETS_CB), "{}", back.at);
    assert_eq!(param(&back.at, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&back.at, "iss").as_deref(), Some(ts.url.as_str()));
    let code = param(&back.at, "code").unwrap();
    let (status, tokens) = sso.lets_token(&code, VERIFIER).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = sso
        .verify(tokens["id_token"].as_str().unwrap(), "lets")
        .await;
    assert_eq!(claims.nonce, "n-1");
    assert_eq!(claims.acr, "mfa");
    assert_eq!(claims.amr, ["pwd", "swk", "user", "mfa"]);
    assert_eq!(claims.preferred_username, "cs0701");
    let user = ts.server.user("cs0701").unwrap();
    assert_eq!(claims.sub, user.subject);
    assert!(!claims.sid.is_empty());
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let (status, info) = sso.userinfo(&access).await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["sub"], user.subject.as_str());
    assert_eq!(info["email"], "cs0701@alacop.gov");

    // The code once more: refused, and what it gave is revoked.
    let (status, again) = sso.lets_token(&code, VERIFIER).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(sso.userinfo(&access).await.0, 401);

    // SCRAP, in the same browser: no page at all, the same session.
    let v = b.get(&sso.authorize_url("scrap", SCRAP_CB, "")).await;
    assert!(v.at.starts_with(SCRAP_CB), "{}", v.at);
    let code = param(&v.at, "code").unwrap();
    let r = ts
        .http
        .post(format!("{}/oidc/token", ts.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", SCRAP_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "scrap"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(id_token).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    let scrap = sso.verify(id_token, "scrap").await;
    assert_eq!(
        (scrap.sid, scrap.auth_time),
        (claims.sid.clone(), claims.auth_time)
    );

    // prompt=login asks for the password again, then the number; the
    // officer agrees first (a link alone does not reset the session).
    let v = b
        .get(&sso.authorize_url("lets", LETS_CB, "&prompt=login"))
        .await;
    assert!(
        v.page.contains("LETS asks you to sign in again"),
        "{}",
        v.page
    );
    assert_eq!(b.get("/my").await.at, "/my", "still signed in");
    let v = b.post("/oidc/continue", &v.page, &[]).await;
    assert_eq!(v.at, "/signin/password", "{}", v.page);
    assert!(v.page.contains("to continue to <strong>LETS</strong>"));
    let push = b.password_steps(v, "cs0701", None).await;
    let back = b.approve_and_stay(ts, &dev, push).await;
    let code = param(&back.at, "code").expect("a code after signing in again");
    let (_, tokens) = sso.lets_token(&code, VERIFIER).await;
    let fresh = sso
        .verify(tokens["id_token"].as_str().unwrap(), "lets")
        .await;
    assert!(fresh.auth_time >= claims.auth_time);
    assert_eq!(fresh.sid, claims.sid, "the same browser session");

    // LETS logs out: the seed's pages, then the way back to LETS.
    let hint = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let v = b
        .get(&format!(
            "/oidc/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye-1",
            urlencode(LETS_BYE)
        ))
        .await;
    assert!(v.page.contains("Pick an account to sign out"), "{}", v.page);
    let v = b.post("/signout", &v.page, &[]).await;
    assert!(
        v.page.contains("Please wait while we sign you out"),
        "{}",
        v.page
    );
    let v = b
        .get(&between(&v.page, "<a href=\"", "\"").replace("&amp;", "&"))
        .await;
    assert!(
        v.page.contains("You signed out of your account"),
        "{}",
        v.page
    );
    let link = between(&v.page, "log in to the previous application", "</a>");
    assert!(link.contains("LETS"), "{link}");
    let href = between(&v.page, "<p><a href=\"", "\"").replace("&amp;", "&");
    assert_eq!(href, format!("{LETS_BYE}?state=bye-1"));
    assert_eq!(
        sso.userinfo(&access).await.0,
        401,
        "logout revokes the tokens"
    );
    let outcomes: Vec<String> = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("oidc."))
        .map(|e| format!("{} {}", e.action, e.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            "oidc.authorize ok",
            "oidc.token ok",
            "oidc.token refused",
            "oidc.authorize ok",
            "oidc.token ok",
            "oidc.authorize ok",
            "oidc.token ok",
            "oidc.logout ok",
        ]
    );
    assert!(ts.server.store.verify_audit().unwrap().is_ok());
}

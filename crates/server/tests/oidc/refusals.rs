//! What single sign-on refuses: redirect addresses that are not exactly
//! registered, codes replayed, for another application or without their
//! PKCE verifier, wrong client secrets, logout hints that do not verify,
//! and sessions that do not reach what the application requires.

use super::*;

/// Signs `user` in for LETS (first sign-in); the code LETS received.
async fn signed_in_code(sso: &Sso, b: &Agent, user: &str) -> String {
    let (temp, dev) = sso.officer(user).await;
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    let push = b.password_steps(v, user, Some(&temp)).await;
    let back = b.approve_and_stay(&sso.ts, &dev, push).await;
    param(&back.at, "code").expect("a code")
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_exactly_registered_redirect_address_is_used() {
    let sso = Sso::start().await;
    let b = Agent::new(&sso.ts);
    for wrong in [
        "http://127.0.0.1:9/lets/callback/",
        "http://127.0.0.1:9/lets/callbackx",
        "http://127.0.0.1:9/lets/callback/../other",
        "http://127.0.0.1:9/lets/callback?x=1",
        "https://127.0.0.1:9/lets/callback",
        "http://127.0.0.1:9/lets",
        "http://evil.example/lets/callback",
    ] {
        let v = b.get(&sso.authorize_url("lets", wrong, "")).await;
        assert_eq!(v.status, 400, "{wrong}");
        assert!(
            v.at.starts_with("/oidc/authorize"),
            "nothing sent to {wrong}"
        );
        assert!(
            v.page
                .contains("asked to return to an address it has not registered"),
            "{wrong}: {}",
            v.page
        );
    }
    let v = b.get(&sso.authorize_url("nobody", LETS_CB, "")).await;
    assert_eq!(v.status, 400);
    assert!(v.page.contains("is not registered with this portal"));
    // A known client and address: the other errors go back to it.
    let v = b
        .get(
            &sso.authorize_url("lets", LETS_CB, "")
                .replace("response_type=code", "response_type=token"),
        )
        .await;
    assert!(v.at.starts_with(LETS_CB), "{}", v.at);
    assert_eq!(
        param(&v.at, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(param(&v.at, "state").as_deref(), Some("st-1"));
    // A public client without PKCE is refused.
    let no_pkce = sso.authorize_url("scrap", SCRAP_CB, "").replace(
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
        "",
    );
    let v = b.get(&no_pkce).await;
    assert_eq!(
        param(&v.at, "error").as_deref(),
        Some("invalid_request"),
        "{}",
        v.at
    );
    // A state too long to send back is not sent back.
    let long = sso
        .authorize_url("lets", LETS_CB, "")
        .replace("state=st-1", &format!("state={}", "s".repeat(600)));
    let v = b.get(&long).await;
    assert_eq!(v.status, 400);
    assert!(v.at.starts_with("/oidc/authorize"), "nothing sent back");
    // prompt=none without a session: login_required, no page.
    let v = b
        .get(&sso.authorize_url("lets", LETS_CB, "&prompt=none"))
        .await;
    assert_eq!(
        param(&v.at, "error").as_deref(),
        Some("login_required"),
        "{}",
        v.at
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_goes_once_to_its_application_with_its_verifier_and_secret() {
    let sso = Sso::start().await;
    let b = Agent::new(&sso.ts);
    let code = signed_in_code(&sso, &b, "cs0711").await;
    let token = |fields: Vec<(&'static str, String)>, secret: Option<String>| {
        let mut r = sso.ts.http.post(format!("{}/oidc/token", sso.ts.url));
        if let Some(secret) = secret {
            r = r.basic_auth("lets", Some(secret));
        }
        async move {
            let r = r.form(&fields).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["error"].as_str().unwrap_or("").to_string())
        }
    };
    let fields = |code: &str, verifier: &str, redirect: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("code_verifier", verifier.to_string()),
        ]
    };
    let secret = Some(sso.lets_secret.clone());
    // A wrong secret, or none: the client is not authenticated (and the
    // code stays unused).
    let wrong = token(
        fields(&code, VERIFIER, LETS_CB),
        Some("not-the-secret".into()),
    )
    .await;
    assert_eq!(wrong, (401, "invalid_client".into()));
    let mut none = fields(&code, VERIFIER, LETS_CB);
    none.push(("client_id", "lets".into()));
    assert_eq!(token(none, None).await, (401, "invalid_client".into()));
    // Another application's credentials with LETS's code.
    let mut as_scrap = fields(&code, VERIFIER, SCRAP_CB);
    as_scrap.push(("client_id", "scrap".into()));
    assert_eq!(token(as_scrap, None).await, (400, "invalid_grant".into()));
    // Spent by that attempt: even the right request is refused now.
    let right = token(fields(&code, VERIFIER, LETS_CB), secret.clone()).await;
    assert_eq!(right, (400, "invalid_grant".into()));

    // A wrong or missing verifier, or another redirect address, spends a
    // fresh code too.
    for (verifier, redirect) in [
        ("dBjftJeZ4CVP-mJ92Q5KTrE0jtq5lXaYpbX2kYSuZw9", LETS_CB),
        ("", LETS_CB),
        (VERIFIER, SCRAP_CB),
    ] {
        let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
        let code = param(&v.at, "code").expect("single sign-on");
        let mut f = fields(&code, verifier, redirect);
        f.retain(|(k, v)| *k != "code_verifier" || !v.is_empty());
        assert_eq!(
            token(f, secret.clone()).await,
            (400, "invalid_grant".into()),
            "{verifier} {redirect}"
        );
        let again = token(fields(&code, VERIFIER, LETS_CB), secret.clone()).await;
        assert_eq!(again, (400, "invalid_grant".into()));
    }
    let rows: Vec<String> = sso
        .ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "oidc.token")
        .map(|e| e.detail)
        .collect();
    assert!(
        rows.iter()
            .any(|d| d == "code issued to another application"),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|d| d == "code_verifier does not match"),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|d| d == "code_verifier missing"),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|d| d == "client=lets client authentication failed"),
        "a wrong secret is on record: {rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_only_session_does_not_satisfy_an_application_that_requires_mfa() {
    let sso = Sso::start().await;
    let ts = &sso.ts;
    // An officer who skipped setup: signed in on the password alone.
    let temp = ts.add_user("cs0721");
    let b = Agent::new(ts);
    let v = b.get("/signin").await;
    let v = b.password_steps(v, "cs0721", Some(&temp)).await;
    assert_eq!(v.at, "/signin/register/intro", "{}", v.page);
    let v = b.get("/signin/register").await;
    let v = b.post("/signin/register/skip", &v.page, &[]).await;
    let v = b.post("/signin/stay", &v.page, &[("stay", "no")]).await;
    assert_eq!(v.at, "/my");
    // LETS requires a second factor: no code; the officer is sent to set
    // up a method first.
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    assert!(
        v.page.contains("LETS needs a second sign-in method"),
        "{}",
        v.page
    );
    // Cancel: LETS hears that the officer declined, and nothing changed.
    let cancel = between(&v.page, "<a href=\"/oidc/cancel", "\"").replace("&amp;", "&");
    let back = b.get(&format!("/oidc/cancel{cancel}")).await;
    assert!(back.at.starts_with(LETS_CB), "{}", back.at);
    assert_eq!(param(&back.at, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back.at, "state").as_deref(), Some("st-1"));
    assert_eq!(b.get("/my").await.at, "/my", "still signed in");
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    let v = b.post("/oidc/continue", &v.page, &[]).await;
    assert_eq!(v.at, "/signin/register", "{}", v.page);
    // The cancel is on record; no code was issued.
    let rows: Vec<_> = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "oidc.authorize")
        .map(|e| (e.actor, e.outcome, e.detail))
        .collect();
    assert_eq!(
        rows,
        [(
            "cs0721".to_string(),
            "refused".to_string(),
            "client=lets access_denied: the officer cancelled the sign-in".to_string()
        )]
    );
    // The same password-only session, where the application asks for mfa
    // by acr_values under prompt=none: refused, not signed in.
    let b = Agent::new(ts);
    let v = b.get("/signin").await;
    let v = b.password_steps(v, "cs0721", None).await;
    let v = b.post("/signin/stay", &v.page, &[("stay", "no")]).await;
    assert_eq!(v.at, "/my", "{}", v.page);
    let none = sso.authorize_url("scrap", SCRAP_CB, "&prompt=none&acr_values=mfa");
    let v = b.get(&none).await;
    assert!(v.at.starts_with(SCRAP_CB), "{}", v.at);
    assert_eq!(param(&v.at, "code"), None);
    assert_eq!(
        param(&v.at, "error").as_deref(),
        Some("interaction_required")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_sent_many_times_at_once_revokes_what_it_issued() {
    let sso = Sso::start().await;
    let b = Agent::new(&sso.ts);
    let code = signed_in_code(&sso, &b, "cs0741").await;
    let answers =
        futures_util::future::join_all((0..8).map(|_| sso.lets_token(&code, VERIFIER))).await;
    let issued: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(issued.len(), 1, "{answers:?}");
    // However the replays fell, the token the code gave is revoked.
    let access = issued[0]["access_token"].as_str().unwrap();
    assert_eq!(sso.userinfo(access).await.0, 401);

    // client_secret_post: the secret in the form, for a fresh code.
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    let code = param(&v.at, "code").expect("single sign-on");
    let r = sso
        .ts
        .http
        .post(format!("{}/oidc/token", sso.ts.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", LETS_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "lets"),
            ("client_secret", &sso.lets_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    let (status, _) = sso.userinfo(body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_only_session_signs_in_where_the_application_allows_it() {
    let sso = Sso::start_with(|lets| lets.require_mfa = false).await;
    let ts = &sso.ts;
    let temp = ts.add_user("cs0731");
    let b = Agent::new(ts);
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    let v = b.password_steps(v, "cs0731", Some(&temp)).await;
    assert_eq!(v.at, "/signin/register/intro", "{}", v.page);
    let v = b.get("/signin/register").await;
    let v = b.post("/signin/register/skip", &v.page, &[]).await;
    let back = b.post("/signin/stay", &v.page, &[("stay", "no")]).await;
    let code = param(&back.at, "code").expect("a code");
    let (_, tokens) = sso.lets_token(&code, VERIFIER).await;
    let claims = sso
        .verify(tokens["id_token"].as_str().unwrap(), "lets")
        .await;
    assert_eq!(claims.acr, "pwd");
    assert_eq!(claims.amr, ["pwd"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_hint_that_does_not_verify_returns_nowhere() {
    let sso = Sso::start().await;
    let b = Agent::new(&sso.ts);
    let code = signed_in_code(&sso, &b, "cs0741").await;
    let (_, tokens) = sso.lets_token(&code, VERIFIER).await;
    let hint = tokens["id_token"].as_str().unwrap().to_string();
    let logout = |hint: &str| {
        format!(
            "/oidc/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=s",
            urlencode(LETS_BYE)
        )
    };
    // A changed signature, and an unregistered return address.
    let forged = format!("{}x", &hint[..hint.len() - 1]);
    let v = b.get(&logout(&forged)).await;
    assert!(v.at.contains("unverified=1"), "{}", v.at);
    assert!(v.page.contains("could not be verified"));
    let other = format!(
        "/oidc/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
        urlencode("http://127.0.0.1:9/elsewhere")
    );
    assert!(b.get(&other).await.at.contains("unverified=1"));
    // An expired hint for a session that is no longer this browser's.
    let stranger = Agent::new(&sso.ts);
    let expired = expired_hint(&sso, &hint);
    let v = stranger.get(&logout(&expired)).await;
    assert!(v.at.contains("unverified=1"), "{}", v.at);
    // The same expired hint from the browser whose session it names is
    // accepted (OpenID Connect RP-Initiated Logout §2).
    let v = b.get(&logout(&expired)).await;
    assert!(v.at.contains("then="), "{}", v.at);
    assert_eq!(refusals(&sso, "oidc.logout").len(), 3);
}

/// The audit rows of `action` refused.
fn refusals(sso: &Sso, action: &str) -> Vec<countersign_server::store::AuditEntry> {
    let all = sso.ts.server.store.audit_entries(&Default::default());
    let all = all.unwrap().into_iter();
    all.filter(|e| e.action == action && e.outcome == "refused")
        .collect()
}

/// `hint`'s claims, expired, signed with the server's current key.
fn expired_hint(sso: &Sso, hint: &str) -> String {
    let mut v = Validation::new(jsonwebtoken::decode_header(hint).unwrap().alg);
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.validate_aud = false;
    let mut claims = jsonwebtoken::decode::<IdClaims>(hint, &DecodingKey::from_secret(b""), &v)
        .unwrap()
        .claims;
    claims.exp = 1_000;
    claims.iat = 900;
    sso.ts
        .server
        .token_keys
        .sign(TokenAlg::Rs256, &claims)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_pages_at_registered_addresses_may_read_the_endpoints_from_javascript() {
    let sso = Sso::start().await;
    let ts = &sso.ts;
    let ask = |method: reqwest::Method, path: &str, origin: &str| {
        ts.http
            .request(method, format!("{}{path}", ts.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    // SCRAP's pages (http://127.0.0.1:9) may; another site may not.
    let r = ask(
        reqwest::Method::OPTIONS,
        "/oidc/token",
        "http://127.0.0.1:9",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://127.0.0.1:9"
    );
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    for path in ["/oidc/token", "/oidc/userinfo", "/oidc/jwks"] {
        let r = ask(reqwest::Method::OPTIONS, path, "https://evil.example")
            .await
            .unwrap();
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    let r = ask(reqwest::Method::GET, "/oidc/jwks", "http://127.0.0.1:9")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://127.0.0.1:9"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_code_and_a_sign_in_older_than_max_age_are_not_accepted() {
    let sso = Sso::configured(|c| c.oidc.code_seconds = 1, |_| {}).await;
    let b = Agent::new(&sso.ts);
    let code = signed_in_code(&sso, &b, "cs0751").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = sso.lets_token(&code, VERIFIER).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The sign-in is now over a second old: an application asking for
    // max_age=1 gets no code, and the officer is asked to sign in again;
    // without max_age, single sign-on goes on.
    let v = b
        .get(&sso.authorize_url("lets", LETS_CB, "&max_age=1"))
        .await;
    assert!(!v.at.starts_with(LETS_CB), "no code: {}", v.at);
    assert!(v.page.contains("asks you to sign in again"), "{}", v.page);
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    assert!(param(&v.at, "code").is_some(), "{}", v.at);
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_codes_are_each_refused_and_audited_once_a_minute_per_address() {
    let sso = Sso::start().await;
    // A public application needs no secret: anyone may send it codes.
    let made_up = |n: usize| {
        sso.ts
            .http
            .post(format!("{}/oidc/token", sso.ts.url))
            .form(&[
                ("grant_type", "authorization_code".to_string()),
                ("code", format!("made-up-code-{n}")),
                ("redirect_uri", SCRAP_CB.to_string()),
                ("code_verifier", VERIFIER.to_string()),
                ("client_id", "scrap".to_string()),
            ])
            .send()
    };
    for n in 0..20 {
        let r = made_up(n).await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    // A failed client authentication from the same address, in the same
    // minute, still gets its own row: the made-up codes did not use it up.
    let guess = sso
        .ts
        .http
        .post(format!("{}/oidc/token", sso.ts.url))
        .basic_auth("lets", Some("a-guessed-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(guess.status().as_u16(), 401);
    let refused = refusals(&sso, "oidc.token");
    let details: Vec<&str> = refused.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "the code is not valid",
            "client=lets client authentication failed"
        ],
        "one row for the codes, not one per code, and the guess's own"
    );
    assert_eq!(refused[0].actor, "scrap");
}

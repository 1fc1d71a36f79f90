//! Back-channel logout: signing out on the sign-out pages posts a logout
//! token to each application the session signed in to that registered a
//! `backchannel_logout_uri`, signed with its key, naming the session.

use super::*;

/// A listener that takes one POST and hands back its body.
async fn one_post() -> (String, tokio::sync::oneshot::Receiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(Some(tx)));
    let app = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(body);
                }
                ""
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/backchannel"), rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_posts_a_signed_logout_token_to_the_application() {
    let (uri, received) = one_post().await;
    let sso = Sso::start_with(|lets| lets.backchannel_logout_uri = Some(uri)).await;
    let ts = &sso.ts;
    let (temp, dev) = sso.officer("cs0771").await;
    let b = Agent::new(ts);
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    let push = b.password_steps(v, "cs0771", Some(&temp)).await;
    let back = b.approve_and_stay(ts, &dev, push).await;
    let code = param(&back.at, "code").unwrap();
    let (_, tokens) = sso.lets_token(&code, VERIFIER).await;
    let id = sso
        .verify(tokens["id_token"].as_str().unwrap(), "lets")
        .await;

    // A code LETS has not exchanged yet, and a link that claims the
    // officer signed out (it does not, and says nothing of the kind).
    let v = b.get(&sso.authorize_url("lets", LETS_CB, "")).await;
    let pending = param(&v.at, "code").expect("single sign-on");
    let v = b
        .get(&format!(
            "/signout/done?client=lets&then={}",
            urlencode(LETS_BYE)
        ))
        .await;
    assert!(v.page.contains("Pick an account to sign out"), "{}", v.page);

    // The officer signs out at Countersign (not through LETS).
    let v = b.get("/signout").await;
    b.post("/signout", &v.page, &[]).await;
    // The code ended with the session.
    let (status, refused) = sso.lets_token(&pending, VERIFIER).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let body = tokio::time::timeout(std::time::Duration::from_secs(10), received)
        .await
        .expect("a logout token within 10 s")
        .unwrap();
    let token = body
        .strip_prefix("logout_token=")
        .expect("a form with logout_token");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let set: JwkSet = ts
        .http
        .get(format!("{}/oidc/jwks", ts.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&ts.url]);
    v.set_audience(&["lets"]);
    let claims: Value = jsonwebtoken::decode(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims;
    assert_eq!(claims["sid"], id.sid.as_str());
    assert_eq!(claims["sub"], id.sub.as_str());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    // Its delivery is audited.
    let mut delivered = false;
    for _ in 0..50 {
        delivered = ts
            .server
            .store
            .audit_entries(&Default::default())
            .unwrap()
            .iter()
            .any(|e| e.action == "oidc.backchannel_logout" && e.outcome == "ok");
        if delivered {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(delivered, "the delivery is audited");
}

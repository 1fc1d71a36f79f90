//! A device written from docs/PROTOCOL.md alone: it parses the enrollment
//! payload, activates, fetches and verifies challenge envelopes, signs
//! receipts and answers, and computes TOTP codes, with nothing of the
//! project's own protocol code (only ring, serde_json and reqwest). If the
//! document and the server part ways, this test fails.
//!
//! Setup (a user and an enrollment payload) uses the server in-process;
//! everything after the payload goes over HTTPS as the document states.

use std::collections::HashMap;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde_json::{json, Value};

use crate::common::TestServer;

const B64: data_encoding::Encoding = data_encoding::BASE64URL_NOPAD;

/// "Canonical signing bytes": `text(s) = u32be(len(s)) || utf8(s)`,
/// `number(n) = u64be(n)`, `len` counting UTF-8 bytes.
#[derive(Default)]
struct Canonical(Vec<u8>);

impl Canonical {
    fn text(mut self, s: &str) -> Self {
        self.0.extend((s.len() as u32).to_be_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn number(mut self, n: u64) -> Self {
        self.0.extend(n.to_be_bytes());
        self
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The enrollment payload's query fields, percent-decoded.
fn payload_fields(uri: &str) -> HashMap<String, String> {
    let url = url::Url::parse(uri).unwrap();
    assert_eq!(
        (url.scheme(), url.host_str()),
        ("countersign", Some("enroll"))
    );
    url.query_pairs().into_owned().collect()
}

/// Sends `req` and reads its JSON answer.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

/// "Signed by the server key over text(\"countersign/v1/challenge\") u64(v)
/// text(id) text(device_id) text(account) text(application) text(ip)
/// text(location) text(kind) u64(created_at) u64(expires_at) u64(sent_at)".
fn envelope_bytes(env: &Value) -> Vec<u8> {
    let c = &env["challenge"];
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let n = |v: &Value| v.as_u64().unwrap();
    Canonical::default()
        .text("countersign/v1/challenge")
        .number(n(&env["v"]))
        .text(&s(&c["id"]))
        .text(&s(&c["device_id"]))
        .text(&s(&c["account"]))
        .text(&s(&c["application"]))
        .text(&s(&c["ip"]))
        .text(&s(&c["location"]))
        .text(&s(&c["kind"]))
        .number(n(&c["created_at"]))
        .number(n(&c["expires_at"]))
        .number(n(&env["sent_at"]))
        .0
}

/// RFC 6238 with the activation's `totp` parameters (HMAC-SHA1).
fn totp(secret_b32: &str, digits: u32, period: u64, at: u64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &key);
    let mac = ring::hmac::sign(&key, &(at / period).to_be_bytes());
    let m = mac.as_ref();
    let off = (m[m.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([m[off] & 0x7f, m[off + 1], m[off + 2], m[off + 3]]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_written_from_the_document_signs_in() {
    let ts = TestServer::start().await;
    ts.add_user("cs0190");
    let uri = ts.enrollment("cs0190").to_uri();

    // The payload (section "Enrollment payload").
    let f = payload_fields(&uri);
    assert_eq!(f["v"], "1");
    // `s` is the configured public URL; this test server chose its port
    // when it started, after the payload's URL was configured, so the
    // device reaches it at the address the test knows.
    let s = url::Url::parse(&f["s"]).unwrap();
    assert_eq!((s.scheme(), s.host_str()), ("https", Some("127.0.0.1")));
    let server = ts.url.clone();
    let server_key = B64.decode(f["k"].as_bytes()).unwrap();
    assert_eq!(server_key.len(), 32);
    assert_eq!(B64.decode(f["p"].as_bytes()).unwrap().len(), 32);
    assert!(f["a"].contains('@'), "a is user@domain: {}", f["a"]);

    // Activation (table "Activation").
    let rng = SystemRandom::new();
    let key = |rng: &SystemRandom| {
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(rng).unwrap().as_ref()).unwrap()
    };
    let (device_key, receipt_key) = (key(&rng), key(&rng));
    let http = &ts.http;
    let activated: Value = http
        .post(format!("{server}/api/v1/devices/activate"))
        .json(&json!({
            "code": f["c"],
            "device_key": B64.encode(device_key.public_key().as_ref()),
            "receipt_key": B64.encode(receipt_key.public_key().as_ref()),
            "device_name": "Conformance",
            "platform": "cli",
            "app_version": "1",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_id = activated["device_id"].as_str().unwrap().to_string();
    let token = activated["channel_token"].as_str().unwrap().to_string();
    assert_eq!(activated["account"], f["a"].as_str());
    assert_eq!(activated["issuer"], f["i"].as_str());
    let totp_params = &activated["totp"];
    assert_eq!(totp_params["algorithm"], "SHA1");

    // A push through the admin API, fetched as JSON (the table's
    // "Otherwise JSON: the pending envelopes").
    let admin = &ts.admin_token;
    let created: Value = http
        .post(format!("{server}/api/v1/admin/push"))
        .bearer_auth(admin)
        // A non-ASCII field: `len` counts UTF-8 bytes.
        .json(&json!({"username": "cs0190", "application": "Conformance", "location": "Montréal"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let number = created["number"].as_u64().unwrap();
    let challenge_id = created["challenge_id"].as_str().unwrap().to_string();
    let envelopes: Value = http
        .get(format!(
            "{server}/api/v1/devices/{device_id}/challenges?wait=5"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let env = &envelopes[0];
    assert!(
        !env.to_string().contains("\"number\""),
        "the number never goes to the device"
    );

    // "Checks on the device".
    assert_eq!(env["v"], 1);
    let signature = B64
        .decode(env["signature"].as_str().unwrap().as_bytes())
        .unwrap();
    UnparsedPublicKey::new(&ED25519, &server_key)
        .verify(&envelope_bytes(env), &signature)
        .expect("the envelope verifies with k over the documented bytes");
    let c = &env["challenge"];
    assert_eq!(c["id"], challenge_id.as_str());
    assert_eq!(c["device_id"], device_id.as_str());
    assert_eq!(c["account"], "cs0190", "the bare username");
    assert_eq!(c["kind"], "test", "a push through the admin API is a test");
    assert!(c["expires_at"].as_u64().unwrap() > unix_now());

    // A receipt, signed with the receipt key: 204 and no body.
    let at = unix_now();
    let receipt_sig = receipt_key.sign(
        &Canonical::default()
            .text("countersign/v1/receipt")
            .number(1)
            .text(&challenge_id)
            .text(&device_id)
            .text("delivered")
            .number(at)
            .0,
    );
    let receipt = http
        .post(format!("{server}/api/v1/challenges/{challenge_id}/receipt"))
        .json(
            &json!({"v": 1, "challenge_id": challenge_id, "device_id": device_id,
            "event": "delivered", "at": at, "signature": B64.encode(receipt_sig.as_ref())}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(receipt.status(), 204);
    assert!(receipt.bytes().await.unwrap().is_empty());

    // The answer (section "Response"): the receipt key cannot answer, the
    // device key can, once.
    let response = |signer: &Ed25519KeyPair| {
        let answered_at = unix_now();
        let sig = signer.sign(
            &Canonical::default()
                .text("countersign/v1/response")
                .number(1)
                .text(&challenge_id)
                .text(&device_id)
                .text("approve")
                .number(number)
                .text("")
                .number(answered_at)
                .0,
        );
        json!({"v": 1, "challenge_id": challenge_id, "device_id": device_id,
            "decision": "approve", "number": number, "reason": "",
            "answered_at": answered_at, "signature": B64.encode(sig.as_ref())})
    };
    let answer = |body: Value| {
        http.post(format!(
            "{server}/api/v1/challenges/{challenge_id}/response"
        ))
        .json(&body)
        .send()
    };
    let refused = answer(response(&receipt_key)).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "bad_signature"
    );
    let ok: Value = answer(response(&device_key))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ok,
        json!({"challenge_id": challenge_id, "status": "approved"})
    );
    let again = answer(response(&device_key)).await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["code"],
        "already_answered"
    );
    let status: Value = json_of(
        http.get(format!("{server}/api/v1/challenges/{challenge_id}"))
            .bearer_auth(admin),
    )
    .await;
    assert_eq!(status["status"], "approved");

    // The TOTP check: the activation's parameters give RFC 6238 codes; a
    // step at or below the last accepted one is refused.
    let code = totp(
        totp_params["secret"].as_str().unwrap(),
        totp_params["digits"].as_u64().unwrap() as u32,
        totp_params["period"].as_u64().unwrap(),
        unix_now(),
    );
    let verify = |code: String| {
        http.post(format!("{server}/api/v1/totp/verify"))
            .bearer_auth(admin)
            .json(&json!({"username": "cs0190", "code": code}))
            .send()
    };
    let first: Value = verify(code.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(first, json!({"accepted": true}));
    let replay: Value = verify(code).await.unwrap().json().await.unwrap();
    assert_eq!(replay, json!({"accepted": false}));

    // Removing the device: 204, then its token no longer opens anything.
    let removed = http
        .delete(format!("{server}/api/v1/devices/{device_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let gone = http
        .get(format!("{server}/api/v1/devices/{device_id}/challenges"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);
}

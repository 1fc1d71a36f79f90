use super::*;
use serde_json::{json, Value};

const ISS: &str = "https://signin.example";
const HOUR: u64 = 3600;

fn claims(sub: &str) -> Value {
    json!({ "iss": ISS, "sub": sub, "aud": "lets", "exp": 2_000_000_000u64 })
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[test]
fn each_algorithm_gets_a_private_key_once_and_signs_verifiably() {
    let dir = tempfile::tempdir().unwrap();
    let path = TokenKeys::file(dir.path());
    let keys = TokenKeys::open(&path, HOUR).unwrap();
    let set = keys.jwks(1000).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(set.keys.len(), 3);
    for alg in TokenAlg::ALL {
        let token = keys.sign(alg, &claims("s1")).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, alg.jose());
        assert!(set.find(&kid(&token)).is_some());
        let back: Value = keys.verify(&token, ISS, 1000).unwrap();
        assert_eq!(back["sub"], "s1");
        // Another issuer's token, or a changed payload, does not verify.
        assert!(keys.verify::<Value>(&token, "https://other", 1000).is_err());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = BASE64URL_NOPAD.encode(claims("s2").to_string().as_bytes());
        parts[1] = &forged;
        assert!(keys.verify::<Value>(&parts.join("."), ISS, 1000).is_err());
    }
    // Opened again: the same keys, not new ones.
    let again = TokenKeys::open(&path, HOUR).unwrap();
    let kids = |s: &JwkSet| -> Vec<String> {
        s.keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap())
            .collect()
    };
    assert_eq!(kids(&again.jwks(2000).unwrap()), kids(&set));
}

#[test]
fn a_rotated_key_stays_published_until_its_tokens_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = TokenKeys::file(dir.path());
    let keys = TokenKeys::open(&path, HOUR).unwrap();
    let old = keys.sign(TokenAlg::Rs256, &claims("s1")).unwrap();
    let rotation = TokenKeys::rotate(&path, HOUR, 2000).unwrap();
    assert_eq!(rotation.current.len(), 3);
    assert_eq!(rotation.still_published.len(), 3);
    // The running server sees the rotation: new tokens carry a new key...
    let new = keys.sign(TokenAlg::Rs256, &claims("s1")).unwrap();
    assert_ne!(kid(&new), kid(&old));
    assert!(rotation.current.contains(&kid(&new)));
    // ...and a token signed before it still verifies, while it may live.
    assert_eq!(keys.jwks(2000).unwrap().keys.len(), 6);
    assert!(keys.verify::<Value>(&old, ISS, 2000).is_ok());
    // Past the longest token lifetime, the old key is no longer published
    // and dropped at the next rotation.
    let later = 2000 + HOUR;
    assert_eq!(keys.jwks(later).unwrap().keys.len(), 3);
    assert!(keys.verify::<Value>(&old, ISS, later).is_err());
    let next = TokenKeys::rotate(&path, HOUR, later).unwrap();
    assert!(next.dropped.contains(&kid(&old)));
    assert_eq!(next.still_published.len(), 3);
}

#[test]
fn a_damaged_key_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = TokenKeys::file(dir.path());
    std::fs::write(&path, b"[{\"kid\": 1}]").unwrap();
    let e = TokenKeys::open(&path, HOUR).err().unwrap().to_string();
    assert!(e.contains("oidc-keys.json"), "{e}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "[{\"kid\": 1}]", "nothing is overwritten");
}

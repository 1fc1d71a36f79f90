use super::*;
use countersign_core::protocol::{Challenge, ChallengeKind};

fn pending(drift: i64) -> Pending {
    let challenge = Challenge {
        id: "c".into(),
        device_id: "d".into(),
        account: "a".into(),
        application: "app".into(),
        ip: String::new(),
        location: String::new(),
        kind: ChallengeKind::SignIn,
        created_at: 0,
        expires_at: 60,
    };
    let key = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    let envelope = ChallengeEnvelope::sign(challenge, 0, &key);
    Pending {
        account_id: "x".into(),
        account: "a".into(),
        envelope,
        drift,
    }
}

/// A vault in `dir` with one push account trusting `server` (and
/// `pin`), whose device key is `device`.
fn vault_with_push(
    dir: &std::path::Path,
    server: &SigningKey,
    device: &SigningKey,
    pin: Option<[u8; 32]>,
) -> (Vault, Account) {
    use countersign_core::vault::{KdfParams, MIN_ITERATIONS};
    let passcode = Passcode::new("246810");
    let mut vault = Vault::create(dir, &passcode, MIN_ITERATIONS, 100).unwrap();
    let kdf: String = vault
        .conn
        .query_row("SELECT kdf FROM vault", [], |r| r.get(0))
        .unwrap();
    let kek = serde_json::from_str::<KdfParams>(&kdf)
        .unwrap()
        .derive(&passcode)
        .unwrap();
    let account = vault
        .add_push(
            &NewPush {
                issuer: "ALEA",
                name: "cs0101@alacop.gov",
                push: PushInfo {
                    server_url: "https://127.0.0.1:1".into(),
                    server_key: server.public_key(),
                    pin,
                    next_pin: None,
                    device_id: "d".into(),
                    damaged: None,
                },
                totp_secret: &countersign_core::SecretBytes::new(vec![1; 20]),
                algorithm: countersign_core::Algorithm::Sha1,
                digits: 6,
                period: 30,
                channel_token: "token",
                signing_key: device,
                receipt_key: device,
            },
            &kek,
            100,
        )
        .unwrap();
    (vault, account)
}

#[test]
fn envelopes_with_a_bad_signature_or_another_addressee_are_dropped_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let server = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    let device = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    let (mut vault, account) = vault_with_push(tmp.path(), &server, &device, None);
    let good = pending(0).envelope.challenge;
    let ok = ChallengeEnvelope::sign(good.clone(), 100, &server);
    assert!(
        accept(&mut vault, &account, ok, 10).is_some(),
        "signed by the server, addressed here, not expired"
    );
    let forged = ChallengeEnvelope::sign(good.clone(), 100, &device);
    assert!(accept(&mut vault, &account, forged, 10).is_none());
    let elsewhere = ChallengeEnvelope::sign(
        Challenge {
            device_id: "other".into(),
            ..good.clone()
        },
        100,
        &server,
    );
    assert!(accept(&mut vault, &account, elsewhere, 10).is_none());
    let late = ChallengeEnvelope::sign(good, 100, &server);
    assert!(accept(&mut vault, &account, late, 61).is_none());
    let results: Vec<String> = vault
        .history()
        .unwrap()
        .into_iter()
        .map(|h| format!("{}: {}", h.decision, h.result))
        .collect();
    assert_eq!(
        results,
        [
            "dropped: expired".to_string(),
            "dropped: addressed to another device".to_string(),
            format!("dropped: {}", super::UNTRUSTED)
        ]
    );
}

#[test]
fn a_damaged_server_key_or_pin_refuses_the_account() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    let (vault, account) = vault_with_push(tmp.path(), &key, &key, Some([7; 32]));
    assert!(client_for(&vault.find(&account.id).unwrap()).is_ok());
    for (column, what) in [("pin", "TLS pin"), ("server_key", "server key")] {
        vault
            .conn
            .execute(
                &format!("UPDATE accounts SET {column} = x'0102' WHERE id = ?1"),
                [&account.id],
            )
            .unwrap();
        let damaged = vault.find(&account.id).unwrap();
        match client_for(&damaged) {
            Err(Error::DamagedAccount { what: w, .. }) => assert_eq!(w, what),
            Err(e) => panic!("{column}: {e}"),
            Ok(_) => panic!("{column}: a damaged account was trusted"),
        }
    }
}

#[test]
fn clock_drift_beyond_fifteen_seconds_warns() {
    assert!(pending(15).drift_warning().is_none());
    assert!(pending(-15).drift_warning().is_none());
    assert!(pending(16).drift_warning().unwrap().contains("16 s behind"));
    assert!(pending(-40)
        .drift_warning()
        .unwrap()
        .contains("40 s ahead of"));
}

#[test]
fn a_rotated_server_key_vouched_by_the_old_one_is_trusted_from_then_on() {
    use countersign_core::key_update::KeyUpdate;
    let rng = ring::rand::SystemRandom::new();
    let tmp = tempfile::tempdir().unwrap();
    let old = SigningKey::generate(&rng).unwrap();
    let new = SigningKey::generate(&rng).unwrap();
    let device = SigningKey::generate(&rng).unwrap();
    let (mut vault, account) = vault_with_push(tmp.path(), &old, &device, None);
    let c = pending(0).envelope.challenge;

    // Signed by the new key, without a voucher: dropped, key unchanged.
    let bare = ChallengeEnvelope::sign(c.clone(), 100, &new);
    assert!(accept(&mut vault, &account, bare.clone(), 10).is_none());
    // With the old key's voucher: accepted, and the new key is stored.
    let mut vouched = bare.clone();
    vouched.key_update = Some(KeyUpdate::sign(&old, new.public_key(), 1000));
    assert!(accept(&mut vault, &account, vouched, 10).is_some());
    let account = vault.find(&account.id).unwrap();
    assert_eq!(
        account.push.as_ref().unwrap().server_key,
        new.public_key(),
        "the vault now trusts the new key"
    );
    // From then on, the new key alone is enough, and the old one is not.
    assert!(accept(&mut vault, &account, bare, 10).is_some());
    let by_old = ChallengeEnvelope::sign(c, 100, &old);
    assert!(accept(&mut vault, &account, by_old, 10).is_none());
}

#[test]
fn an_announced_tls_key_is_trusted_beside_the_old_until_the_server_switches() {
    use countersign_core::key_update::PinUpdate;
    let rng = ring::rand::SystemRandom::new();
    let tmp = tempfile::tempdir().unwrap();
    let server = SigningKey::generate(&rng).unwrap();
    let stranger = SigningKey::generate(&rng).unwrap();
    let device = SigningKey::generate(&rng).unwrap();
    let (mut vault, account) = vault_with_push(tmp.path(), &server, &device, Some([1; 32]));
    let c = pending(0).envelope.challenge;
    let trust = |vault: &mut Vault| {
        let push = vault.find(&account.id).unwrap().push.unwrap();
        (push.pin, push.next_pin)
    };

    // An announcement signed by anyone but the server's key is ignored.
    let mut forged = ChallengeEnvelope::sign(c.clone(), 100, &server);
    forged.pin_update = Some(PinUpdate::sign(&stranger, &[1; 32], &[9; 32], 500));
    assert!(accept(&mut vault, &account, forged, 10).is_some());
    assert_eq!(trust(&mut vault), (Some([1; 32]), None));

    // The server's announcement: both pins are trusted until the switch.
    let mut announced = ChallengeEnvelope::sign(c.clone(), 100, &server);
    announced.pin_update = Some(PinUpdate::sign(&server, &[1; 32], &[2; 32], 500));
    assert!(accept(&mut vault, &account, announced, 10).is_some());
    assert_eq!(trust(&mut vault), (Some([1; 32]), Some(([2; 32], 500))));
    let account = vault.find(&account.id).unwrap();
    assert!(crate::push::client_for(&account).is_ok());

    // An envelope the server sent before the switch changes nothing; the
    // first one sent after it leaves the new pin alone trusted.
    let before = ChallengeEnvelope::sign(c.clone(), 499, &server);
    assert!(accept(&mut vault, &account, before, 10).is_some());
    assert_eq!(trust(&mut vault), (Some([1; 32]), Some(([2; 32], 500))));
    let after = ChallengeEnvelope::sign(c.clone(), 500, &server);
    assert!(accept(&mut vault, &account, after, 10).is_some());
    assert_eq!(trust(&mut vault), (Some([2; 32]), None));
    // The announcement replayed later (by whoever holds the old key)
    // names a pin the device no longer has: nothing changes.
    let mut replayed = ChallengeEnvelope::sign(c, 600, &server);
    replayed.pin_update = Some(PinUpdate::sign(&server, &[1; 32], &[2; 32], 500));
    assert!(accept(&mut vault, &account, replayed, 10).is_some());
    assert_eq!(trust(&mut vault), (Some([2; 32]), None));
}

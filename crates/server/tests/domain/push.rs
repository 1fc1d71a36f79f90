//! Push challenges: a device activated from its QR code, number matching,
//! answers only from the device asked, and each challenge answered once.

use super::{refusal, Domain, IP, T0};
use countersign_core::api::{ActivateRequest, ChallengeStatus};
use countersign_core::protocol::{ChallengeKind, Decision, Response};
use countersign_core::SigningKey;
use countersign_server::domain::methods::Authority;
use countersign_server::domain::push::{Created, Origin};
use countersign_server::domain::Code;
use ring::rand::SystemRandom;

/// An app activated for `username`: its id and key.
pub(super) fn device(d: &Domain, username: &str, name: &str) -> (String, SigningKey) {
    activated(d, username, name, None)
}

/// An app activated for `username`, with `receipts` as its receipt key if
/// given: its id and device key.
fn activated(
    d: &Domain,
    username: &str,
    name: &str,
    receipts: Option<&SigningKey>,
) -> (String, SigningKey) {
    let (enrollment, _) =
        d.s.enrollment(username, "admin", Authority::Proven, T0)
            .unwrap();
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let request = ActivateRequest {
        code: enrollment.code,
        device_key: key.public_key(),
        receipt_key: receipts.map(SigningKey::public_key),
        device_name: name.into(),
        platform: "cli".into(),
        app_version: "test".into(),
    };
    let activated = d.s.activate(&request, IP, T0).unwrap();
    (activated.device_id, key)
}

pub(super) fn sign_in(d: &Domain, username: &str) -> Created {
    let origin = Origin {
        application: "LETS",
        ip: IP,
        location: "",
        kind: ChallengeKind::SignIn,
        actor: username,
    };
    d.s.create_challenge(username, None, &origin, T0 * 1000)
        .unwrap()
}

pub(super) fn answer(
    d: &Domain,
    created: &Created,
    (device_id, key): &(String, SigningKey),
    decision: Decision,
    number: Option<u8>,
) -> Result<ChallengeStatus, countersign_server::Error> {
    let response = Response::sign(
        &created.challenge_id,
        device_id,
        decision,
        number,
        "",
        T0 + 1,
        key,
    )
    .unwrap();
    d.s.respond(&created.challenge_id, &response, IP, (T0 + 1) * 1000)
        .map(|v| v.status)
}

#[test]
fn the_right_number_approves_once() {
    let d = Domain::new();
    d.officer("cs0101");
    let phone = device(&d, "cs0101", "Pat's phone");
    let created = sign_in(&d, "cs0101");
    assert!((10..=99).contains(&created.number));
    let status = answer(
        &d,
        &created,
        &phone,
        Decision::Approve,
        Some(created.number),
    );
    assert_eq!(status.unwrap(), ChallengeStatus::Approved);
    // The same answer again is refused, and the verdict stands.
    let again = answer(&d, &created, &phone, Decision::Deny, None);
    assert_eq!(refusal(again), Code::AlreadyAnswered);
    let (_, status) = d.s.challenge_status(&created.challenge_id, T0 + 2).unwrap();
    assert_eq!(status, ChallengeStatus::Approved);
    assert_eq!(
        d.rows("challenge."),
        [
            "challenge.create ok",
            "challenge.answer approved",
            "challenge.answer refused"
        ]
    );
    d.chain_verifies();
}

#[test]
fn a_wrong_number_is_a_mismatch_not_an_approval() {
    let d = Domain::new();
    d.officer("cs0101");
    let phone = device(&d, "cs0101", "Pat's phone");
    let created = sign_in(&d, "cs0101");
    let wrong = if created.number == 99 {
        10
    } else {
        created.number + 1
    };
    let status = answer(&d, &created, &phone, Decision::Approve, Some(wrong));
    assert_eq!(status.unwrap(), ChallengeStatus::NumberMismatch);
}

#[test]
fn only_the_device_asked_may_answer() {
    let d = Domain::new();
    d.officer("cs0101");
    d.officer("cs0202");
    device(&d, "cs0101", "Pat's phone");
    let other = device(&d, "cs0202", "Sam's phone");
    let created = sign_in(&d, "cs0101");
    let status = answer(
        &d,
        &created,
        &other,
        Decision::Approve,
        Some(created.number),
    );
    assert_eq!(refusal(status), Code::WrongDevice);
    let (_, status) = d.s.challenge_status(&created.challenge_id, T0 + 2).unwrap();
    assert_eq!(status, ChallengeStatus::Pending);
}

#[test]
fn an_officer_without_the_app_gets_no_push() {
    let d = Domain::new();
    d.officer("cs0101");
    let origin = Origin {
        application: "LETS",
        ip: IP,
        location: "",
        kind: ChallengeKind::SignIn,
        actor: "cs0101",
    };
    let created = d.s.create_challenge("cs0101", None, &origin, T0 * 1000);
    assert_eq!(refusal(created), Code::NoDevice);
}

/// An app activated for `username` with a receipt key: its id, device
/// key and receipt key.
fn device_with_receipt_key(d: &Domain, username: &str) -> (String, SigningKey, SigningKey) {
    let receipts = SigningKey::generate(&SystemRandom::new()).unwrap();
    let (id, key) = activated(d, username, "Pat's phone", Some(&receipts));
    (id, key, receipts)
}

#[test]
fn a_challenge_is_read_with_its_device_and_without_it_once_removed() {
    use countersign_core::protocol::{Receipt, ReceiptEvent};
    let d = Domain::new();
    d.officer("cs0101");
    d.officer("cs0202");
    // Beside the device asked: the officer's other device and another
    // officer's. The read must name the one asked, and no other.
    device(&d, "cs0202", "Sam's phone");
    let first = device_with_receipt_key(&d, "cs0101");
    let second = device_with_receipt_key(&d, "cs0101");
    let created = sign_in(&d, "cs0101");
    let id = created.challenge_id.as_str();
    let (row, with) =
        d.s.store
            .challenge_and_device(id)
            .unwrap()
            .expect("the challenge");
    assert_eq!(row.challenge.id, id);
    assert_eq!(row.number, created.number);
    let (device_id, key, receipts) = [first, second]
        .into_iter()
        .find(|(dev, _, _)| *dev == row.challenge.device_id)
        .expect("asked one of the officer's devices");
    let with = with.expect("its device");
    assert_eq!(with.id, device_id);
    assert_eq!(with.public_key, key.public_key().0);
    assert_eq!(with.receipt_key, Some(receipts.public_key().0));
    assert!(d
        .s
        .store
        .challenge_and_device("no-such-id")
        .unwrap()
        .is_none());

    // A receipt counts signed with the receipt key, not the device key.
    let signed = |k: &SigningKey| Receipt::sign(id, &device_id, ReceiptEvent::Delivered, T0 + 1, k);
    assert_eq!(
        refusal(d.s.receipt(id, &signed(&key), (T0 + 1) * 1000)),
        Code::BadSignature
    );
    d.s.receipt(id, &signed(&receipts), (T0 + 1) * 1000)
        .unwrap();

    // Once the device is removed, its answer names a device not found,
    // though the officer's other device is still active.
    let row = d.s.store.device(&device_id).unwrap().unwrap();
    d.s.remove_own_device(&row, T0 + 1).unwrap();
    let (_, without) =
        d.s.store
            .challenge_and_device(id)
            .unwrap()
            .expect("the challenge stays");
    assert!(without.is_none());
    let response = Response::sign(
        id,
        &device_id,
        Decision::Approve,
        Some(created.number),
        "",
        T0 + 1,
        &key,
    )
    .unwrap();
    let refused = d.s.respond(id, &response, IP, (T0 + 1) * 1000).unwrap_err();
    assert_eq!(refused.code(), "not_found");
    assert!(
        refused.to_string().contains("device not found"),
        "{refused}"
    );
    assert_eq!(d.rows("challenge.answer"), ["challenge.answer refused"]);
    let (_, status) = d.s.challenge_status(id, T0 + 2).unwrap();
    assert_eq!(status, ChallengeStatus::Pending);
    d.chain_verifies();
}

/// Pushes made at once, from several threads, get the push limit and no
/// more: the count and the new challenge are one write.
#[test]
fn pushes_made_at_once_get_the_push_limit_and_no_more() {
    let mut config = countersign_server::infra::config::Config::default();
    config.push.max_per_window = 5;
    let d = Domain::with(config);
    d.officer("cs2110");
    device(&d, "cs2110", "phone");
    let origin = Origin {
        application: "LETS",
        ip: IP,
        location: "",
        kind: ChallengeKind::SignIn,
        actor: "cs2110",
    };
    let (created, limited) = super::at_once(8, 4, "push_limited", || {
        d.s.create_challenge("cs2110", None, &origin, T0 * 1000)
    });
    assert_eq!((created, limited), (5, 27));
    // Each push left its audit row, and the chain holds.
    let rows = d.rows("challenge.create");
    let count = |line: &str| rows.iter().filter(|r| *r == line).count();
    assert_eq!(
        (
            count("challenge.create ok"),
            count("challenge.create refused")
        ),
        (5, 27)
    );
    d.chain_verifies();
}

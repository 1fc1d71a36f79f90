//! Codes: the activation code behind the QR code, the app's codes (TOTP)
//! and codes sent to a phone; each works once, for its purpose, a limited
//! number of tries.

use super::{refusal, Domain, IP, T0};
use countersign_core::api::{ActivateRequest, ActivateResponse};
use countersign_core::otp::Otp;
use countersign_core::SigningKey;
use countersign_server::domain::methods::{Authority, Purpose};
use countersign_server::domain::Code;
use countersign_server::infra::telephony::Channel;
use ring::rand::SystemRandom;

/// An activation request for `code` with a new key.
fn request(code: &str) -> ActivateRequest {
    ActivateRequest {
        code: code.into(),
        device_key: SigningKey::generate(&SystemRandom::new())
            .unwrap()
            .public_key(),
        receipt_key: None,
        device_name: "Test phone".into(),
        platform: "cli".into(),
        app_version: "test".into(),
    }
}

/// A new enrollment's activation code.
fn activation_code(d: &Domain, username: &str, now: u64) -> String {
    d.s.enrollment(username, "admin", Authority::Proven, now)
        .unwrap()
        .0
        .code
}

/// The app's codes, as the activated device computes them.
fn app_codes(a: &ActivateResponse) -> Otp {
    a.totp.otp().unwrap()
}

fn devices(d: &Domain, username: &str) -> usize {
    let user = d.s.user(username).unwrap();
    d.s.store.devices_of(user.id).unwrap().len()
}

#[test]
fn an_activation_code_binds_one_device_once_until_it_expires() {
    let d = Domain::new();
    d.officer("cs0101");
    let code = activation_code(&d, "cs0101", T0);
    assert!(d.s.activate(&request(&code), IP, T0).is_ok());
    assert_eq!(
        refusal(d.s.activate(&request(&code), IP, T0)),
        Code::CodeUsed
    );
    // Ten minutes on, a code never used has expired.
    let late = activation_code(&d, "cs0101", T0);
    assert_eq!(
        refusal(d.s.activate(&request(&late), IP, T0 + 600)),
        Code::CodeExpired
    );
    assert_eq!(devices(&d, "cs0101"), 1);
    // A code that is not one of ours at all.
    assert_eq!(
        refusal(d.s.activate(&request("no-dash-here"), IP, T0)),
        Code::InvalidCode
    );
    d.chain_verifies();
}

#[test]
fn wrong_guesses_use_an_activation_code_up() {
    let d = Domain::new();
    d.officer("cs0101");
    let code = activation_code(&d, "cs0101", T0);
    let (id, _) = code.split_once('-').unwrap();
    for i in 0..5 {
        // From several addresses, so the per-address limit is not what
        // stops them.
        let ip = format!("192.0.2.{}", 100 + i);
        let guess = d.s.activate(&request(&format!("{id}-wrong")), &ip, T0);
        assert_eq!(refusal(guess), Code::InvalidCode);
    }
    assert_eq!(
        refusal(d.s.activate(&request(&code), IP, T0)),
        Code::TooManyAttempts,
        "the right code comes too late"
    );
    assert_eq!(devices(&d, "cs0101"), 0);
    assert_eq!(
        d.rows("device.activate"),
        [
            "device.activate refused",
            "device.activate refused",
            "device.activate refused",
            "device.activate refused",
            "device.activate refused",
            "device.activate refused"
        ]
    );
}

#[test]
fn an_app_code_is_used_once_and_no_older_step_of_that_device_after_it() {
    let d = Domain::new();
    d.officer("cs0101");
    let first =
        d.s.activate(&request(&activation_code(&d, "cs0101", T0)), IP, T0)
            .unwrap();
    let second =
        d.s.activate(&request(&activation_code(&d, "cs0101", T0)), IP, T0)
            .unwrap();
    let (a, b) = (app_codes(&first), app_codes(&second));
    let now = T0 + 300;
    assert!(d
        .s
        .verify_totp("cs0101", &a.code(now), "app", IP, now)
        .unwrap());
    assert!(
        !d.s.verify_totp("cs0101", &a.code(now), "app", IP, now)
            .unwrap(),
        "the same code again"
    );
    // That device's code for the step before (still within the clock's
    // skew) is below its last accepted step: a replay.
    let before = now - 30;
    assert!(!d
        .s
        .verify_totp("cs0101", &a.code(before), "app", IP, now)
        .unwrap());
    // Each device keeps its own last step: the other device's code for
    // that step goes, once.
    assert!(d
        .s
        .verify_totp("cs0101", &b.code(before), "app", IP, now)
        .unwrap());
    assert!(!d
        .s
        .verify_totp("cs0101", &b.code(before), "app", IP, now)
        .unwrap());
    assert_eq!(
        d.rows("totp.verify"),
        [
            "totp.verify ok",
            "totp.verify refused",
            "totp.verify refused",
            "totp.verify ok",
            "totp.verify refused"
        ]
    );
    d.chain_verifies();
}

#[test]
fn an_officer_without_the_app_has_no_code_to_check_and_no_failure_counted() {
    let d = Domain::new();
    d.officer("cs0101");
    for _ in 0..10 {
        let r = d.s.verify_totp("cs0101", "123456", "app", IP, T0);
        assert_eq!(refusal(r), Code::NoDevice);
    }
    assert_eq!(d.s.user("cs0101").unwrap().locked_until, 0, "not locked");
}

/// The code in the newest text or call the server sent.
fn sent_code(d: &Domain) -> String {
    countersign_testkit::outbox::newest(&d._dir.path().join("outbox")).1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phone_code_works_once_for_its_purpose_and_wrong_tries_lock_the_account() {
    let d = Domain::new();
    d.officer("cs0101");
    d.s.register_phone("cs0101", "+12025550123", Authority::FirstMethod, IP, T0)
        .unwrap();
    let send = |purpose| {
        d.s.send_phone_code("cs0101", None, Channel::Sms, purpose, IP, T0)
    };
    let id = send(Purpose::SignIn).await.unwrap();
    let code = sent_code(&d);
    // For another purpose, it is not there at all.
    let other =
        d.s.check_phone_code("cs0101", &id, &code, Purpose::Recover, IP, T0);
    assert_eq!(refusal(other), Code::NoCode);
    let right =
        d.s.check_phone_code("cs0101", &id, &code, Purpose::SignIn, IP, T0);
    assert_eq!(right.unwrap().as_deref(), Some("+12025550123"));
    let again =
        d.s.check_phone_code("cs0101", &id, &code, Purpose::SignIn, IP, T0);
    assert_eq!(refusal(again), Code::CodeExpired);

    // Wrong tries count towards the lockout like wrong passwords: the
    // fifth locks the account, and the right code then comes too late.
    let id = send(Purpose::SignIn).await.unwrap();
    let code = sent_code(&d);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..5 {
        let r =
            d.s.check_phone_code("cs0101", &id, wrong, Purpose::SignIn, IP, T0);
        assert_eq!(r.unwrap(), None);
    }
    let late =
        d.s.check_phone_code("cs0101", &id, &code, Purpose::SignIn, IP, T0);
    assert_eq!(refusal(late), Code::AccountLocked);
    d.chain_verifies();
}

/// Codes sent at once, from several threads, get the sending limit and no
/// more: the count and the code's row are one write, made before the send.
#[test]
fn codes_sent_at_once_get_the_sending_limit_and_no_more() {
    let mut config = countersign_server::infra::config::Config::default();
    config.telephony.max_per_window = 5;
    let d = Domain::with(config);
    d.officer("cs0102");
    d.s.register_phone("cs0102", "+12025550124", Authority::FirstMethod, IP, T0)
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (sent, limited) = super::at_once(8, 2, "too_many_codes", || {
        let send =
            d.s.send_phone_code("cs0102", None, Channel::Sms, Purpose::SignIn, IP, T0);
        rt.handle().block_on(send)
    });
    assert_eq!((sent, limited), (5, 11));
    let outbox = d._dir.path().join("outbox");
    let texts = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(texts, 5, "texts in {}", outbox.display());
    let rows = d.rows("method.phone.send");
    let count = |line: &str| rows.iter().filter(|r| *r == line).count();
    assert_eq!(
        (
            count("method.phone.send signin"),
            count("method.phone.send refused")
        ),
        (5, 11),
        "{rows:?}"
    );
    d.chain_verifies();
}

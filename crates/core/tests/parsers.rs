//! Every parser that takes outside input, fed arbitrary input: no panic,
//! and what parses writes back to itself. The stable counterpart of the
//! cargo-fuzz targets in `fuzz/` (which run far longer; figures in
//! docs/SECURITY.md).

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_core::protocol::{ChallengeEnvelope, Receipt, Response};
use countersign_core::{Enrollment, OtpAccount, PublicKey};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn otpauth_uris(s in prop_oneof![
        any::<String>(),
        "otpauth://(totp|hotp|x)/[\\PC]{0,24}\\?((secret|issuer|digits|period|algorithm|counter)=[A-Za-z0-9%=]{0,20}&?){0,6}",
    ]) {
        if let Ok(a) = OtpAccount::parse(&s) {
            prop_assert_eq!(OtpAccount::parse(&a.to_uri()).unwrap(), a);
        }
    }

    #[test]
    fn migration_exports(data in proptest::collection::vec(any::<u8>(), 0..400), text in any::<String>()) {
        let _ = countersign_core::migration::parse(&text);
        let payload = countersign_core::percent_encode(&data_encoding::BASE64.encode(&data));
        let _ = countersign_core::migration::parse(&format!("otpauth-migration://offline?data={payload}"));
    }

    #[test]
    fn enrollment_payloads(s in prop_oneof![
        any::<String>(),
        "countersign://enroll\\?((v|s|c|a|i|k|p)=[A-Za-z0-9%.:/_-]{0,50}&?){0,8}",
    ]) {
        if let Ok(e) = Enrollment::parse(&s) {
            prop_assert_eq!(Enrollment::parse(&e.to_uri()).unwrap().to_uri(), e.to_uri());
        }
    }

    #[test]
    fn protocol_messages(s in prop_oneof![
        any::<String>(),
        "\\{\"(challenge|signature|challenge_id|device_id|decision|number|event|at)\":(\"[A-Za-z0-9+/=_-]{0,90}\"|[0-9]{1,20}|null|\\{\\})(,\"[a-z_]{1,12}\":(\"[^\"]{0,20}\"|[0-9]{1,5}))*\\}",
    ]) {
        let key = PublicKey([7; 32]);
        if let Ok(e) = serde_json::from_str::<ChallengeEnvelope>(&s) {
            let _ = e.verify(&key);
        }
        if let Ok(r) = serde_json::from_str::<Response>(&s) {
            let _ = r.verify(&key);
        }
        if let Ok(r) = serde_json::from_str::<Receipt>(&s) {
            let _ = r.verify(&key);
        }
    }

    #[test]
    fn images_through_the_scanner(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = countersign_core::qr::scan_bytes(&data, &|| false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A real PNG with bytes changed at random: still no panic.
    #[test]
    fn damaged_pngs_through_the_scanner(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut png = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/qr/clean_enroll_url.png"
        ))
        .unwrap();
        for (at, b) in flips {
            let i = at.index(png.len());
            png[i] = b;
        }
        let _ = countersign_core::qr::scan_bytes(&png, &|| false);
    }
}

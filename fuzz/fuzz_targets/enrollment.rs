//! `countersign://enroll?…` payloads from the enrollment QR code: never a
//! panic, and what parses writes back to the same payload.
#![no_main]

use countersign_core::Enrollment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(e) = Enrollment::parse(text) {
        let again = Enrollment::parse(&e.to_uri()).expect("its own URI parses");
        assert_eq!(again.to_uri(), e.to_uri());
    }
});

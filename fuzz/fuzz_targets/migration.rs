//! `otpauth-migration://offline?data=` exports (a protobuf inside
//! base64): never a panic, as text or as the payload a QR code carries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = countersign_core::migration::parse(text);
    }
    let payload = countersign_core::percent_encode(&data_encoding::BASE64.encode(data));
    let _ = countersign_core::migration::parse(&format!("otpauth-migration://offline?data={payload}"));
});

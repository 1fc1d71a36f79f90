//! Images through the QR scanner (PNG or JPEG bytes, as a user picks a
//! file): never a panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = countersign_core::qr::scan_bytes(data, &|| false);
});

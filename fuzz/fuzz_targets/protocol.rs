//! The signed protocol messages as they arrive as JSON: challenge
//! envelopes (on a device), answers and receipts (on the server). Parsing
//! and checking a signature never panic.
#![no_main]

use countersign_core::protocol::{ChallengeEnvelope, Receipt, Response};
use countersign_core::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = PublicKey([7; 32]);
    if let Ok(e) = serde_json::from_slice::<ChallengeEnvelope>(data) {
        let _ = e.verify(&key);
    }
    if let Ok(r) = serde_json::from_slice::<Response>(data) {
        let _ = r.verify(&key);
    }
    if let Ok(r) = serde_json::from_slice::<Receipt>(data) {
        let _ = r.verify(&key);
    }
});

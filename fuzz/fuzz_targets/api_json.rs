//! The device and admin API's JSON bodies: never a panic.
#![no_main]

use countersign_core::api::{ActivateRequest, ActivateResponse, ErrorBody, Verdict};
use countersign_server::http::api::PushRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ActivateRequest>(data);
    let _ = serde_json::from_slice::<ActivateResponse>(data);
    let _ = serde_json::from_slice::<Verdict>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<PushRequest>(data);
});

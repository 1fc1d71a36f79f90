//! What the sign-in pages take from a browser: form bodies (New User
//! Registration's checks), `return_to` links and the pre-session cookie.
//! Never a panic; a link that passes is on the allow-list.
#![no_main]

use std::collections::HashMap;

use countersign_server::http::pages::presession::PreSession;
use countersign_server::http::pages::return_to;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As the page reads a body: the known fields (the last of each name),
    // the others dropped.
    let fields: HashMap<String, String> = form_urlencoded::parse(data).into_owned().collect();
    if let Ok(form) = serde_json::to_value(&fields).and_then(serde_json::from_value) {
        let _ = countersign_server::domain::registration::validate(&form);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let allow = ["https://app.example".to_string()];
    if let Ok(to) = return_to::check(text, &allow) {
        assert!(to.starts_with("https://app.example/"), "{to}");
    }
    if let Ok(cookie) = http::HeaderValue::from_str(text) {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, cookie);
        let _ = PreSession::from_headers(&headers);
    }
});

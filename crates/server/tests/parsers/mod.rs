//! What the server parses from outside, fed arbitrary input: the
//! configuration file, form bodies, `return_to` links, the pre-session
//! cookie and the admin API's JSON. No panic; what passes is sane. The
//! stable counterpart of the cargo-fuzz targets in `fuzz/`.

use countersign_server::http::pages::presession::PreSession;
use countersign_server::http::pages::return_to;
use countersign_server::infra::config::Config;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn configuration_files(s in prop_oneof![
        any::<String>(),
        "(\\[(tls|push|lockout|web|users|connections|telephony|totp|password)\\]\n)?([a-z_]{1,24} = (\"[^\"\n]{0,30}\"|-?[0-9]{1,20}|true|false|\\[\\])\n){0,6}",
    ]) {
        if let Ok(c) = Config::parse(&s) {
            if c.validate().is_ok() {
                prop_assert!(c.connections.per_address >= 1);
                prop_assert!(!c.email_domain.is_empty());
            }
        }
    }

    #[test]
    fn form_bodies(fields in proptest::collection::hash_map(
        prop_oneof![Just("first_name".to_string()), Just("email".to_string()), Just("reason".to_string()), Just("phone".to_string()), any::<String>()],
        any::<String>(),
        0..8,
    )) {
        // As a form reads them: known fields into the form, others dropped.
        let form: countersign_server::domain::registration::RegistrationForm =
            serde_json::from_value(serde_json::to_value(&fields).unwrap()).unwrap();
        if let Ok(r) = countersign_server::domain::registration::validate(&form) {
            prop_assert!(countersign_core::text::first_unsafe(&r.first_name).is_none());
        }
    }

    #[test]
    fn return_to_links(s in prop_oneof![any::<String>(), "https?://[a-z.@:]{0,30}(/[\\PC]{0,20})?"]) {
        let allow = ["https://app.example".to_string()];
        if let Ok(to) = return_to::check(&s, &allow) {
            prop_assert!(to.starts_with("https://app.example/"), "{}", to);
        }
    }

    #[test]
    fn pre_session_cookies(s in "[ -~]{0,200}") {
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(v) = s.parse() {
            headers.insert(axum::http::header::COOKIE, v);
        }
        let _ = PreSession::from_headers(&headers);
    }

    #[test]
    fn admin_api_bodies(s in any::<String>()) {
        let _ = serde_json::from_str::<countersign_server::http::api::PushRequest>(&s);
        let _ = serde_json::from_str::<countersign_core::api::ActivateRequest>(&s);
    }
}

//! The configuration file: TOML parsing and every range check. Never a
//! panic; a configuration that validates has sane values.
#![no_main]

use countersign_server::infra::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text) {
        if c.validate().is_ok() {
            assert!(c.connections.per_address >= 1);
            assert!(!c.email_domain.is_empty());
        }
    }
});

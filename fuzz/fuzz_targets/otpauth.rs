//! `otpauth://` URIs (QR codes, pasted links): never a panic, and what
//! parses writes back to the same account.
#![no_main]

use countersign_core::OtpAccount;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(account) = OtpAccount::parse(text) {
        let again = OtpAccount::parse(&account.to_uri()).expect("its own URI parses");
        assert_eq!(again, account);
    }
});

//! Key files an operator makes and keeps apart from the data folder: the
//! key-encryption key of a PostgreSQL store, a backup key. Each holds 32
//! random bytes in base64 (`openssl rand -base64 32`).

use countersign_core::vault::SealingKey;
use zeroize::Zeroizing;

/// 32 bytes from base64 (standard or URL-safe, padded or not).
pub fn parse_key(text: &str) -> Option<SealingKey> {
    use data_encoding::{BASE64, BASE64URL, BASE64URL_NOPAD, BASE64_NOPAD};
    let text = text.trim();
    let bytes = [BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD]
        .iter()
        .find_map(|e| e.decode(text.as_bytes()).ok())
        .map(Zeroizing::new)?;
    SealingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_32_bytes_of_base64_in_any_common_spelling() {
        let key = [7u8; 32];
        for enc in [data_encoding::BASE64, data_encoding::BASE64URL_NOPAD] {
            let k = parse_key(&format!("{}\n", enc.encode(&key))).unwrap();
            assert_eq!(k.expose(), &key);
        }
        assert!(parse_key("c2hvcnQ=").is_none(), "too short");
        assert!(parse_key("not base64 at all!").is_none());
    }
}

//! Where the server keeps its state: the embedded SQLite file in the data
//! folder (default), or a PostgreSQL database shared by several instances.

use serde::Deserialize;

/// The environment variable that overrides `store.url`.
pub const STORE_URL_ENV: &str = "COUNTERSIGN_STORE_URL";

/// `[store]`.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Empty: SQLite in the data folder. `postgres://user:password@host/db`:
    /// that PostgreSQL database. May carry a password, so it is never
    /// printed (see the `Debug` impl).
    pub url: String,
    /// A file holding the key-encryption key that seals the keys instances
    /// share in a PostgreSQL store (32 random bytes, base64), when
    /// `COUNTERSIGN_KEK` is not set.
    pub kek_file: Option<std::path::PathBuf>,
}

impl StoreConfig {
    /// Whether the state lives in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }

    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("********"));
                }
                u.to_string()
            }
            Err(_) if self.url.is_empty() => "sqlite (data folder)".into(),
            Err(_) => "(unparsable URL)".into(),
        }
    }
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.display_url())
            .field("kek_file", &self.kek_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_in_a_store_url_is_never_shown() {
        let c = StoreConfig {
            url: "postgres://cs:hunter2@db.example/countersign".into(),
            kek_file: None,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            c.display_url(),
            "postgres://cs:********@db.example/countersign"
        );
    }
}

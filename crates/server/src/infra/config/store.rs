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

    /// The URL without its password, for messages. The credentials are
    /// found as the driver finds them (everything before the first '@'),
    /// so a password the URL syntax would read otherwise is hidden too,
    /// and so is a `password` parameter.
    pub fn display_url(&self) -> String {
        const HIDDEN: &str = "********";
        if self.url.is_empty() {
            return "sqlite (data folder)".into();
        }
        let Some((scheme, rest)) = self.url.split_once("://") else {
            return "(unparsable URL)".into();
        };
        let rest = match rest.split_once('@') {
            Some((creds, after)) => match creds.split_once(':') {
                Some((user, _)) => format!("{user}:{HIDDEN}@{after}"),
                None => format!("{creds}@{after}"),
            },
            None => rest.to_string(),
        };
        let Some((base, query)) = rest.split_once('?') else {
            return format!("{scheme}://{rest}");
        };
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => format!("password={HIDDEN}"),
                _ => pair.to_string(),
            })
            .collect();
        format!("{scheme}://{base}?{}", query.join("&"))
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

    #[test]
    fn a_shown_url_hides_every_password_the_driver_would_read() {
        let shown = |url: &str| {
            StoreConfig {
                url: url.into(),
                kek_file: None,
            }
            .display_url()
        };
        assert_eq!(
            shown("postgres://cs:s3cret@db/c?sslmode=disable"),
            "postgres://cs:********@db/c?sslmode=disable"
        );
        // The driver reads the password up to the first '@': "20/x".
        assert_eq!(
            shown("postgres://cs:20/x@db/c"),
            "postgres://cs:********@db/c"
        );
        assert_eq!(
            shown("postgresql:///c?host=/run/postgresql&password=s3cret"),
            "postgresql:///c?host=/run/postgresql&password=********"
        );
        assert_eq!(shown("postgres://cs@db/c"), "postgres://cs@db/c");
        assert_eq!(shown(""), "sqlite (data folder)");
        assert_eq!(shown("not a url s3cret"), "(unparsable URL)");
    }
}

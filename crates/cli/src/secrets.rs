//! Reading the passcode and backup passphrase: from a file, the
//! environment, or the terminal without echo — never from an argument,
//! where other users could read it in the process list.

use std::io::IsTerminal;
use std::path::Path;

use countersign_core::Passcode;

/// Input the user must fix (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn bad(msg: String) -> anyhow::Error {
    BadInput(msg).into()
}

/// Where secrets come from.
pub struct Source<'a> {
    /// `--passcode-file`.
    pub file: Option<&'a Path>,
    /// Environment variable name.
    pub env: &'static str,
    /// What to call it in prompts.
    pub what: &'static str,
}

impl<'a> Source<'a> {
    /// The backup passphrase: `--passphrase-file`, `COUNTERSIGN_PASSPHRASE` or the terminal.
    pub fn passphrase(file: Option<&'a Path>) -> Self {
        Source {
            file,
            env: "COUNTERSIGN_PASSPHRASE",
            what: "backup passphrase",
        }
    }

    /// Reads the secret once.
    pub fn read(&self) -> anyhow::Result<Passcode> {
        if let Some(path) = self.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            return Ok(Passcode::new(text.trim_end_matches(['\r', '\n'])));
        }
        if let Ok(v) = std::env::var(self.env) {
            return Ok(Passcode::new(v));
        }
        if !std::io::stdin().is_terminal() {
            return Err(bad(format!(
                "no {} given: set {} or pass a file, or run in a terminal",
                self.what, self.env
            )));
        }
        Ok(Passcode::new(rpassword::prompt_password(format!(
            "{}: ",
            capitalise(self.what)
        ))?))
    }

    /// Reads a new secret, asking twice on a terminal.
    pub fn read_new(&self) -> anyhow::Result<Passcode> {
        let first = self.read()?;
        if self.file.is_none() && std::env::var(self.env).is_err() {
            let again = Passcode::new(rpassword::prompt_password(format!(
                "{} again: ",
                capitalise(self.what)
            ))?);
            if again.expose() != first.expose() {
                return Err(bad("the two entries differ".into()));
            }
        }
        Ok(first)
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

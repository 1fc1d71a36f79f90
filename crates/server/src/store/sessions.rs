//! Browser sessions of the sign-in pages. Only a hash of the session id is
//! stored, so a copy of the database does not hand out live sessions.

use super::db::{args, Row};
use super::stage::{Stage, StageKind};
use super::{Store, StoreError, Write};

/// A browser's place in the sign-in flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    /// Token every form must carry.
    pub csrf: String,
    /// The account being signed in (empty before the email step).
    pub username: String,
    /// Where the sign-in is, with what that step has shown or sent and
    /// the second factor the session proved.
    pub stage: Stage,
    /// The session's public id (the ID token's `sid`): stable while the
    /// browser stays signed in, whereas `id_hash` changes at each step.
    pub sid: String,
    /// When the officer last gave the password here (0: not yet); the
    /// applications' `auth_time`.
    pub authenticated_at: u64,
    /// Where to go after signing in (already checked against the allow-list).
    pub return_to: String,
    /// "Stay signed in".
    pub persistent: bool,
    /// Created.
    pub created_at: u64,
    /// Ends.
    pub expires_at: u64,
}

/// A second factor a session proved: with which method, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Factor {
    /// The method used.
    pub method: FactorMethod,
    /// When (Unix seconds).
    pub at: u64,
    /// Gained by registering the account's first method in this session
    /// (on the password alone), not by proving a method that was there
    /// before: enough to finish onboarding, not for the help-desk console.
    pub by_registration: bool,
}

/// How a registration-gained factor is stored: `registered:METHOD`.
const REGISTERED: &str = "registered:";

/// The methods that prove a second factor. Registering the account's first
/// method in a session proves that method too (the app by its activation
/// from the QR code the session showed, a phone by its code, the security
/// questions by setting them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorMethod {
    /// The app: a number-matched push, or its activation.
    App,
    /// A code from the app.
    AppCode,
    /// A code sent by text.
    Sms,
    /// A code read by a call.
    Voice,
    /// The security questions.
    Questions,
}

impl FactorMethod {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            FactorMethod::App => "app",
            FactorMethod::AppCode => "app_code",
            FactorMethod::Sms => "sms",
            FactorMethod::Voice => "voice",
            FactorMethod::Questions => "questions",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            FactorMethod::App,
            FactorMethod::AppCode,
            FactorMethod::Sms,
            FactorMethod::Voice,
            FactorMethod::Questions,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// A stored session; `None` for a stage this server does not know (the
/// browser starts again).
fn session(r: &Row<'_>) -> Result<Option<WebSession>, StoreError> {
    let Some(kind) = StageKind::parse(&r.get::<String>(3)?) else {
        return Ok(None);
    };
    let factor_at: u64 = r.get(11)?;
    let column: String = r.get(10)?;
    let (name, by_registration) = match column.strip_prefix(REGISTERED) {
        Some(name) => (name, true),
        None => (column.as_str(), false),
    };
    let factor = FactorMethod::parse(name).map(|method| Factor {
        method,
        at: factor_at,
        by_registration,
    });
    let stage = Stage::from_columns(kind, &r.get::<String>(9)?, &r.get::<String>(4)?, factor);
    Ok(Some(WebSession {
        id_hash: r.get(0)?,
        csrf: r.get(1)?,
        username: r.get(2)?,
        stage,
        return_to: r.get(5)?,
        persistent: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        sid: r.get(12)?,
        authenticated_at: r.get(13)?,
    }))
}

impl Store {
    /// A live session by id hash.
    pub fn session(&self, id_hash: &[u8], now: u64) -> Result<Option<WebSession>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT id_hash, csrf, username, stage, challenge_id, return_to, persistent, created_at, expires_at, pending, factor, factor_at, sid, authenticated_at \
                 FROM web_sessions WHERE id_hash = ?1 AND expires_at > ?2",
                args![id_hash, now],
                session,
            )
            .map(Option::flatten)
        })
    }
}

/// The stored form of a session's factor.
fn factor_column(f: Option<Factor>) -> String {
    f.map_or(String::new(), |f| {
        let registered = if f.by_registration { REGISTERED } else { "" };
        format!("{registered}{}", f.method.as_str())
    })
}

impl Write<'_> {
    /// Stores a new session (under a new id).
    pub fn insert_session(&self, s: &WebSession) -> Result<(), StoreError> {
        let (pending, challenge_id) = s.stage.to_columns();
        self.db().exec(
            "INSERT INTO web_sessions (id_hash, csrf, username, stage, challenge_id, return_to, persistent, created_at, expires_at, pending, factor, factor_at, sid, authenticated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            args![s.id_hash, s.csrf, s.username, s.stage.kind().as_str(), challenge_id, s.return_to, s.persistent, s.created_at, s.expires_at, pending,
                factor_column(s.stage.factor()), s.stage.factor().map_or(0, |f| f.at), s.sid, s.authenticated_at],
        )?;
        Ok(())
    }

    /// Stores a session's new state; `false` if it no longer exists (it
    /// was ended meanwhile, by sign-out or a help-desk fix): an ended
    /// session is never written back.
    pub fn update_session(&self, s: &WebSession) -> Result<bool, StoreError> {
        let (pending, challenge_id) = s.stage.to_columns();
        let n = self.db().exec(
            "UPDATE web_sessions SET csrf = ?2, username = ?3, stage = ?4, challenge_id = ?5, return_to = ?6, persistent = ?7, \
             created_at = ?8, expires_at = ?9, pending = ?10, factor = ?11, factor_at = ?12, sid = ?13, authenticated_at = ?14 WHERE id_hash = ?1",
            args![s.id_hash, s.csrf, s.username, s.stage.kind().as_str(), challenge_id, s.return_to, s.persistent, s.created_at, s.expires_at, pending,
                factor_column(s.stage.factor()), s.stage.factor().map_or(0, |f| f.at), s.sid, s.authenticated_at],
        )?;
        Ok(n == 1)
    }

    /// Ends a session; `false` if it had ended already.
    pub fn delete_session(&self, id_hash: &[u8]) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "DELETE FROM web_sessions WHERE id_hash = ?1",
            args![id_hash],
        )? == 1)
    }

    /// Ends every session of `username` (help-desk fixes, disabling);
    /// returns how many there were.
    /// What those sessions gave applications ends with them: their access
    /// tokens are revoked and their sign-ins forgotten.
    pub fn delete_sessions_of(&self, username: &str) -> Result<usize, StoreError> {
        let db = self.db();
        let of_user = "SELECT sid FROM web_sessions WHERE username = ?1 AND sid <> ''";
        db.exec(
            &format!("UPDATE oidc_tokens SET revoked = 1 WHERE sid IN ({of_user})"),
            args![username],
        )?;
        db.exec(
            &format!("DELETE FROM oidc_signins WHERE sid IN ({of_user})"),
            args![username],
        )?;
        db.exec(
            &format!("DELETE FROM oidc_codes WHERE used_at IS NULL AND sid IN ({of_user})"),
            args![username],
        )?;
        db.exec(
            "DELETE FROM web_sessions WHERE username = ?1",
            args![username],
        )
    }

    /// Ends every session of `username` but the one `keep` (after the
    /// officer changed the password in it).
    /// Their tokens are revoked as with [`Write::delete_sessions_of`].
    pub fn delete_other_sessions(&self, username: &str, keep: &[u8]) -> Result<usize, StoreError> {
        let db = self.db();
        let others =
            "SELECT sid FROM web_sessions WHERE username = ?1 AND id_hash <> ?2 AND sid <> ''";
        db.exec(
            &format!("UPDATE oidc_tokens SET revoked = 1 WHERE sid IN ({others})"),
            args![username, keep],
        )?;
        db.exec(
            &format!("DELETE FROM oidc_signins WHERE sid IN ({others})"),
            args![username, keep],
        )?;
        db.exec(
            &format!("DELETE FROM oidc_codes WHERE used_at IS NULL AND sid IN ({others})"),
            args![username, keep],
        )?;
        db.exec(
            "DELETE FROM web_sessions WHERE username = ?1 AND id_hash <> ?2",
            args![username, keep],
        )
    }

    /// Drops expired sessions.
    /// The applications' sign-ins of those sessions are forgotten with them.
    pub fn purge_sessions(&self, now: u64) -> Result<usize, StoreError> {
        let db = self.db();
        let n = db.exec(
            "DELETE FROM web_sessions WHERE expires_at <= ?1",
            args![now],
        )?;
        db.exec(
            "DELETE FROM oidc_signins WHERE sid NOT IN (SELECT sid FROM web_sessions)",
            args![],
        )?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Proving, Registering};

    fn session_at(stage: Stage) -> WebSession {
        WebSession {
            id_hash: vec![1; 32],
            csrf: "t".into(),
            username: "cs0101".into(),
            stage,
            sid: "s1".into(),
            authenticated_at: 1,
            return_to: String::new(),
            persistent: true,
            created_at: 1,
            expires_at: u64::MAX / 2,
        }
    }

    fn factor(by_registration: bool) -> Factor {
        Factor {
            method: FactorMethod::Sms,
            at: 7,
            by_registration,
        }
    }

    #[test]
    fn each_stage_reads_back_as_written_with_its_step_and_factor() {
        let registering = Registering {
            shown: vec!["Ab12".into(), "Cd34".into()],
            phone_code: Some("AbC-_9".into()),
            test_push: Some("ch1".into()),
        };
        let proving = Proving {
            push: Some("ch2".into()),
            phone_code: Some("x".into()),
            asked: vec![0, 4, 11],
        };
        let mut stages: Vec<Stage> = StageKind::ALL.into_iter().map(StageKind::start).collect();
        stages.extend([
            Stage::Register(registering.clone(), None),
            Stage::Add(registering, Some(factor(true))),
            Stage::Mfa(proving.clone(), Some(factor(false))),
            Stage::Reverify(proving.clone(), Some(factor(false))),
            Stage::Recover(proving),
            Stage::Done(Some(factor(false))),
            Stage::RecoverReset(Some(factor(false))),
        ]);
        let store = crate::store::Store::open_in_memory().unwrap();
        for stage in stages {
            let s = session_at(stage);
            store.write(1, |w| w.insert_session(&s)).unwrap();
            assert_eq!(store.session(&s.id_hash, 2).unwrap(), Some(s.clone()));
            assert!(store.write(1, |w| w.delete_session(&s.id_hash)).unwrap());
        }
    }

    #[test]
    fn an_ended_session_is_never_written_back() {
        let store = crate::store::Store::open_in_memory().unwrap();
        let mut s = session_at(Stage::Done(None));
        store.write(1, |w| w.insert_session(&s)).unwrap();
        // A request holds the session while a help-desk fix ends it...
        let held = store.session(&s.id_hash, 2).unwrap().unwrap();
        assert_eq!(
            store.write(2, |w| w.delete_sessions_of("cs0101")).unwrap(),
            1
        );
        // ...and its save finds nothing to update.
        s.stage = StageKind::Add.start();
        assert!(!store.write(3, |w| w.update_session(&s)).unwrap());
        assert!(store.session(&held.id_hash, 3).unwrap().is_none());
        assert!(!store.write(3, |w| w.delete_session(&held.id_hash)).unwrap());
    }
}

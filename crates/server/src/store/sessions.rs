//! Browser sessions of the sign-in pages. Only a hash of the session id is
//! stored, so a copy of the database does not hand out live sessions.

use rusqlite::{params, Row};

use super::{optional, Store, StoreError, Write};

/// A browser's place in the sign-in flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie value.
    pub id_hash: Vec<u8>,
    /// Token every form must carry.
    pub csrf: String,
    /// The account being signed in (empty before the email step).
    pub username: String,
    /// Where the sign-in is.
    pub stage: Stage,
    /// The step in progress within the stage.
    pub pending: Pending,
    /// The second factor this session proved, if any. Without one, the
    /// session may act for the account only while it has no method.
    pub factor: Option<Factor>,
    /// The push challenge being waited for.
    pub challenge_id: String,
    /// Where to go after signing in (already checked against the allow-list).
    pub return_to: String,
    /// "Stay signed in".
    pub persistent: bool,
    /// Created.
    pub created_at: u64,
    /// Ends.
    pub expires_at: u64,
}

/// Where a browser session is. Each page serves some stages and sends any
/// other to its own page, so no step can be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The email was given; the password is next.
    Password,
    /// A temporary password was accepted; a new one must be set.
    ChangePassword,
    /// The password was accepted and the account has no method (first
    /// sign-in, or after a methods reset): register two.
    Register,
    /// The password was accepted: prove a registered method.
    Mfa,
    /// "Stay signed in?", once signed in.
    Stay,
    /// Signed in.
    Done,
    /// Signed in and adding a method from "My sign-ins".
    Add,
    /// Signed in, proving a method again before changing methods (the
    /// last proof is too old); back to [`Stage::Done`] once proven.
    Reverify,
    /// Recovery: the CAPTCHA was solved; prove a registered method.
    Recover,
    /// Recovery: a method was proved; set a new password.
    RecoverReset,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 10] = [
        Stage::Password,
        Stage::ChangePassword,
        Stage::Register,
        Stage::Mfa,
        Stage::Stay,
        Stage::Done,
        Stage::Add,
        Stage::Reverify,
        Stage::Recover,
        Stage::RecoverReset,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Password => "password",
            Stage::ChangePassword => "change",
            Stage::Register => "register",
            Stage::Mfa => "mfa",
            Stage::Stay => "stay",
            Stage::Done => "done",
            Stage::Add => "add",
            Stage::Reverify => "reverify",
            Stage::Recover => "recover",
            Stage::RecoverReset => "recover_reset",
        }
    }

    /// Reads a stored name; anything else starts again at the email page.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == s)
    }

    /// Whether a session here acts for the account (registers or removes
    /// methods, finishes signing in, is signed in): only with a proven
    /// second factor, or while the account has no method.
    pub fn acts_for_account(self) -> bool {
        matches!(
            self,
            Stage::Register | Stage::Add | Stage::Stay | Stage::Done
        )
    }
}

/// The step in progress within a stage, kept between pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Pending {
    /// Nothing in progress.
    #[default]
    Nothing,
    /// A phone code was sent: its id.
    PhoneCode(String),
    /// These security questions (by number) were asked.
    Questions(Vec<usize>),
    /// The app's QR code was shown: the public ids of the activations
    /// shown in this session, newest last (a reload shows a new one).
    Enrollment(Vec<String>),
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

impl Pending {
    /// The id of the phone code waited for, if that is the step.
    pub fn phone_code(&self) -> Option<&str> {
        match self {
            Pending::PhoneCode(id) => Some(id),
            _ => None,
        }
    }

    /// As stored: `code:ID`, `questions:1,2,3`, `enroll:ID,ID` or empty.
    fn to_column(&self) -> String {
        match self {
            Pending::Nothing => String::new(),
            Pending::PhoneCode(id) => format!("code:{id}"),
            Pending::Questions(asked) => {
                let list: Vec<String> = asked.iter().map(ToString::to_string).collect();
                format!("questions:{}", list.join(","))
            }
            Pending::Enrollment(ids) => format!("enroll:{}", ids.join(",")),
        }
    }

    /// Read back; anything else (a row written by an older version) is
    /// [`Pending::Nothing`]: the step starts again.
    fn from_column(column: &str) -> Self {
        let (kind, value) = column.split_once(':').unwrap_or_default();
        match kind {
            "code" if !value.is_empty() => Pending::PhoneCode(value.to_string()),
            "enroll" if !value.is_empty() => {
                Pending::Enrollment(value.split(',').map(str::to_string).collect())
            }
            "questions" => {
                let asked: Option<Vec<usize>> = value.split(',').map(|q| q.parse().ok()).collect();
                asked.map_or(Pending::Nothing, Pending::Questions)
            }
            _ => Pending::Nothing,
        }
    }
}

/// A stored session; `None` for a stage this server does not know (the
/// browser starts again).
fn session(r: &Row<'_>) -> rusqlite::Result<Option<WebSession>> {
    let Some(stage) = Stage::parse(&r.get::<_, String>(3)?) else {
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
    Ok(Some(WebSession {
        id_hash: r.get(0)?,
        csrf: r.get(1)?,
        username: r.get(2)?,
        stage,
        challenge_id: r.get(4)?,
        return_to: r.get(5)?,
        persistent: r.get(6)?,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        pending: Pending::from_column(&r.get::<_, String>(9)?),
        factor,
    }))
}

impl Store {
    /// A live session by id hash.
    pub fn session(&self, id_hash: &[u8], now: u64) -> Result<Option<WebSession>, StoreError> {
        self.read(|conn| {
            optional(conn.query_row(
                "SELECT id_hash, csrf, username, stage, challenge_id, return_to, persistent, created_at, expires_at, pending, factor, factor_at \
                 FROM web_sessions WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, now],
                session,
            ))
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
        self.conn().execute(
            "INSERT INTO web_sessions (id_hash, csrf, username, stage, challenge_id, return_to, persistent, created_at, expires_at, pending, factor, factor_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![s.id_hash, s.csrf, s.username, s.stage.as_str(), s.challenge_id, s.return_to, s.persistent, s.created_at, s.expires_at, s.pending.to_column(),
                factor_column(s.factor), s.factor.map_or(0, |f| f.at)],
        )?;
        Ok(())
    }

    /// Stores a session's new state; `false` if it no longer exists (it
    /// was ended meanwhile, by sign-out or a help-desk fix): an ended
    /// session is never written back.
    pub fn update_session(&self, s: &WebSession) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE web_sessions SET csrf = ?2, username = ?3, stage = ?4, challenge_id = ?5, return_to = ?6, persistent = ?7, \
             created_at = ?8, expires_at = ?9, pending = ?10, factor = ?11, factor_at = ?12 WHERE id_hash = ?1",
            params![s.id_hash, s.csrf, s.username, s.stage.as_str(), s.challenge_id, s.return_to, s.persistent, s.created_at, s.expires_at, s.pending.to_column(),
                factor_column(s.factor), s.factor.map_or(0, |f| f.at)],
        )?;
        Ok(n == 1)
    }

    /// Ends a session; `false` if it had ended already.
    pub fn delete_session(&self, id_hash: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])?
            == 1)
    }

    /// Ends every session of `username` (help-desk fixes, disabling);
    /// returns how many there were.
    pub fn delete_sessions_of(&self, username: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM web_sessions WHERE username = ?1", [username])?)
    }

    /// Ends every session of `username` but the one `keep` (after the
    /// officer changed the password in it).
    pub fn delete_other_sessions(&self, username: &str, keep: &[u8]) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM web_sessions WHERE username = ?1 AND id_hash <> ?2",
            params![username, keep],
        )?)
    }

    /// Drops expired sessions.
    pub fn purge_sessions(&self, now: u64) -> Result<usize, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM web_sessions WHERE expires_at <= ?1", [now])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_reads_back_as_written() {
        for p in [
            Pending::Nothing,
            Pending::PhoneCode("AbC-_9".into()),
            Pending::Questions(vec![0, 4, 11]),
            Pending::Enrollment(vec!["Ab12".into(), "Cd34".into()]),
        ] {
            assert_eq!(Pending::from_column(&p.to_column()), p);
        }
    }

    #[test]
    fn an_ended_session_is_never_written_back() {
        let store = crate::store::Store::open_in_memory().unwrap();
        let mut s = WebSession {
            id_hash: vec![1; 32],
            csrf: "t".into(),
            username: "cs0101".into(),
            stage: Stage::Done,
            pending: Pending::Nothing,
            factor: None,
            challenge_id: String::new(),
            return_to: String::new(),
            persistent: true,
            created_at: 1,
            expires_at: u64::MAX / 2,
        };
        store.write(1, |w| w.insert_session(&s)).unwrap();
        // A request holds the session while a help-desk fix ends it...
        let held = store.session(&s.id_hash, 2).unwrap().unwrap();
        assert_eq!(
            store.write(2, |w| w.delete_sessions_of("cs0101")).unwrap(),
            1
        );
        // ...and its save finds nothing to update.
        s.stage = Stage::Add;
        assert!(!store.write(3, |w| w.update_session(&s)).unwrap());
        assert!(store.session(&held.id_hash, 3).unwrap().is_none());
        assert!(!store.write(3, |w| w.delete_session(&held.id_hash)).unwrap());
    }

    #[test]
    fn stages_read_back_and_only_four_act_for_the_account() {
        let all = Stage::ALL;
        for s in all {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::parse("verified"), None);
        let acting: Vec<Stage> = all.into_iter().filter(|s| s.acts_for_account()).collect();
        assert_eq!(
            acting,
            [Stage::Register, Stage::Stay, Stage::Done, Stage::Add]
        );
    }

    #[test]
    fn anything_else_starts_the_step_again() {
        for column in [
            "",
            "AbC-_9",
            "q:1,2,3",
            "code:",
            "questions:1,x",
            "captcha:00",
            "captcha:zz",
            "other:1",
        ] {
            assert_eq!(Pending::from_column(column), Pending::Nothing, "{column}");
        }
    }

    #[test]
    fn only_a_sent_code_is_a_phone_code() {
        assert_eq!(Pending::PhoneCode("x".into()).phone_code(), Some("x"));
        assert_eq!(Pending::Questions(vec![1]).phone_code(), None);
    }
}

//! Sign-in methods besides devices: verified phones, security answers and
//! the one-time codes sent to phones.

use super::db::{args, Db, Row};
use super::{Store, StoreError, Write, HAS_METHOD};

/// What a user has registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Methods {
    /// At least one authenticator app (device) is enrolled.
    pub app: bool,
    /// The verified phone number (E.164).
    pub phone: Option<String>,
    /// Indexes of the questions answered.
    pub questions: Vec<usize>,
}

impl Methods {
    /// How many of the three kinds are registered.
    pub fn count(&self) -> usize {
        usize::from(self.app)
            + usize::from(self.phone.is_some())
            + usize::from(!self.questions.is_empty())
    }
}

/// A code sent to a phone.
#[derive(Debug, Clone)]
pub struct PhoneCode {
    /// Random id, kept in the browser session.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Where it went (E.164).
    pub number: String,
    /// `sms` or `voice`.
    pub channel: String,
    /// `register`, `signin` or `recover`.
    pub purpose: String,
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// Sent.
    pub created_at: u64,
    /// No longer accepted after.
    pub expires_at: u64,
    /// Wrong codes tried.
    pub attempts: u32,
    /// When it was accepted, if it was.
    pub used_at: Option<u64>,
}

fn phone_code(r: &Row<'_>) -> Result<PhoneCode, StoreError> {
    Ok(PhoneCode {
        id: r.get(0)?,
        user_id: r.get(1)?,
        number: r.get(2)?,
        channel: r.get(3)?,
        purpose: r.get(4)?,
        code_hash: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        attempts: r.get(8)?,
        used_at: r.get(9)?,
    })
}

impl Store {
    /// The methods `user_id` has registered.
    pub fn methods_of(&self, user_id: i64) -> Result<Methods, StoreError> {
        self.read(|db| {
            let app: bool = db.one(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE user_id = ?1 AND removed_at IS NULL)",
                args![user_id],
                |r| r.get(0),
            )?;
            let phone = db.opt(
                "SELECT number FROM phones WHERE user_id = ?1",
                args![user_id],
                |r| r.get(0),
            )?;
            let questions = db.all(
                "SELECT question FROM security_answers WHERE user_id = ?1 ORDER BY question",
                args![user_id],
                |r| Ok(r.get::<u32>(0)? as usize),
            )?;
            Ok(Methods {
                app,
                phone,
                questions,
            })
        })
    }

    /// The stored hash of the answer to question `q`.
    pub fn answer_hash(&self, user_id: i64, q: usize) -> Result<Option<String>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT answer_hash FROM security_answers WHERE user_id = ?1 AND question = ?2",
                args![user_id, q],
                |r| r.get(0),
            )
        })
    }

    /// A sent code by id.
    pub fn phone_code(&self, id: &str) -> Result<Option<PhoneCode>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT id, user_id, number, channel, purpose, code_hash, created_at, expires_at, attempts, used_at \
                 FROM phone_codes WHERE id = ?1",
                args![id],
                phone_code,
            )
        })
    }
}

impl Write<'_> {
    /// Codes sent to `user_id` since `since` (the sending limit), counted
    /// in the write that stores the next one.
    pub fn phone_codes_since(&self, user_id: i64, since: u64) -> Result<u32, StoreError> {
        self.db().one(
            "SELECT COUNT(*) FROM phone_codes WHERE user_id = ?1 AND created_at >= ?2",
            args![user_id, since],
            |r| r.get(0),
        )
    }

    /// Registers (or replaces) the user's verified phone. With
    /// `first_only`, only if the user has no method yet: `false` if refused.
    pub fn set_phone(
        &self,
        user_id: i64,
        number: &str,
        first_only: bool,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.add_method(user_id, first_only, |db| {
            db.exec(
                "INSERT INTO phones (user_id, number, verified_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET number = excluded.number, verified_at = excluded.verified_at",
                args![user_id, number, now],
            )?;
            Ok(())
        })
    }

    /// Runs `write` in one transaction; with `first_only`, only while the
    /// user has no method at all (`false` when refused).
    fn add_method(
        &self,
        user_id: i64,
        first_only: bool,
        write: impl FnOnce(&Db<'_>) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let db = self.db();
        if first_only && db.one(HAS_METHOD, args![user_id], |r| r.get(0))? {
            return Ok(false);
        }
        write(db)?;
        Ok(true)
    }

    /// Removes the user's phone; true if there was one.
    pub fn remove_phone(&self, user_id: i64) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .exec("DELETE FROM phones WHERE user_id = ?1", args![user_id])?
            > 0)
    }

    /// Replaces the user's security answers with `answers` (question index,
    /// Argon2id hash of the normalised answer), in one transaction. With
    /// `first_only`, only if the user has no method yet: `false` if refused.
    pub fn set_answers(
        &self,
        user_id: i64,
        answers: &[(usize, String)],
        first_only: bool,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.add_method(user_id, first_only, |db| {
            db.exec("DELETE FROM security_answers WHERE user_id = ?1", args![user_id])?;
            for (q, hash) in answers {
                db.exec(
                    "INSERT INTO security_answers (user_id, question, answer_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                    args![user_id, q, hash, now],
                )?;
            }
            Ok(())
        })
    }

    /// Removes the user's security answers; true if there were some.
    pub fn remove_answers(&self, user_id: i64) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "DELETE FROM security_answers WHERE user_id = ?1",
            args![user_id],
        )? > 0)
    }

    /// Records a code about to be sent to a phone (stored before the
    /// send, so that the sending limit counts it).
    pub fn insert_phone_code(&self, c: &PhoneCode) -> Result<(), StoreError> {
        self.db().exec(
            "INSERT INTO phone_codes (id, user_id, number, channel, purpose, code_hash, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![c.id, c.user_id, c.number, c.channel, c.purpose, c.code_hash, c.created_at, c.expires_at],
        )?;
        Ok(())
    }

    /// Which kinds of method `user_id` has (app, phone, questions), read
    /// inside the transaction that would change them.
    pub fn method_kinds(&self, user_id: i64) -> Result<[bool; 3], StoreError> {
        self.db().one(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE user_id = ?1 AND removed_at IS NULL), \
             EXISTS (SELECT 1 FROM phones WHERE user_id = ?1), \
             EXISTS (SELECT 1 FROM security_answers WHERE user_id = ?1)",
            args![user_id],
            |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]),
        )
    }

    /// Takes one of the `max` tries of code `id` before it is compared:
    /// `false` if it is used, expired at `now` or out of tries. Taken in
    /// the statement that checks them, so parallel guesses cannot share a
    /// try.
    pub fn try_phone_code(&self, id: &str, max: u32, now: u64) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "UPDATE phone_codes SET attempts = attempts + 1 \
             WHERE id = ?1 AND used_at IS NULL AND expires_at > ?3 AND attempts < ?2",
            args![id, max, now],
        )? == 1)
    }

    /// Marks `id` used; false if it already was (a race lost).
    pub fn use_phone_code(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        Ok(self.db().exec(
            "UPDATE phone_codes SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            args![id, now],
        )? == 1)
    }
}

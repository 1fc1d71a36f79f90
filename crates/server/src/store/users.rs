//! Users, their password history and lock state.

use serde::Serialize;

use super::db::{args, Db, Row};
use super::{Store, StoreError, Write};

/// What a user may do; each role may do what the ones before it may
/// (ordered: officer < helpdesk < admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs in and approves.
    Officer,
    /// Also uses the help-desk console.
    Helpdesk,
    /// Also administers.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Helpdesk => "helpdesk",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "officer" => Some(Role::Officer),
            "helpdesk" => Some(Role::Helpdesk),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A new user.
pub struct NewUser<'a> {
    /// Unique, case-insensitive.
    pub username: &'a str,
    /// Given name.
    pub first_name: &'a str,
    /// Family name.
    pub last_name: &'a str,
    /// Argon2id PHC string.
    pub password_hash: &'a str,
    /// When the temporary password stops working.
    pub temporary_until: u64,
}

/// A stored user.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    /// Row id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Must change the (temporary) password at next sign-in.
    pub must_change: bool,
    /// When the temporary password stops working (if `must_change`).
    pub temporary_until: u64,
    /// Last change made by the user (0: never).
    pub password_changed_at: u64,
    /// Failed sign-ins since the last success.
    pub failed_logins: u32,
    /// Locked until this time (0: not locked).
    pub locked_until: u64,
    /// Disabled by an administrator.
    pub disabled: bool,
    /// Pushes blocked after a fraud report.
    pub push_blocked: bool,
    /// Registration postponed until this time.
    pub skip_setup_until: u64,
    /// Created.
    pub created_at: u64,
    /// The stable, opaque identifier applications know the officer by
    /// (the ID token's `sub`).
    pub subject: String,
}

const COLUMNS: &str = "id, username, first_name, last_name, role, password_hash, must_change, password_changed_at, \
                       failed_logins, locked_until, disabled, push_blocked, skip_setup_until, created_at, temporary_until, subject";

fn user(r: &Row<'_>) -> Result<UserRow, StoreError> {
    let role: String = r.get(4)?;
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        first_name: r.get(2)?,
        last_name: r.get(3)?,
        role: Role::parse(&role).unwrap_or(Role::Officer),
        password_hash: r.get(5)?,
        must_change: r.get(6)?,
        password_changed_at: r.get(7)?,
        failed_logins: r.get(8)?,
        locked_until: r.get(9)?,
        disabled: r.get(10)?,
        push_blocked: r.get(11)?,
        skip_setup_until: r.get(12)?,
        created_at: r.get(13)?,
        temporary_until: r.get(14)?,
        subject: r.get(15)?,
    })
}

fn user_by_id(db: &Db<'_>, id: i64) -> Result<Option<UserRow>, StoreError> {
    db.opt(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        args![id],
        user,
    )
}

impl Store {
    /// A user by name (case-insensitive).
    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        self.read(|db| {
            db.opt(
                &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
                args![username],
                user,
            )
        })
    }

    /// A user by id.
    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        self.read(|db| user_by_id(db, id))
    }

    /// All users, by name.
    pub fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.scan(|db| {
            db.all(
                &format!("SELECT {COLUMNS} FROM users ORDER BY username"),
                args![],
                user,
            )
        })
    }

    /// Users whose username or "first last" name contains `q` (any case),
    /// at most `limit`, by username.
    pub fn find_users(&self, q: &str, limit: usize) -> Result<Vec<UserRow>, StoreError> {
        self.scan(|db| {
            let pattern = format!(
                "%{}%",
                q.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            db.all(&format!(
                "SELECT {COLUMNS} FROM users WHERE lower(username) LIKE lower(?1) ESCAPE '\\' \
                 OR lower(first_name || ' ' || last_name) LIKE lower(?1) ESCAPE '\\' ORDER BY username LIMIT ?2"
            ), args![pattern, limit as i64], user)
        })
    }

    /// The last `n` password hashes, newest first.
    pub fn password_history(&self, user_id: i64, n: usize) -> Result<Vec<String>, StoreError> {
        self.read(|db| {
            db.all("SELECT hash FROM password_history WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2", args![user_id, n], |r| r.get(0))
        })
    }
}

impl Write<'_> {
    /// A user by id, as this transaction sees it.
    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        user_by_id(self.db(), id)
    }

    /// Adds a user with a temporary password; `None` if the name is taken.
    pub fn insert_user(&self, u: &NewUser<'_>, now: u64) -> Result<Option<UserRow>, StoreError> {
        let db = self.db();
        let sql = db.pick(
            "INSERT INTO users (username, first_name, last_name, password_hash, created_at, temporary_until, subject) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, lower(hex(randomblob(16)))) ON CONFLICT DO NOTHING RETURNING id",
            "INSERT INTO users (username, first_name, last_name, password_hash, created_at, temporary_until, subject) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, replace(gen_random_uuid()::text, '-', '')) ON CONFLICT DO NOTHING RETURNING id",
        );
        let args = args![
            u.username,
            u.first_name,
            u.last_name,
            u.password_hash,
            now,
            u.temporary_until
        ];
        let Some(id) = db.opt(sql, args, |r| r.get::<i64>(0))? else {
            return Ok(None);
        };
        db.exec(
            "INSERT INTO password_history (user_id, hash, created_at) VALUES (?1, ?2, ?3)",
            args![id, u.password_hash, now],
        )?;
        Ok(Some(db.one(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            args![id],
            user,
        )?))
    }

    /// Sets a new password hash and records it in the history.
    /// `None`: a change the user made (counts for the minimum age);
    /// `Some(until)`: a temporary password (a reset), which must be changed
    /// at the next sign-in and stops working at `until`.
    pub fn set_password(
        &self,
        user_id: i64,
        hash: &str,
        temporary_until: Option<u64>,
        now: u64,
    ) -> Result<(), StoreError> {
        let db = self.db();
        match temporary_until {
            None => db.exec(
                "UPDATE users SET password_hash = ?2, must_change = 0, password_changed_at = ?3 WHERE id = ?1",
                args![user_id, hash, now],
            )?,
            Some(until) => db.exec(
                "UPDATE users SET password_hash = ?2, must_change = 1, temporary_until = ?3, failed_logins = 0, locked_until = 0 WHERE id = ?1",
                args![user_id, hash, until],
            )?,
        };
        db.exec(
            "INSERT INTO password_history (user_id, hash, created_at) VALUES (?1, ?2, ?3)",
            args![user_id, hash, now],
        )?;
        Ok(())
    }

    /// Counts a failed sign-in; locks the account once `max` is reached.
    /// Returns the lock's end, if locked.
    pub fn record_failure(
        &self,
        user_id: i64,
        max: u32,
        lock_secs: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        let db = self.db();
        let failures: u32 = db.one(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?1 RETURNING failed_logins",
            args![user_id],
            |r| r.get(0),
        )?;
        if failures >= max {
            let until = now + lock_secs;
            db.exec(
                "UPDATE users SET locked_until = ?2, failed_logins = 0 WHERE id = ?1",
                args![user_id, until],
            )?;
            return Ok(Some(until));
        }
        Ok(None)
    }

    /// Clears failures and any lock.
    pub fn clear_failures(&self, user_id: i64) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?1",
            args![user_id],
        )?;
        Ok(())
    }

    /// Disables or enables a user.
    pub fn set_disabled(&self, user_id: i64, disabled: bool) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE users SET disabled = ?2 WHERE id = ?1",
            args![user_id, disabled],
        )?;
        Ok(())
    }

    /// Blocks (or unblocks) pushes to a user.
    pub fn set_push_blocked(&self, user_id: i64, blocked: bool) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE users SET push_blocked = ?2 WHERE id = ?1",
            args![user_id, blocked],
        )?;
        Ok(())
    }

    /// Sets the end of the "Skip setup" grace.
    pub fn set_skip_setup_until(&self, user_id: i64, until: u64) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE users SET skip_setup_until = ?2 WHERE id = ?1",
            args![user_id, until],
        )?;
        Ok(())
    }

    /// Sets the role.
    pub fn set_role(&self, user_id: i64, role: Role) -> Result<(), StoreError> {
        self.db().exec(
            "UPDATE users SET role = ?2 WHERE id = ?1",
            args![user_id, role.as_str()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_part_of_username_or_name_and_wildcards_are_literal() {
        let store = Store::open_in_memory().unwrap();
        for (u, f, l) in [
            ("cs0101", "Clark", "Kent"),
            ("cs_0102", "Lois", "Lane"),
            ("hd0001", "Jimmy", "Olsen"),
        ] {
            let new = NewUser {
                username: u,
                first_name: f,
                last_name: l,
                password_hash: "x",
                temporary_until: 2,
            };
            store.write(1, |w| w.insert_user(&new, 1)).unwrap();
        }
        let names = |q: &str| -> Vec<String> {
            store
                .find_users(q, 50)
                .unwrap()
                .into_iter()
                .map(|u| u.username)
                .collect()
        };
        assert_eq!(names("KENT"), ["cs0101"]);
        assert_eq!(names("lois la"), ["cs_0102"]);
        assert_eq!(names("cs"), ["cs0101", "cs_0102"]);
        assert_eq!(names("s_"), ["cs_0102"], "_ is not a wildcard");
        assert_eq!(names("%"), Vec::<String>::new(), "% is not a wildcard");
        assert_eq!(store.find_users("", 2).unwrap().len(), 2, "the limit holds");
    }
}

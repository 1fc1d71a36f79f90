//! Users: creation with a temporary password, "Skip setup", and the
//! administrator's actions (reset, unlock, disable, role). Passwords
//! themselves are in [`crate::domain::passwords`].

use countersign_core::password::temporary_password;
use zeroize::Zeroizing;

use crate::domain::Code;
use crate::store::{NewAudit, NewUser, Role, StoreError, UserRow, Write};
use crate::{Error, Server};

pub use super::passwords::{hash_password, verify_password, PasswordOk};

/// Checks a username: 2–64 of lower-case letters, digits, `.`, `_`, `-`.
pub fn check_username(username: &str) -> Result<(), Error> {
    let ok = (2..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_username",
            "a username is 2–64 lower-case letters, digits, '.', '_' or '-'",
        ))
    }
}

impl Server {
    /// Creates a user and returns the temporary password (shown once,
    /// stored only as a hash). Without `ssn_last4`, four random digits.
    pub fn add_user(
        &self,
        username: &str,
        first: &str,
        last: &str,
        ssn_last4: Option<&str>,
        actor: &str,
        now: u64,
    ) -> Result<(UserRow, Zeroizing<String>), Error> {
        check_username(username)?;
        for (field, value) in [("first name", first), ("last name", last)] {
            if value.trim().is_empty() || value.len() > 64 {
                return Err(Error::invalid(
                    "invalid_name",
                    format!("the {field} must be 1–64 characters"),
                ));
            }
            if countersign_core::text::first_unsafe(value).is_some() {
                return Err(Error::invalid(
                    "invalid_name",
                    format!("the {field} must not contain control characters"),
                ));
            }
        }
        let digits = match ssn_last4 {
            Some(d) if d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()) => {
                Zeroizing::new(d.to_string())
            }
            Some(_) => {
                return Err(Error::invalid(
                    "invalid_ssn_last4",
                    "the SSN digits must be exactly four digits",
                ))
            }
            None => self.random_digits(4)?,
        };
        let password = Zeroizing::new(temporary_password(
            &self.config.users.temporary_password_template,
            first.trim(),
            last.trim(),
            &digits,
        ));
        let hash = hash_password(&password)?;
        let new = NewUser {
            username,
            first_name: first.trim(),
            last_name: last.trim(),
            password_hash: &hash,
            temporary_until: self.temporary_until(now),
        };
        let user = self
            .write(now, |w| {
                let user = w.insert_user(&new, now)?;
                if user.is_some() {
                    w.audit(&admin_row(actor, "user.add", username))?;
                }
                Ok(user)
            })?
            .ok_or_else(|| {
                Error::refused(Code::UserExists, format!("user {username} already exists"))
            })?;
        Ok((user, password))
    }

    /// `n` uniformly random decimal digits.
    pub(crate) fn random_digits(&self, n: usize) -> Result<Zeroizing<String>, Error> {
        Ok(countersign_core::random::Draws::new(&self.rng).string(b"0123456789", n)?)
    }

    /// A user by name, or `not_found`.
    pub fn user(&self, username: &str) -> Result<UserRow, Error> {
        self.store
            .user_by_name(username)?
            .ok_or_else(|| Error::not_found("user"))
    }

    /// How long `user` may still postpone registering methods, in seconds:
    /// the whole allowance if never used, what is left of it otherwise.
    pub fn skip_setup_left(&self, user: &UserRow, now: u64) -> Option<u64> {
        let allowance = self.config.users.skip_setup_hours * 3600;
        match user.skip_setup_until {
            _ if allowance == 0 => None,
            0 => Some(allowance),
            until if until > now => Some(until - now),
            _ => None,
        }
    }

    /// Whether `user` skipped setup and the grace still runs: sign-ins go
    /// past registration until it ends ("you will be prompted again in 24
    /// hours").
    pub fn setup_postponed(&self, user: &UserRow, now: u64) -> bool {
        user.skip_setup_until > now
    }

    /// When a skip now would end: the grace's end if it runs already.
    pub fn skip_setup_ends(&self, user: &UserRow, now: u64) -> Option<u64> {
        self.skip_setup_left(user, now).map(|left| now + left)
    }

    /// "Skip setup": the officer signs in without a second method until the
    /// grace ends. The grace starts at the first skip and is not renewed.
    pub fn skip_setup(&self, username: &str, ip: &str, now: u64) -> Result<u64, Error> {
        let user = self.user(username)?;
        let row = NewAudit::of(username, "signin.register.skip", username, ip);
        let Some(left) = self.skip_setup_left(&user, now) else {
            self.audit(row.with("refused", "no time left to postpone"), now)?;
            return Err(Error::refused(
                Code::SetupRequired,
                "Setup can no longer be postponed. Set up your sign-in methods now.",
            ));
        };
        let until = now + left;
        let detail = format!("postponed until {until}");
        self.write(now, |w| {
            if user.skip_setup_until == 0 {
                w.set_skip_setup_until(user.id, until)?;
            }
            w.audit(&row.with("ok", &detail))
        })?;
        Ok(until)
    }

    /// Administrator reset: a new temporary password the user must change.
    /// Exempt from the minimum age.
    pub fn reset_password(
        &self,
        username: &str,
        actor: &str,
        now: u64,
    ) -> Result<Zeroizing<String>, Error> {
        let user = self.user(username)?;
        let (password, hash) = self.temporary_password_for(&user)?;
        let until = self.temporary_until(now);
        self.write(now, |w| {
            reset_password_in(w, &user, &hash, until, now)?;
            w.audit(&admin_row(actor, "user.reset_password", username))
        })?;
        Ok(password)
    }

    /// A new temporary password for `user`, with its hash. Hashing takes
    /// tens of milliseconds, so it is done before the write that stores it.
    pub(crate) fn temporary_password_for(
        &self,
        user: &UserRow,
    ) -> Result<(Zeroizing<String>, String), Error> {
        let digits = self.random_digits(4)?;
        let password = Zeroizing::new(temporary_password(
            &self.config.users.temporary_password_template,
            &user.first_name,
            &user.last_name,
            &digits,
        ));
        let hash = hash_password(&password)?;
        Ok((password, hash))
    }

    /// Clears a lockout.
    pub fn unlock(&self, username: &str, actor: &str, now: u64) -> Result<(), Error> {
        let user = self.user(username)?;
        self.write(now, |w| {
            w.clear_failures(user.id)?;
            w.audit(&admin_row(actor, "user.unlock", username))
        })
    }

    /// Disables (or re-enables) an account.
    pub fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        actor: &str,
        now: u64,
    ) -> Result<(), Error> {
        let user = self.user(username)?;
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.write(now, |w| {
            w.set_disabled(user.id, disabled)?;
            if disabled {
                w.delete_sessions_of(username)?;
            }
            w.audit(&admin_row(actor, action, username))
        })
    }

    /// Removes every method (devices, phone, security answers) and voids
    /// activation codes: the user registers again at the next sign-in.
    pub fn reset_methods(&self, username: &str, actor: &str, now: u64) -> Result<usize, Error> {
        let user = self.user(username)?;
        self.write(now, |w| {
            let n = reset_methods_in(w, &user, now)?;
            w.audit(&admin_row(actor, "user.reset_methods", username))?;
            Ok(n)
        })
    }

    /// Sets a user's role.
    pub fn set_role(&self, username: &str, role: Role, actor: &str, now: u64) -> Result<(), Error> {
        let user = self.user(username)?;
        self.write(now, |w| {
            w.set_role(user.id, role)?;
            w.audit(&admin_row(actor, "user.role", username))
        })
    }

    /// When a temporary password issued at `now` stops working.
    pub(crate) fn temporary_until(&self, now: u64) -> u64 {
        now + self.config.users.temporary_password_days * 86_400
    }
}

/// The writes of a password reset: a temporary password valid `until`,
/// and every browser session of the user ended (the old cookie leads back
/// to sign-in).
pub(crate) fn reset_password_in(
    w: &mut Write<'_>,
    user: &UserRow,
    hash: &str,
    until: u64,
    now: u64,
) -> Result<(), StoreError> {
    w.set_password(user.id, hash, Some(until), now)?;
    w.delete_sessions_of(&user.username)?;
    Ok(())
}

/// The writes of a methods reset: devices, phone and answers removed,
/// unused activation codes voided, the push block lifted, sessions ended.
/// Returns how many devices were removed.
pub(crate) fn reset_methods_in(
    w: &mut Write<'_>,
    user: &UserRow,
    now: u64,
) -> Result<usize, StoreError> {
    let n = w.remove_devices_of(user.id, now)?;
    w.remove_phone(user.id)?;
    w.remove_answers(user.id)?;
    w.set_push_blocked(user.id, false)?;
    // Registration is asked for at the next sign-in, with a new grace.
    w.set_skip_setup_until(user.id, 0)?;
    w.delete_sessions_of(&user.username)?;
    Ok(n)
}

/// The audit row of an administrator's change (command line, admin API,
/// or the help desk's fix that made it).
pub(crate) fn admin_row<'a>(actor: &'a str, action: &'a str, target: &'a str) -> NewAudit<'a> {
    NewAudit {
        actor,
        action,
        target,
        ip: "",
        outcome: "ok",
        detail: "",
    }
}

//! Passwords: Argon2id hashing, the sign-in check (which answers an
//! unknown user, a wrong password and a locked or disabled account alike),
//! and the officer's own change or recovery under the policy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use countersign_core::password::Violation;
use ring::rand::SecureRandom;

use crate::domain::Code;
use crate::store::{NewAudit, StoreError, UserRow, Write};
use crate::{Error, Server};

/// Hashes a password with Argon2id (default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, Error> {
    let mut raw = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| Error::Internal("random generator failed".into()))?;
    let salt = SaltString::encode_b64(&raw).map_err(|e| Error::Internal(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against an Argon2id PHC string.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of a password nobody has: verifying against it makes a sign-in
/// for an unknown user cost the same as for a known one.
pub(crate) fn dummy_hash() -> Result<&'static str, Error> {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(hash) = HASH.get() {
        return Ok(hash);
    }
    // A failure is an error, not an empty hash that answers faster.
    let hash = hash_password("no user has this password")?;
    Ok(HASH.get_or_init(|| hash))
}

/// What a successful password step leads to.
#[derive(Debug)]
pub struct PasswordOk {
    /// The user.
    pub user: UserRow,
    /// A temporary password: must be changed before anything else.
    pub must_change: bool,
}

impl Server {
    /// The password step of a sign-in. Unknown user, wrong password, and a
    /// locked or disabled account with a wrong password get the same
    /// answer at the same cost (one Argon2id verification), so the answer
    /// tells nothing about the account; failures count towards the
    /// lockout. Only the right password learns that the account is locked,
    /// disabled, or holds an expired temporary password.
    pub fn check_password(
        &self,
        username: &str,
        password: &str,
        ip: &str,
        now: u64,
    ) -> Result<PasswordOk, Error> {
        let invalid = || {
            Error::refused(
                Code::InvalidCredentials,
                "Your account or password is incorrect.",
            )
        };
        let row = NewAudit::of(username, "signin.password", username, ip);
        let audit = |outcome, detail| self.audit(row.with(outcome, detail), now);
        if let Err(e) = self.address_failures.check(ip, now) {
            audit("refused", "too many failures from this address")?;
            return Err(e);
        }
        let Some(user) = self.store.user_by_name(username)? else {
            verify_password(dummy_hash()?, password);
            self.address_failures.failed(ip, now);
            audit("refused", "unknown user")?;
            return Err(invalid());
        };
        let locked_now = user.locked_until > now;
        if !verify_password(&user.password_hash, password) {
            self.address_failures.failed(ip, now);
            if user.disabled || locked_now {
                audit("refused", "wrong password (account disabled or locked)")?;
                return Err(invalid());
            }
            self.write(now, |w| {
                let row = match self.count_failure(w, user.id, now)? {
                    true => row.with("locked", "too many failed sign-ins"),
                    false => row.with("refused", "wrong password"),
                };
                w.audit(&row)
            })?;
            return Err(invalid());
        }
        if user.disabled {
            audit("refused", "disabled")?;
            return Err(Error::refused(
                Code::AccountDisabled,
                "This account is disabled. Contact the help desk.",
            ));
        }
        if locked_now {
            audit("refused", "locked")?;
            return Err(locked(user.locked_until, now));
        }
        if user.must_change && user.temporary_until <= now {
            audit("refused", "temporary password expired")?;
            return Err(Error::refused(
                Code::TemporaryPasswordExpired,
                "Your temporary password has expired. Contact the help desk for a new one.",
            ));
        }
        let detail = if user.must_change {
            "temporary password"
        } else {
            ""
        };
        self.write(now, |w| {
            w.clear_failures(user.id)?;
            w.audit(&row.with("ok", detail))
        })?;
        Ok(PasswordOk {
            must_change: user.must_change,
            user,
        })
    }

    /// A user's own password change. Every broken rule is reported.
    pub fn change_password(
        &self,
        username: &str,
        current: &str,
        new: &str,
        confirm: &str,
        ip: &str,
        now: u64,
    ) -> Result<Result<(), Vec<Violation>>, Error> {
        self.change_password_in(username, current, new, confirm, None, ip, now)
    }

    /// [`Server::change_password`] made in the browser session whose id
    /// hash is `session`: every other session of the officer ends in the
    /// same transaction (whoever knew the old password is out).
    #[allow(clippy::too_many_arguments)]
    pub fn change_password_in(
        &self,
        username: &str,
        current: &str,
        new: &str,
        confirm: &str,
        session: Option<&[u8]>,
        ip: &str,
        now: u64,
    ) -> Result<Result<(), Vec<Violation>>, Error> {
        let user = self.user(username)?;
        let policy = &self.config.password;
        let row = NewAudit::of(username, "password.change", username, ip);
        if user.locked_until > now {
            return Err(locked(user.locked_until, now));
        }
        if !verify_password(&user.password_hash, current) {
            self.write(now, |w| {
                let outcome = match self.count_failure(w, user.id, now)? {
                    true => "locked",
                    false => "refused",
                };
                w.audit(&row.with(outcome, "wrong_current"))
            })?;
            return Ok(Err(vec![Violation::WrongCurrent]));
        }
        let mut violations = self.new_password_violations(&user, new, confirm)?;
        let min_age = policy.min_age_hours * 3600;
        if !user.must_change
            && user.password_changed_at > 0
            && now < user.password_changed_at + min_age
        {
            violations.push(Violation::TooSoon(policy.min_age_hours));
        }
        if !violations.is_empty() {
            let codes: Vec<&str> = violations.iter().map(Violation::code).collect();
            self.audit(row.with("refused", &codes.join(",")), now)?;
            return Ok(Err(violations));
        }
        let hash = hash_password(new)?;
        self.write(now, |w| {
            w.set_password(user.id, &hash, None, now)?;
            if let Some(keep) = session {
                w.delete_other_sessions(username, keep)?;
            }
            w.audit(&row.with("ok", ""))
        })?;
        Ok(Ok(()))
    }

    /// The rules a new password breaks, minimum age aside: confirmation,
    /// composition, and reuse of one of the last passwords.
    fn new_password_violations(
        &self,
        user: &UserRow,
        new: &str,
        confirm: &str,
    ) -> Result<Vec<Violation>, Error> {
        let policy = &self.config.password;
        let mut violations = Vec::new();
        if new != confirm {
            violations.push(Violation::Mismatch);
        }
        violations.extend(policy.check(new));
        if !violations
            .iter()
            .any(|v| matches!(v, Violation::TooShort(_)))
        {
            let history = self.store.password_history(user.id, policy.history)?;
            if history.iter().any(|h| verify_password(h, new)) {
                violations.push(Violation::Reused(policy.history));
            }
        }
        Ok(violations)
    }

    /// Self-service reset after the user proved who they are with a
    /// registered method ("Can't access your account?"): the same rules as
    /// a change, except the minimum age (a forgotten password cannot wait
    /// a day); any lockout is cleared.
    pub fn recover_password(
        &self,
        username: &str,
        new: &str,
        confirm: &str,
        ip: &str,
        now: u64,
    ) -> Result<Result<(), Vec<Violation>>, Error> {
        let user = self.user(username)?;
        let violations = self.new_password_violations(&user, new, confirm)?;
        let outcome = if violations.is_empty() {
            "ok"
        } else {
            "refused"
        };
        let codes: Vec<&str> = violations.iter().map(Violation::code).collect();
        let hash = match violations.is_empty() {
            true => Some(hash_password(new)?),
            false => None,
        };
        let detail = codes.join(",");
        self.write(now, |w| {
            if let Some(hash) = &hash {
                w.set_password(user.id, hash, None, now)?;
                w.clear_failures(user.id)?;
                // Whoever knew the old password is signed out everywhere.
                w.delete_sessions_of(username)?;
            }
            w.audit(&NewAudit {
                actor: username,
                action: "password.recover",
                target: username,
                ip,
                outcome,
                detail: &detail,
            })
        })?;
        Ok(if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        })
    }
}

impl Server {
    /// Counts a failed sign-in, code or answer of `user_id` in `w`, and
    /// locks the account for the configured minutes once the configured
    /// number is reached; `true` if this failure locked it.
    pub(crate) fn count_failure(
        &self,
        w: &mut Write<'_>,
        user_id: i64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let lockout = &self.config.lockout;
        Ok(
            w.record_failure(user_id, lockout.max_failures, lockout.minutes * 60, now)?
                .is_some(),
        )
    }
}

fn locked(until: u64, now: u64) -> Error {
    let minutes = until.saturating_sub(now).div_ceil(60).max(1);
    Error::refused(Code::AccountLocked,
        format!("Your account is locked after too many failed attempts. Try again in {minutes} minute(s) or contact the help desk."),
    )
}

//! Registering and using the methods besides the app: a phone that gets a
//! one-time code by text or call, and security questions. Wrong codes and
//! answers count towards the account lockout and the per-address limit,
//! exactly like wrong passwords. (Sending and checking the codes:
//! `phone_codes`.)

use countersign_core::methods::{check_answers, normalise_answer, AnswerProblem};

use crate::domain::accounts::{hash_password, verify_password};
use crate::domain::Code;
use crate::store::{Methods, NewAudit, StoreError, UserRow, Write};
use crate::{Error, Server};

/// What a code is for; a code sent for one purpose is refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Verifying a phone being registered.
    Register,
    /// A second factor at sign-in.
    SignIn,
    /// Proving identity to reset a password.
    Recover,
}

impl Purpose {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignIn => "signin",
            Purpose::Recover => "recover",
        }
    }
}

/// On what authority sign-in methods are changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// A second factor was proven in this session, or staff act: any
    /// change.
    Proven,
    /// The password alone, on an account without any method (first
    /// sign-in, or after a methods reset): refused once the account has
    /// one, even one registered a moment ago from another browser.
    FirstMethod,
}

/// The refusal when a password-only change meets an account that has a
/// method now.
fn methods_changed() -> Error {
    Error::refused(
        Code::MethodsChanged,
        "This account's sign-in methods changed. Prove it's you with one of them first.",
    )
}

/// A method a user may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// Every enrolled app.
    App,
    /// The phone.
    Phone,
    /// The security questions.
    Questions,
}

impl MethodKind {
    /// The form value [`MethodKind::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::App => "app",
            MethodKind::Phone => "phone",
            MethodKind::Questions => "questions",
        }
    }

    /// Reads a form value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(MethodKind::App),
            "phone" => Some(MethodKind::Phone),
            "questions" => Some(MethodKind::Questions),
            _ => None,
        }
    }
}

impl Server {
    /// The methods `username` has registered.
    pub fn methods(&self, username: &str) -> Result<Methods, Error> {
        let user = self.user(username)?;
        Ok(self.store.methods_of(user.id)?)
    }

    /// Registers five security questions and answers (stored as Argon2id
    /// hashes of the normalised answers), replacing earlier ones.
    pub fn register_answers(
        &self,
        username: &str,
        chosen: &[(usize, String)],
        authority: Authority,
        ip: &str,
        now: u64,
    ) -> Result<Result<(), Vec<AnswerProblem>>, Error> {
        let user = self.user(username)?;
        let normalised = match check_answers(chosen) {
            Ok(n) => n,
            Err(problems) => return Ok(Err(problems)),
        };
        let mut hashed = Vec::with_capacity(normalised.len());
        for ((q, _), answer) in chosen.iter().zip(normalised) {
            let answer = zeroize::Zeroizing::new(answer);
            hashed.push((*q, hash_password(&answer)?));
        }
        let first_only = authority == Authority::FirstMethod;
        let row = method_row(username, "method.questions.register", ip, "ok", "");
        self.add_method(row, now, |w| {
            w.set_answers(user.id, &hashed, first_only, now)
        })?;
        Ok(Ok(()))
    }

    /// Checks answers to the `asked` questions (same order). All must be
    /// right; a wrong set counts as one failed sign-in.
    pub fn check_answers(
        &self,
        username: &str,
        asked: &[usize],
        given: &[String],
        ip: &str,
        now: u64,
    ) -> Result<bool, Error> {
        let user = self.usable_user(username, "method.questions.check", ip, now)?;
        let mut all = asked.len() == given.len() && !asked.is_empty();
        for (q, a) in asked.iter().zip(given) {
            let answer = zeroize::Zeroizing::new(normalise_answer(a));
            let ok = match self.store.answer_hash(user.id, *q)? {
                Some(hash) => verify_password(&hash, &answer),
                None => false,
            };
            all &= ok;
        }
        if all {
            self.succeeded(&user, "method.questions.check", ip, "", now)?;
        } else {
            let action = "method.questions.check";
            self.failed(&user, action, ip, "wrong answers", now)?;
        }
        Ok(all)
    }

    /// Registers `number` as the user's phone (after its code was checked).
    pub fn register_phone(
        &self,
        username: &str,
        number: &str,
        authority: Authority,
        ip: &str,
        now: u64,
    ) -> Result<(), Error> {
        let user = self.user(username)?;
        let masked = countersign_core::methods::mask(number);
        let first_only = authority == Authority::FirstMethod;
        let row = method_row(username, "method.phone.register", ip, "ok", &masked);
        self.add_method(row, now, |w| w.set_phone(user.id, number, first_only, now))
    }

    /// Registers a method with `write` (`false`: refused, the account has
    /// a method now) and its audit row `row` (or the refusal's), together.
    fn add_method(
        &self,
        row: NewAudit<'_>,
        now: u64,
        write: impl FnOnce(&mut Write<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), Error> {
        let added = self.write(now, |w| {
            let added = write(w)?;
            w.audit(&match added {
                true => row,
                false => row.with("refused", "account has a method now"),
            })?;
            Ok(added)
        })?;
        if added {
            Ok(())
        } else {
            Err(methods_changed())
        }
    }

    /// Removes one kind of method; `actor` is the user or a staff member.
    /// Returns whether there was anything to remove.
    pub fn remove_method(
        &self,
        username: &str,
        kind: MethodKind,
        actor: &str,
        ip: &str,
        now: u64,
    ) -> Result<bool, Error> {
        let user = self.user(username)?;
        let removed = self.write(now, |w| {
            // Never the last one, checked where it is removed: two removals
            // at once cannot leave the account with none.
            let kinds = w.method_kinds(user.id)?;
            let [app, phone, questions] = kinds;
            let has = match kind {
                MethodKind::App => app,
                MethodKind::Phone => phone,
                MethodKind::Questions => questions,
            };
            if has && kinds.iter().filter(|k| **k).count() == 1 {
                return Ok(None);
            }
            let (removed, what) = match kind {
                MethodKind::App => (w.remove_devices_of(user.id, now)? > 0, "app"),
                MethodKind::Phone => (w.remove_phone(user.id)?, "phone"),
                MethodKind::Questions => (w.remove_answers(user.id)?, "questions"),
            };
            w.audit(&NewAudit {
                actor,
                action: "method.remove",
                target: username,
                ip,
                outcome: if removed { "ok" } else { "nothing" },
                detail: what,
            })?;
            Ok(Some(removed))
        })?;
        removed.ok_or_else(|| {
            Error::refused(
                Code::LastMethod,
                "This is your only sign-in method: add another before removing it.",
            )
        })
    }

    /// The user, if a code or answer may be tried for them now.
    pub(super) fn usable_user(
        &self,
        username: &str,
        action: &str,
        ip: &str,
        now: u64,
    ) -> Result<UserRow, Error> {
        let user = self.user(username)?;
        if let Err(e) = self.address_failures.check(ip, now) {
            self.method_audit(
                username,
                action,
                ip,
                "refused",
                "too many failures from this address",
                now,
            )?;
            return Err(e);
        }
        if user.disabled || user.locked_until > now {
            self.method_audit(username, action, ip, "refused", "locked or disabled", now)?;
            return Err(Error::refused(Code::AccountLocked,
                "Your account is locked after too many failed attempts. Try again later or contact the help desk.",
            ));
        }
        Ok(user)
    }

    /// Counts a failure against the account and the address.
    pub(super) fn failed(
        &self,
        user: &UserRow,
        action: &str,
        ip: &str,
        detail: &str,
        now: u64,
    ) -> Result<(), Error> {
        self.address_failures.failed(ip, now);
        self.write(now, |w| {
            let outcome = match self.count_failure(w, user.id, now)? {
                true => "locked",
                false => "refused",
            };
            w.audit(&method_row(&user.username, action, ip, outcome, detail))
        })
    }

    /// A method proved: failures are cleared with the audit row.
    fn succeeded(
        &self,
        user: &UserRow,
        action: &str,
        ip: &str,
        detail: &str,
        now: u64,
    ) -> Result<(), Error> {
        self.write(now, |w| {
            w.clear_failures(user.id)?;
            w.audit(&method_row(&user.username, action, ip, "ok", detail))
        })
    }

    pub(super) fn method_audit(
        &self,
        username: &str,
        action: &str,
        ip: &str,
        outcome: &str,
        detail: &str,
        now: u64,
    ) -> Result<(), Error> {
        self.audit(method_row(username, action, ip, outcome, detail), now)
    }
}

/// The audit row of something the user did with a method.
pub(super) fn method_row<'a>(
    username: &'a str,
    action: &'a str,
    ip: &'a str,
    outcome: &'a str,
    detail: &'a str,
) -> NewAudit<'a> {
    NewAudit {
        actor: username,
        action,
        target: username,
        ip,
        outcome,
        detail,
    }
}

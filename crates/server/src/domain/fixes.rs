//! The help desk's fixes to an officer's account: each needs a reason,
//! is refused on an account above the actor's role, and commits with the
//! account change it stands for and its own audit row.

use crate::domain::accounts::{admin_row, reset_methods_in, reset_password_in};
use crate::domain::Code;
use crate::store::{NewAudit, Role, UserRow};
use crate::{Error, Server};

/// A fix the help desk applies; each needs a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Clear a lockout.
    Unlock,
    /// A new temporary password (returned, to read to the officer).
    ResetPassword,
    /// Remove every method: registration again at the next sign-in.
    ResetMethods,
    /// Remove one device.
    RemoveDevice(String),
    /// Clear the push block a fraud report set.
    ClearPushBlock,
    /// Give this many more hours to register methods.
    ExtendSkipSetup(u64),
}

impl Fix {
    /// Every action's name, as forms and the command line give it.
    pub const ACTIONS: [&'static str; 6] = [
        "unlock",
        "reset-password",
        "reset-methods",
        "remove-device",
        "clear-push-block",
        "extend-skip-setup",
    ];

    /// Reads a form's or command line's action.
    pub fn parse(action: &str, device: Option<&str>, hours: Option<u64>) -> Result<Self, Error> {
        let missing = |what: &str| Error::invalid("invalid_fix", format!("{action} needs {what}"));
        Ok(match action {
            "unlock" => Fix::Unlock,
            "reset-password" => Fix::ResetPassword,
            "reset-methods" => Fix::ResetMethods,
            "remove-device" => Fix::RemoveDevice(
                device
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| missing("a device"))?
                    .to_string(),
            ),
            "clear-push-block" => Fix::ClearPushBlock,
            "extend-skip-setup" => {
                let h = hours.ok_or_else(|| missing("a number of hours"))?;
                if !(1..=720).contains(&h) {
                    return Err(Error::invalid("invalid_fix", "extend by 1 to 720 hours"));
                }
                Fix::ExtendSkipSetup(h)
            }
            other => {
                return Err(Error::invalid(
                    "invalid_fix",
                    format!("unknown fix '{other}': one of {}", Fix::ACTIONS.join(", ")),
                ))
            }
        })
    }

    /// The audit action.
    fn action(&self) -> &'static str {
        match self {
            Fix::Unlock => "helpdesk.unlock",
            Fix::ResetPassword => "helpdesk.reset_password",
            Fix::ResetMethods => "helpdesk.reset_methods",
            Fix::RemoveDevice(_) => "helpdesk.remove_device",
            Fix::ClearPushBlock => "helpdesk.clear_push_block",
            Fix::ExtendSkipSetup(_) => "helpdesk.extend_skip_setup",
        }
    }
}

/// A fix to one account with what it needs made beforehand: for a
/// password reset, the new temporary password and its hash. Hashing
/// (Argon2id) is slow and runs on the hashing threads
/// ([`Server::prepare_fix`]); the commit then follows in the request
/// itself ([`Server::apply_prepared_fix`]), so a request dropped while it
/// waited (the browser gone) changes nothing.
pub struct PreparedFix {
    /// The account it was made for (a temporary password is made from
    /// the officer's names).
    username: String,
    fix: Fix,
    password: Option<(zeroize::Zeroizing<String>, String)>,
    /// The staff member it was counted against already, if any (before
    /// the hash was made, so that no more are hashed than may be applied).
    counted: Option<String>,
}

/// Who applies a fix: the name the audit log shows, and their role.
#[derive(Debug, Clone, Copy)]
pub struct Staff<'a> {
    /// As the audit log shows it.
    pub name: &'a str,
    /// What they may fix: accounts up to this role.
    pub role: Role,
}

impl<'a> Staff<'a> {
    /// A staff member as their account stands.
    pub fn of(user: &'a UserRow) -> Self {
        Staff {
            name: &user.username,
            role: user.role,
        }
    }

    /// Whether they may act on `user`'s account: only on one whose role
    /// is not above theirs.
    pub fn may_act_on(&self, user: &UserRow) -> bool {
        user.role <= self.role
    }
}

impl Server {
    /// Refuses (and audits as `row`, refused) an act of `staff` on an
    /// account above their role, saying that only an
    /// administrator can `act`: help-desk staff must not take over, or
    /// trouble, an administrator.
    pub(crate) fn within_role(
        &self,
        user: &UserRow,
        staff: Staff<'_>,
        (row, act): (NewAudit<'_>, &str),
        now: u64,
    ) -> Result<(), Error> {
        if staff.may_act_on(user) {
            return Ok(());
        }
        let (theirs, yours) = (user.role.as_str(), staff.role.as_str());
        let roles = format!("target is {theirs}, actor {yours}");
        self.audit(row.with("refused", &roles), now)?;
        Err(Error::refused(
            Code::RoleTooHigh,
            format!(
                "{} is {theirs} and you are {yours}: only an administrator can {act}.",
                user.username
            ),
        ))
    }

    /// Applies `fix` to `username` for `staff`, with `reason` in the audit
    /// log. Returns a new temporary password for
    /// [`Fix::ResetPassword`]. An account with a higher role than the
    /// actor's is refused (and the refusal audited): help-desk staff must
    /// not take over an administrator. A password reset, a methods reset
    /// and the removal of an account's last method each hand the account
    /// to whoever receives what they give: asked from an address, at
    /// most `users.helpdesk_resets_per_hour` of them an hour pass per
    /// staff member, counted with the change itself (refused and
    /// audited past that).
    pub fn apply_fix(
        &self,
        username: &str,
        fix: &Fix,
        staff: Staff<'_>,
        reason: &str,
        ip: &str,
        now: u64,
    ) -> Result<Option<zeroize::Zeroizing<String>>, Error> {
        let prepared = PreparedFix {
            username: username.to_string(),
            fix: fix.clone(),
            password: None,
            counted: None,
        };
        self.apply_prepared_fix(prepared, staff, reason, ip, now)
    }

    /// Makes what `fix` to `username` needs beforehand: a password
    /// reset's hash (call it on the hashing threads), counted against
    /// `staff`'s resets first (see [`Server::apply_fix`]). Nothing is
    /// hashed for a reset that will be refused anyway: no valid reason, an
    /// account above the staff member's role, their resets for the hour
    /// used up. The fix is checked again when it is applied, as things
    /// stand then; a reset counted here stays counted (unaudited) if it
    /// is then refused or never applied. Changes nothing else.
    pub fn prepare_fix(
        &self,
        username: &str,
        fix: Fix,
        staff: Staff<'_>,
        (reason, ip): (&str, &str),
        now: u64,
    ) -> Result<PreparedFix, Error> {
        let user = self.user(username)?;
        let wanted =
            fix == Fix::ResetPassword && valid_reason(reason).is_ok() && staff.may_act_on(&user);
        let mut prepared = PreparedFix {
            username: username.to_string(),
            fix,
            password: None,
            counted: None,
        };
        if !wanted {
            return Ok(prepared);
        }
        let count = counts_resets(ip);
        if count && !self.take_reset(staff.name, now)? {
            return Ok(prepared);
        }
        prepared.counted = count.then(|| staff.name.to_string());
        prepared.password = Some(self.temporary_password_for(&user)?);
        Ok(prepared)
    }

    /// [`Server::apply_fix`] to the account `prepared` was made for, with
    /// what was made beforehand.
    pub fn apply_prepared_fix(
        &self,
        prepared: PreparedFix,
        staff: Staff<'_>,
        reason: &str,
        ip: &str,
        now: u64,
    ) -> Result<Option<zeroize::Zeroizing<String>>, Error> {
        let PreparedFix {
            username,
            fix,
            password,
            counted,
        } = prepared;
        let (username, fix) = (username.as_str(), &fix);
        let reason = valid_reason(reason)?;
        let user = self.user(username)?;
        // The account's own spelling, whatever case the page's address had.
        let row = NewAudit::of(staff.name, fix.action(), &user.username, ip);
        self.within_role(&user, staff, (row, "fix this account"), now)?;
        let max_resets = self.config.users.helpdesk_resets_per_hour;
        // Not counted yet: checked before hashing a password, and counted
        // exactly in the commit.
        let to_count = counts_resets(ip)
            && counted.as_deref() != Some(staff.name)
            && match fix {
                Fix::ResetPassword | Fix::ResetMethods => true,
                // Removing the last method is a methods reset.
                Fix::RemoveDevice(_) => {
                    let methods = self.store.methods_of(user.id)?;
                    methods.count() == 1 && self.store.devices_of(user.id)?.len() == 1
                }
                _ => false,
            };
        // Only a password still to be hashed here needs checking first:
        // every other count is checked where it is taken, in the commit.
        let unhashed = *fix == Fix::ResetPassword && password.is_none();
        if to_count && unhashed && self.resets_used_up(staff.name, now)? {
            return Err(self.resets_refused(row, now));
        }
        let (password, hash) = match (fix, password) {
            (Fix::ResetPassword, Some((password, hash))) => (Some(password), hash),
            (Fix::ResetPassword, None) => {
                let (password, hash) = self.temporary_password_for(&user)?;
                (Some(password), hash)
            }
            _ => (None, String::new()),
        };
        let temporary_until = self.temporary_until(now);
        // The change, the account row it stands for (`user.*`), the fix's
        // own row and its count against the staff member's resets commit
        // together.
        let applied = self.write(now, |w| {
            if let Fix::RemoveDevice(id) = fix {
                if !w.holds_device(user.id, id)? {
                    return Ok(Applied::NoDevice);
                }
            }
            if to_count
                && !w.take_address_event(RESETS, staff.name, resets_since(now), max_resets, now)?
            {
                return Ok(Applied::Limited);
            }
            let (change, detail) = match fix {
                Fix::Unlock => {
                    w.clear_failures(user.id)?;
                    (Some("user.unlock"), reason.to_string())
                }
                Fix::ResetPassword => {
                    reset_password_in(w, &user, &hash, temporary_until, now)?;
                    (Some("user.reset_password"), reason.to_string())
                }
                Fix::ResetMethods => {
                    reset_methods_in(w, &user, now)?;
                    (Some("user.reset_methods"), reason.to_string())
                }
                Fix::RemoveDevice(id) => {
                    w.remove_device(id, now)?;
                    (None, format!("device {id}: {reason}"))
                }
                Fix::ClearPushBlock => {
                    w.set_push_blocked(user.id, false)?;
                    (None, reason.to_string())
                }
                Fix::ExtendSkipSetup(hours) => {
                    let until = user.skip_setup_until.max(now) + hours * 3600;
                    w.set_skip_setup_until(user.id, until)?;
                    (None, format!("until {until}: {reason}"))
                }
            };
            if let Some(action) = change {
                w.audit(&admin_row(staff.name, action, &user.username))?;
            }
            w.audit(&row.with("ok", &detail))?;
            Ok(Applied::Done)
        })?;
        match applied {
            Applied::Done => Ok(password),
            Applied::NoDevice => Err(Error::not_found("device")),
            Applied::Limited => Err(self.resets_refused(row, now)),
        }
    }

    /// Counts a reset by `staff` if they have not used up their resets
    /// for the hour (`false`: nothing counted).
    fn take_reset(&self, staff: &str, now: u64) -> Result<bool, Error> {
        let max = self.config.users.helpdesk_resets_per_hour;
        self.write(now, |w| {
            w.take_address_event(RESETS, staff, resets_since(now), max, now)
        })
    }

    /// Whether `staff` has applied `users.helpdesk_resets_per_hour` resets
    /// in the last hour.
    fn resets_used_up(&self, staff: &str, now: u64) -> Result<bool, Error> {
        let (done, _) = self
            .store
            .address_events(RESETS, staff, resets_since(now))?;
        Ok(done >= self.config.users.helpdesk_resets_per_hour)
    }

    /// Audits `row` as refused for the staff member's resets being used
    /// up, and says so.
    fn resets_refused(&self, row: NewAudit<'_>, now: u64) -> Error {
        let max = self.config.users.helpdesk_resets_per_hour;
        if let Err(e) = self.audit(
            row.with("refused", &format!("{max} resets in the last hour")),
            now,
        ) {
            return e;
        }
        Error::refused(
            Code::TooManyRequests,
            format!(
                "You have applied {max} resets in the last hour (of a password, of methods, \
                 or of an account's last device), the most one staff member may. Ask another \
                 staff member or an administrator, or try again later."
            ),
        )
    }

    /// Forgets the staff members' resets counted more than an hour ago.
    pub fn forget_old_resets(&self, now: u64) -> Result<(), Error> {
        self.write(now, |w| w.purge_limits(RESETS, resets_since(now), now))
    }
}

/// Where a staff member's resets are counted (`address_events`, by the
/// staff member's name), in the database so every instance counts them.
const RESETS: &str = "helpdesk-reset";

/// Whether fixes asked from `ip` count against the staff member's resets:
/// not a command on the server itself (no address), whose user holds the
/// data folder and so administers the server anyway.
fn counts_resets(ip: &str) -> bool {
    !ip.is_empty()
}

/// The start of the hour in which resets count.
fn resets_since(now: u64) -> u64 {
    (now + 1).saturating_sub(3600)
}

/// How a fix's transaction ended.
enum Applied {
    Done,
    /// The device is not the account's (or is gone).
    NoDevice,
    /// The staff member's resets for the hour are used up: nothing changed.
    Limited,
}

/// The reason a fix is given, trimmed: refused if empty or nearly so,
/// not one line of plain text, or too long for the audit log.
fn valid_reason(reason: &str) -> Result<&str, Error> {
    let reason = reason.trim();
    if reason.len() < 3 {
        return Err(Error::invalid(
            "reason_required",
            "Give a reason (it goes into the audit log).",
        ));
    }
    if let Some(c) = countersign_core::text::first_unsafe(reason) {
        return Err(Error::invalid(
            "invalid_reason",
            format!(
                "The reason must be one line of text without control characters (found U+{:04X}).",
                u32::from(c)
            ),
        ));
    }
    if reason.chars().count() > 500 {
        return Err(Error::invalid(
            "reason_too_long",
            "Keep the reason under 500 characters.",
        ));
    }
    Ok(reason)
}

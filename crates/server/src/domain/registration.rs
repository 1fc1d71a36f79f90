//! New User Registration: a request form anyone may send from the sign-in
//! page, queued for an administrator who approves it (creating the account
//! under the temporary-password template) or rejects it with a reason.

use zeroize::Zeroizing;

use crate::domain::Code;
use crate::store::{NewAudit, NewRegistration, UserRow};
use crate::{Error, Server};

/// Requests one address may send in an hour: enough for typing mistakes,
/// too few to flood the administrators' queue.
pub const MAX_PER_IP_PER_HOUR: u64 = 5;

/// A New User Registration form as sent: the request's fields, not yet
/// checked ([`validate`] checks them).
pub type RegistrationForm = NewRegistration;

impl NewRegistration {
    /// A field by its form name (empty for any other name).
    pub fn field(&self, name: &str) -> &str {
        match name {
            "first_name" => &self.first_name,
            "last_name" => &self.last_name,
            "email" => &self.email,
            "agency" => &self.agency,
            "phone" => &self.phone,
            "reason" => &self.reason,
            _ => "",
        }
    }
}

/// The form's fields, checked: each problem gets its own message.
pub fn validate(form: &RegistrationForm) -> Result<NewRegistration, Vec<String>> {
    let field = |name: &str| form.field(name).trim();
    let mut problems = Vec::new();
    let mut text = |name: &str, max: usize, missing: &str| -> String {
        let v = field(name);
        if v.is_empty() {
            problems.push(missing.to_string());
        } else if v.chars().count() > max {
            problems.push(format!(
                "The {} must be at most {max} characters.",
                label(name)
            ));
        } else if v
            .chars()
            // Only the reason may have lines (a form sends them as CR LF).
            .any(|c| {
                countersign_core::text::is_unsafe(c)
                    && !(name == "reason" && matches!(c, '\n' | '\r'))
            })
        {
            problems.push(format!(
                "The {} contains characters that are not allowed.",
                label(name)
            ));
        }
        v.to_string()
    };
    let first_name = text("first_name", 64, "Enter your first name.");
    let last_name = text("last_name", 64, "Enter your last name.");
    let agency = text("agency", 100, "Enter your agency or department.");
    let reason = text("reason", 1000, "Say why you need an account.");
    let email = field("email").to_lowercase();
    if !plausible_email(&email) {
        problems.push("Enter a valid work email address, such as name@agency.gov.".into());
    }
    let phone = field("phone").to_string();
    if !phone.is_empty() && !plausible_phone(&phone) {
        problems.push("Enter a phone number of 7 to 15 digits, or leave it empty.".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(NewRegistration {
        first_name,
        last_name,
        email,
        agency,
        phone,
        reason,
    })
}

fn label(name: &str) -> &'static str {
    match name {
        "first_name" => "first name",
        "last_name" => "last name",
        "agency" => "agency",
        _ => "reason",
    }
}

fn plausible_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.chars().all(|c| c.is_ascii_graphic())
}

fn plausible_phone(p: &str) -> bool {
    let digits = p.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && p.chars()
            .all(|c| c.is_ascii_digit() || "+-(). ".contains(c))
}

impl Server {
    /// Queues a request from `ip`; returns its number.
    pub fn request_registration(
        &self,
        r: &NewRegistration,
        ip: &str,
        now: u64,
    ) -> Result<i64, Error> {
        let row = NewAudit::of("", "registration.request", &r.email, ip);
        // The count and the request are one write: requests sent at once,
        // to any instance, get the limit and no more.
        let queued = self.write(now, |w| {
            if w.registrations_from(ip, now.saturating_sub(3600))? >= MAX_PER_IP_PER_HOUR {
                w.audit(&row.with("refused", "too many requests from this address"))?;
                return Ok(None);
            }
            let id = w.add_registration(r, ip, now)?;
            w.audit(&row.with("queued", &format!("request #{id}")))?;
            Ok(Some(id))
        })?;
        queued.ok_or_else(|| {
            Error::refused(Code::TooManyRequests,
                "Too many requests were sent from this network. Try again in an hour, or call the help desk.",
            )
        })
    }

    /// Approves request `id`: creates `username` from it and returns the
    /// user with the temporary password (to be handed over once).
    pub fn approve_registration(
        &self,
        id: i64,
        username: &str,
        ssn_last4: Option<&str>,
        actor: &str,
        now: u64,
    ) -> Result<(UserRow, Zeroizing<String>), Error> {
        let request = self.pending_registration(id)?;
        let (user, password) = self.add_user(
            username,
            &request.form.first_name,
            &request.form.last_name,
            ssn_last4,
            actor,
            now,
        )?;
        let detail = format!("request #{id}");
        let row = NewAudit::of(actor, "registration.approve", username, "").with("ok", &detail);
        if !self.decide(id, "approved", actor, username, "", &row, now)? {
            return Err(Error::refused(
                Code::AlreadyDecided,
                format!("request #{id} was decided meanwhile; {username} was created anyway"),
            ));
        }
        Ok((user, password))
    }

    /// Rejects request `id` with a reason (kept with it and in the audit log).
    pub fn reject_registration(
        &self,
        id: i64,
        reason: &str,
        actor: &str,
        now: u64,
    ) -> Result<(), Error> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "reason_needed",
                "give a reason for the rejection",
            ));
        }
        let request = self.pending_registration(id)?;
        let detail = format!("request #{id}: {reason}");
        let row = NewAudit::of(actor, "registration.reject", &request.form.email, "")
            .with("rejected", &detail);
        if !self.decide(id, "rejected", actor, "", reason, &row, now)? {
            return Err(Error::refused(
                Code::AlreadyDecided,
                format!("request #{id} was decided meanwhile"),
            ));
        }
        Ok(())
    }

    fn pending_registration(&self, id: i64) -> Result<crate::store::RegistrationRequest, Error> {
        match self.store.registration(id)? {
            Some(r) if r.status == "pending" => Ok(r),
            Some(r) => Err(Error::refused(
                Code::AlreadyDecided,
                format!("request #{id} is {} already", r.status),
            )),
            None => Err(Error::not_found(&format!("request #{id}"))),
        }
    }
}

impl Server {
    /// Decides pending request `id` with its audit row, in one transaction;
    /// `false` when it was decided meanwhile (nothing is written).
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        id: i64,
        status: &str,
        actor: &str,
        username: &str,
        note: &str,
        row: &NewAudit<'_>,
        now: u64,
    ) -> Result<bool, Error> {
        self.write(now, |w| {
            let decided = w.decide_registration(id, status, actor, username, note, now)?;
            if decided {
                w.audit(row)?;
            }
            Ok(decided)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> RegistrationForm {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        serde_json::from_value(serde_json::Value::Object(map)).unwrap()
    }

    const GOOD: &[(&str, &str)] = &[
        ("first_name", " Lois "),
        ("last_name", "Lane"),
        ("email", "Lois.Lane@Metropolis.gov"),
        ("agency", "Metropolis PD"),
        ("phone", "+1 (205) 555-0100"),
        ("reason", "Records access for the fraud unit"),
    ];

    #[test]
    fn a_complete_form_is_taken_trimmed() {
        let r = validate(&form(GOOD)).unwrap();
        assert_eq!(r.first_name, "Lois");
        assert_eq!(r.email, "lois.lane@metropolis.gov");
    }

    #[test]
    fn each_problem_has_its_message() {
        let problems = validate(&form(&[
            ("email", "not-an-email"),
            ("phone", "12"),
            ("agency", &"x".repeat(101)),
        ]))
        .unwrap_err();
        for want in [
            "Enter your first name.",
            "Enter your last name.",
            "The agency must be at most 100 characters.",
            "Say why you need an account.",
            "Enter a valid work email address, such as name@agency.gov.",
            "Enter a phone number of 7 to 15 digits, or leave it empty.",
        ] {
            assert!(problems.iter().any(|p| p == want), "{want} in {problems:?}");
        }
        assert_eq!(problems.len(), 6, "{problems:?}");
    }

    #[test]
    fn odd_emails_are_refused() {
        for bad in [
            "a@b",
            "@x.gov",
            "a@@x.gov",
            "a b@x.gov",
            "a@.gov",
            "a@x.gov.",
        ] {
            let mut f = form(GOOD);
            f.email = bad.into();
            assert!(validate(&f).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_characters_are_refused_except_lines_in_the_reason() {
        for (field, bad) in [
            ("first_name", "Lois\x1b[2J"),
            ("last_name", "Lane\rApproved"),
            ("agency", "PD\u{202E}dp"),
            ("reason", "ok\x1b]0;title\x07"),
        ] {
            let mut good = GOOD.to_vec();
            good.retain(|(k, _)| *k != field);
            good.push((field, bad));
            let f = form(&good);
            let problems = validate(&f).unwrap_err();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("characters that are not allowed")),
                "{field}: {problems:?}"
            );
        }
        let mut f = form(GOOD);
        f.reason = "Records access\r\nfor the fraud unit".into();
        assert!(validate(&f).is_ok());
    }
}

//! TOTP verification: the offline fallback and the help desk's phone check.

use countersign_core::otp::{Algorithm, Otp, OtpKind};

use crate::domain::activation::totp_aad;
use crate::domain::Code;
use crate::store::NewAudit;
use crate::{Error, Server};

impl Server {
    /// Checks a code from any of the user's devices. A time step once
    /// accepted for a device is refused again (replay), and every failure
    /// counts towards the lockout. `Ok(true)` when accepted.
    pub fn verify_totp(
        &self,
        username: &str,
        code: &str,
        actor: &str,
        ip: &str,
        now: u64,
    ) -> Result<bool, Error> {
        let user = self.user(username)?;
        let row = NewAudit::of(actor, "totp.verify", username, ip);
        let audit = |outcome, detail| self.audit(row.with(outcome, detail), now);
        if let Err(e) = self.address_failures.check(ip, now) {
            audit("refused", "too many failures from this address")?;
            return Err(e);
        }
        if user.disabled {
            audit("refused", "disabled")?;
            return Err(Error::refused(
                Code::AccountDisabled,
                "This account is disabled. Contact the help desk.",
            ));
        }
        if user.locked_until > now {
            audit("refused", "locked")?;
            return Err(Error::refused(
                Code::AccountLocked,
                "The account is locked after too many failed attempts.",
            ));
        }
        let devices = self.store.devices_of(user.id)?;
        if devices.is_empty() {
            // Nothing to check a code against: no guess was made, and no
            // failure is counted (an application cannot lock such an
            // account out by sending codes).
            audit("refused", "no authenticator")?;
            return Err(Error::refused(
                Code::NoDevice,
                "The account has no authenticator app to check a code against.",
            ));
        }
        let mut replayed = false;
        for device in devices {
            let secret = self
                .master_key
                .open(&device.totp_secret, totp_aad(&device.id).as_bytes())?;
            let otp = Otp::new(
                &secret,
                Algorithm::parse(&device.totp_algorithm)?,
                device.totp_digits,
                OtpKind::Totp {
                    period: device.totp_period,
                },
            )?;
            if let Some(step) = otp.verify_totp(code, now, self.config.totp.skew) {
                let detail = format!("device {}", device.id);
                let accepted = self.write(now, |w| {
                    let accepted = w.accept_totp_step(&device.id, step)?;
                    if accepted {
                        w.clear_failures(user.id)?;
                        w.audit(&row.with("ok", &detail))?;
                    }
                    Ok(accepted)
                })?;
                if accepted {
                    return Ok(true);
                }
                replayed = true;
            }
        }
        self.address_failures.failed(ip, now);
        let detail = if replayed {
            "code already used"
        } else {
            "wrong code"
        };
        self.write(now, |w| {
            let outcome = match self.count_failure(w, user.id, now)? {
                true => "locked",
                false => "refused",
            };
            w.audit(&row.with(outcome, detail))
        })?;
        Ok(false)
    }
}

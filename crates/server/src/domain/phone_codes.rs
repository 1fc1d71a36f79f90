//! Codes sent to a phone by text or call: sent within the account's
//! sending limit, checked a limited number of times, once, for their
//! purpose.

use countersign_core::methods::PhoneNumber;
use countersign_core::secret::constant_time_eq;

use super::methods::{method_row, Purpose};
use crate::domain::sha256;
use crate::domain::Code;
use crate::infra::telephony::{Channel, Message};
use crate::store::PhoneCode;
use crate::{Error, Server};

/// Wrong entries one phone code survives.
const CODE_ATTEMPTS: u32 = 5;

impl Server {
    /// Sends a six-digit code to `number` (the registered phone when
    /// `None`) by text or call; returns the code's id for the session.
    pub async fn send_phone_code(
        &self,
        username: &str,
        number: Option<&PhoneNumber>,
        channel: Channel,
        purpose: Purpose,
        ip: &str,
        now: u64,
    ) -> Result<String, Error> {
        let action = "method.phone.send";
        let user = self.usable_user(username, action, ip, now)?;
        let to = match number {
            Some(n) => n.as_str().to_string(),
            None => self.store.methods_of(user.id)?.phone.ok_or_else(|| {
                Error::refused(Code::NoPhone, "No phone is registered for this account.")
            })?,
        };
        let t = &self.config.telephony;
        let code = self.random_digits(6)?;
        let id = countersign_core::protocol::random_id(&self.rng)?;
        let sent = PhoneCode {
            id: id.clone(),
            user_id: user.id,
            number: to.clone(),
            channel: channel.as_str().into(),
            purpose: purpose.as_str().into(),
            code_hash: code_hash(&id, &code).to_vec(),
            created_at: now,
            expires_at: now + t.code_minutes * 60,
            attempts: 0,
            used_at: None,
        };
        // The count and the code's row are one write, made before the
        // send: sends started at once, on any instance, get the limit and
        // no more. (A code is no easier to guess for being stored before
        // it is sent.)
        let since = now.saturating_sub(t.window_minutes * 60);
        let limited = self.write(now, |w| {
            if w.phone_codes_since(user.id, since)? >= t.max_per_window {
                w.audit(&method_row(
                    username,
                    action,
                    ip,
                    "refused",
                    "sending limit",
                ))?;
                return Ok(true);
            }
            w.insert_phone_code(&sent)?;
            Ok(false)
        })?;
        if limited {
            return Err(Error::refused(Code::TooManyCodes,
                format!(
                    "Too many codes were sent to this account. Wait {} minutes, or use another method.",
                    t.window_minutes
                ),
            ));
        }
        // The code and the count that limits sending are on disk before
        // the message goes: a message cannot be taken back.
        self.store.commit_now()?;
        let text = zeroize::Zeroizing::new(match channel {
            Channel::Sms => format!(
                "{} verification code: {}. It expires in {} minutes. Never share it.",
                self.config.org_name, *code, t.code_minutes
            ),
            Channel::Voice => {
                let spoken: Vec<String> = code.chars().map(String::from).collect();
                format!(
                    "This is {}. Your verification code is {}. Again, your code is {}.",
                    self.config.org_name,
                    spoken.join(" "),
                    spoken.join(" ")
                )
            }
        });
        let detail = format!(
            "{} to {}",
            channel.as_str(),
            countersign_core::methods::mask(&to)
        );
        let outcome = self
            .telephony
            .send(&Message {
                to: &to,
                channel,
                text: &text,
                at: now,
            })
            .await;
        // The sending's audit row; a failed send counts towards the limit
        // too, but its code cannot be used.
        let result = match outcome {
            Ok(()) => purpose.as_str(),
            Err(_) => "failed",
        };
        self.write(now, |w| {
            if outcome.is_err() {
                w.use_phone_code(&id, now)?;
            }
            w.audit(&method_row(username, action, ip, result, &detail))
        })?;
        outcome.map(|()| id).map_err(Error::from)
    }

    /// Checks a code sent by [`Server::send_phone_code`]. `Ok(Some(number))`
    /// (the phone it went to) when right; `Ok(None)` when wrong; refused
    /// when the code is used, expired, for another purpose, or tried too
    /// often.
    pub fn check_phone_code(
        &self,
        username: &str,
        code_id: &str,
        code: &str,
        purpose: Purpose,
        ip: &str,
        now: u64,
    ) -> Result<Option<String>, Error> {
        let action = "method.phone.check";
        let user = self.usable_user(username, action, ip, now)?;
        let sent = self
            .store
            .phone_code(code_id)?
            .filter(|c| c.user_id == user.id && c.purpose == purpose.as_str());
        let Some(sent) = sent else {
            return Err(Error::refused(Code::NoCode, "Send a new code first."));
        };
        let tried = self.write(now, |w| w.try_phone_code(code_id, CODE_ATTEMPTS, now))?;
        if !tried {
            self.method_audit(
                username,
                action,
                ip,
                "refused",
                "code used, expired or tried too often",
                now,
            )?;
            return Err(Error::refused(
                Code::CodeExpired,
                "That code can no longer be used. Send a new code.",
            ));
        }
        let code = code.trim();
        let right = code.len() == 6 && constant_time_eq(&code_hash(code_id, code), &sent.code_hash);
        if !right {
            self.failed(&user, action, ip, "wrong code", now)?;
            return Ok(None);
        }
        let used = self.write(now, |w| {
            let used = w.use_phone_code(code_id, now)?;
            if used {
                w.clear_failures(user.id)?;
                w.audit(&method_row(username, action, ip, "ok", purpose.as_str()))?;
            }
            Ok(used)
        })?;
        if !used {
            return Err(Error::refused(
                Code::CodeExpired,
                "That code was already used. Send a new code.",
            ));
        }
        Ok(Some(sent.number))
    }
}

/// What is stored of a sent code: SHA-256 over its id and digits.
fn code_hash(id: &str, code: &str) -> [u8; 32] {
    sha256(zeroize::Zeroizing::new(format!("{id}:{code}")).as_bytes())
}

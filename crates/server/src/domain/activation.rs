//! Authenticator enrollment: one-time activation codes and device binding.
//!
//! An activation code is `<id>-<secret>`: the id finds the record, the
//! secret (about 155 bits) is stored only as a SHA-256 hash. Codes are single
//! use, expire after 10 minutes and die after 5 wrong secrets.

use countersign_core::api::{ActivateRequest, ActivateResponse, TotpParams};
use countersign_core::otp::{encode_base32, Algorithm};
use countersign_core::protocol::random_id;
use countersign_core::random::Draws;
use countersign_core::{Enrollment, SecretBytes};
use ring::rand::SecureRandom;

use crate::domain::methods::Authority;
use crate::domain::sha256;
use crate::domain::Code;
use crate::store::{Binding, NewAudit, NewDevice};
use crate::{Error, Server};

/// Seconds an activation code stays valid.
pub const ACTIVATION_TTL: u64 = 600;
/// Wrong secrets after which a code is dead.
pub const MAX_ATTEMPTS: u32 = 5;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl Server {
    fn random_alnum(&self, n: usize) -> Result<zeroize::Zeroizing<String>, Error> {
        Ok(Draws::new(&self.rng).string(ALNUM, n)?)
    }

    /// Issues an enrollment payload for a user (the QR code's content) and
    /// returns it with the activation's public id. Issued on
    /// [`Authority::FirstMethod`], the code binds a device only while the
    /// user has no method at all.
    pub fn enrollment(
        &self,
        username: &str,
        actor: &str,
        authority: Authority,
        now: u64,
    ) -> Result<(Enrollment, String), Error> {
        let user = self.user(username)?;
        let id = self.random_alnum(10)?.to_string();
        let secret = self.random_alnum(26)?;
        self.write(now, |w| {
            w.insert_activation(
                &id,
                user.id,
                &sha256(secret.as_bytes()),
                authority == Authority::FirstMethod,
                now,
                ACTIVATION_TTL,
            )?;
            w.audit(&NewAudit {
                actor,
                action: "device.enroll_link",
                target: &user.username,
                ip: "",
                outcome: "ok",
                detail: &id,
            })
        })?;
        let enrollment = Enrollment {
            server: self.config.public_url(),
            code: format!("{id}-{}", secret.as_str()),
            account: format!("{}@{}", user.username, self.config.email_domain),
            issuer: self.config.org_name.clone(),
            server_key: self.server_key.public_key(),
            pin: self.tls_pin_at(now),
        };
        Ok((enrollment, id))
    }

    /// Binds a device to the user of a valid activation code.
    pub fn activate(
        &self,
        req: &ActivateRequest,
        ip: &str,
        now: u64,
    ) -> Result<ActivateResponse, Error> {
        let invalid = || {
            Error::refused(
                Code::InvalidCode,
                "This activation code is not valid. Scan the QR code again.",
            )
        };
        let (id, secret) = req.code.split_once('-').ok_or_else(invalid)?;
        let row = |target| NewAudit::of("device", "device.activate", target, ip);
        // Guessing codes counts against the address like wrong passwords
        // (and is refused, audited once a minute, past the limit).
        if let Err(e) = self.address_failures.check(ip, now) {
            if self.audit_once_a_minute.take("device.activate", ip, now) {
                self.audit(
                    row("").with("refused", "too many failures from this address"),
                    now,
                )?;
            }
            return Err(e);
        }
        let Some(act) = self.store.activation(id)? else {
            self.address_failures.failed(ip, now);
            self.audit(row("").with("refused", "unknown code"), now)?;
            return Err(invalid());
        };
        let user = self.store.user_by_id(act.user_id)?.ok_or_else(invalid)?;
        let refuse = |outcome: &str, err: Error| -> Result<ActivateResponse, Error> {
            self.audit(row(&user.username).with("refused", outcome), now)?;
            Err(err)
        };
        // The tries are limited first; then only the holder of the whole
        // code learns whether it was used or has expired.
        if act.attempts >= MAX_ATTEMPTS {
            return refuse(
                "too_many_attempts",
                Error::refused(
                    Code::TooManyAttempts,
                    "Too many wrong codes. Ask for a new QR code.",
                ),
            );
        }
        if !countersign_core::secret::constant_time_eq(&sha256(secret.as_bytes()), &act.secret_hash)
        {
            self.address_failures.failed(ip, now);
            self.write(now, |w| {
                w.count_activation_attempt(id)?;
                w.audit(&row(&user.username).with("refused", "wrong secret"))
            })?;
            return Err(invalid());
        }
        if act.used_at.is_some() {
            return refuse(
                "used",
                Error::refused(
                    Code::CodeUsed,
                    "This activation code was already used. Ask for a new QR code.",
                ),
            );
        }
        if now >= act.expires_at {
            return refuse(
                "expired",
                Error::refused(
                    Code::CodeExpired,
                    "This activation code has expired. Ask for a new QR code.",
                ),
            );
        }
        // Each field is checked as sent (a trailing control character is
        // refused, not trimmed away), then its trimmed length in bytes.
        let fields = [
            (
                "device name",
                "invalid_device_name",
                &req.device_name,
                1..=64,
            ),
            ("platform", "invalid_platform", &req.platform, 1..=16),
            (
                "app version",
                "invalid_app_version",
                &req.app_version,
                0..=32,
            ),
        ];
        for (what, code, value, bytes) in fields {
            if let Some(c) = countersign_core::text::first_unsafe(value) {
                return refuse(
                    "control character",
                    Error::invalid(
                        code,
                        format!(
                            "the {what} must not contain control characters (found U+{:04X})",
                            u32::from(c)
                        ),
                    ),
                );
            }
            if !bytes.contains(&value.trim().len()) {
                return refuse(
                    what,
                    Error::invalid(
                        code,
                        format!(
                            "the {what} must be {}–{} bytes long",
                            bytes.start(),
                            bytes.end()
                        ),
                    ),
                );
            }
        }
        let (name, platform) = (req.device_name.trim(), req.platform.trim());

        let device_id = random_id(&self.rng)?;
        let mut token = [0u8; 32];
        self.rng
            .fill(&mut token)
            .map_err(|_| Error::Internal("random generator failed".into()))?;
        let channel_token = zeroize::Zeroizing::new(data_encoding::BASE64URL_NOPAD.encode(&token));
        let mut secret_bytes = vec![0u8; 20];
        self.rng
            .fill(&mut secret_bytes)
            .map_err(|_| Error::Internal("random generator failed".into()))?;
        let totp_secret = SecretBytes::new(secret_bytes);
        let sealed = self.master_key.seal(
            &self.rng,
            totp_secret.expose(),
            totp_aad(&device_id).as_bytes(),
        )?;
        let t = &self.config.totp;
        let device = NewDevice {
            id: &device_id,
            user_id: user.id,
            name,
            platform,
            app_version: &req.app_version,
            public_key: &req.device_key.0,
            receipt_key: req.receipt_key.as_ref().map(|k| &k.0),
            token_hash: &sha256(channel_token.as_bytes()),
            totp_secret: &sealed,
            totp_algorithm: Algorithm::Sha1.as_str(),
            totp_digits: t.digits,
            totp_period: t.period,
        };
        let detail = format!("device {device_id} ({name}, {platform})");
        let bound = self.write(now, |w| {
            let bound = w.complete_activation(id, &device, now)?;
            if bound == Binding::Bound {
                w.audit(&row(&user.username).with("ok", &detail))?;
            }
            Ok(bound)
        })?;
        match bound {
            Binding::Bound => {}
            Binding::CodeUsed => {
                return refuse(
                    "used",
                    Error::refused(Code::CodeUsed,
                        "This activation code was already used. Ask for a new QR code.",
                    ),
                )
            }
            Binding::AccountHasMethod => {
                return refuse(
                    "account has a method now",
                    Error::refused(Code::CodeVoid,
                        "This QR code is no longer valid: the account's sign-in methods changed. Sign in again to add the app.",
                    ),
                )
            }
        }
        Ok(ActivateResponse {
            device_id,
            channel_token: channel_token.to_string(),
            account: format!("{}@{}", user.username, self.config.email_domain),
            issuer: self.config.org_name.clone(),
            totp: TotpParams {
                secret: encode_base32(&totp_secret).to_string(),
                algorithm: Algorithm::Sha1,
                digits: t.digits,
                period: t.period,
            },
            server_time: now,
            pin_update: self.pin_update_at(now),
        })
    }
}

/// The QR code of an enrollment payload as a PNG, `module` pixels a
/// square (shown on the registration page, written by `user enroll`).
pub fn qr_png(payload: &str, module: u32) -> Result<Vec<u8>, Error> {
    let code = qrcode::QrCode::new(payload.as_bytes())
        .map_err(|e| Error::Internal(format!("QR code: {e}")))?;
    let img = code
        .render::<image::Luma<u8>>()
        .module_dimensions(module, module)
        .build();
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Internal(format!("QR code: {e}")))?;
    Ok(png)
}

/// Associated data binding a sealed TOTP secret to its device row.
pub fn totp_aad(device_id: &str) -> String {
    format!("device/{device_id}/totp")
}

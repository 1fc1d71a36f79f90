//! Accounts in the vault: OTP accounts from otpauth URIs and push accounts
//! from enrollment, their codes, names and order.

use countersign_core::key_update::PinTrust;
use countersign_core::otp::{Algorithm, Otp, OtpKind};
use countersign_core::protocol::random_id;
use countersign_core::{OtpAccount, Passcode, PublicKey, SecretBytes, SigningKey};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::vault::{receipt_key_aad, secret_aad, signing_key_aad, token_aad, Vault};
use crate::Error;

/// What an account does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Time-based codes.
    Totp,
    /// Counter-based codes.
    Hotp,
    /// Sign-in approval with a TOTP fallback.
    Push,
}

impl AccountKind {
    fn as_str(self) -> &'static str {
        match self {
            AccountKind::Totp => "totp",
            AccountKind::Hotp => "hotp",
            AccountKind::Push => "push",
        }
    }
}

/// Where a push account's server is and how to trust it.
#[derive(Debug, Clone, Serialize)]
pub struct PushInfo {
    /// Server base URL.
    pub server_url: String,
    /// Key that signs the server's challenges.
    pub server_key: PublicKey,
    /// TLS pin, if any.
    #[serde(skip)]
    pub pin: Option<[u8; 32]>,
    /// While the server switches TLS keys: the next key's pin and the
    /// server time it switches at (see [`countersign_core::key_update`]).
    #[serde(skip)]
    pub next_pin: Option<([u8; 32], u64)>,
    /// This device's id on the server.
    pub device_id: String,
    /// What of the stored trust is damaged, if anything: such an account
    /// is refused (see [`crate::push::client_for`]), never trusted less.
    #[serde(skip)]
    pub damaged: Option<&'static str>,
}

/// An account as listed (no secrets).
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    /// Id in the vault.
    pub id: String,
    /// Place in the list, from 0.
    pub position: i64,
    /// Issuer, e.g. `ALEA`.
    pub issuer: Option<String>,
    /// Account name, e.g. `cs0101@alacop.gov`.
    pub name: String,
    /// TOTP, HOTP or push.
    pub kind: AccountKind,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u32,
    /// TOTP period.
    pub period: u32,
    /// HOTP counter (next code).
    pub counter: u64,
    /// Push details.
    pub push: Option<PushInfo>,
}

impl PushInfo {
    /// The TLS pins this account trusts; `None` for a server trusted
    /// through the web PKI.
    pub fn pin_trust(&self) -> Option<PinTrust> {
        self.pin.map(|pin| PinTrust {
            pin,
            next: self.next_pin,
        })
    }
}

impl Account {
    /// `Issuer (name)` or the name.
    pub fn label(&self) -> String {
        match &self.issuer {
            Some(i) => format!("{i} ({})", self.name),
            None => self.name.clone(),
        }
    }
}

/// A code to show.
#[derive(Debug, Clone, Serialize)]
pub struct Code {
    /// The account.
    pub account: String,
    /// Account id.
    pub id: String,
    /// The code.
    pub code: String,
    /// Seconds until it changes (0 for HOTP).
    pub seconds_left: u64,
}

/// A new push account, after activation.
pub struct NewPush<'a> {
    /// Issuer.
    pub issuer: &'a str,
    /// Account name.
    pub name: &'a str,
    /// Server details.
    pub push: PushInfo,
    /// Offline fallback secret.
    pub totp_secret: &'a SecretBytes,
    /// Its parameters.
    pub algorithm: Algorithm,
    /// Digits.
    pub digits: u32,
    /// Period.
    pub period: u32,
    /// Channel token.
    pub channel_token: &'a str,
    /// The device key, sealed under the passcode key.
    pub signing_key: &'a SigningKey,
    /// The receipt key, sealed under the data key (usable while unlocked,
    /// without the passcode: it only acknowledges requests).
    pub receipt_key: &'a SigningKey,
}

const COLUMNS: &str =
    "id, position, issuer, name, kind, algorithm, digits, period, counter, server_url, server_key, pin, device_id, next_pin, pin_switch_at";

fn account(r: &Row<'_>) -> rusqlite::Result<Account> {
    let kind: String = r.get(4)?;
    let algorithm: String = r.get(5)?;
    let server_url: Option<String> = r.get(9)?;
    let push = match server_url {
        Some(server_url) => {
            let key: Vec<u8> = r.get(10)?;
            let pin: Option<Vec<u8>> = r.get(11)?;
            let key: Result<[u8; 32], _> = key.try_into();
            let pin: Option<Result<[u8; 32], _>> = pin.map(|p| p.try_into());
            let next: Option<Vec<u8>> = r.get(13)?;
            let switch_at: Option<i64> = r.get(14)?;
            let next = next.map(<[u8; 32]>::try_from);
            let damaged = match (&key, &pin, &next) {
                (Err(_), _, _) => Some("server key"),
                (_, Some(Err(_)), _) | (_, _, Some(Err(_))) => Some("TLS pin"),
                _ => None,
            };
            Some(PushInfo {
                server_url,
                server_key: PublicKey(key.unwrap_or([0; 32])),
                pin: pin.and_then(Result::ok),
                next_pin: next
                    .and_then(Result::ok)
                    .map(|p| (p, switch_at.unwrap_or(0).max(0) as u64)),
                device_id: r.get(12)?,
                damaged,
            })
        }
        None => None,
    };
    Ok(Account {
        id: r.get(0)?,
        position: r.get(1)?,
        issuer: r.get(2)?,
        name: r.get(3)?,
        kind: match kind.as_str() {
            "hotp" => AccountKind::Hotp,
            "push" => AccountKind::Push,
            _ => AccountKind::Totp,
        },
        algorithm: Algorithm::parse(&algorithm).unwrap_or_default(),
        digits: r.get(6)?,
        period: r.get(7)?,
        counter: r.get::<_, i64>(8)? as u64,
        push,
    })
}

impl Vault {
    /// Every account, in list order.
    pub fn accounts(&self) -> Result<Vec<Account>, Error> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM accounts ORDER BY position, created_at"
        ))?;
        let rows = stmt.query_map([], account)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The account whose id is `query`, or whose label contains it
    /// (case-insensitive); exactly one must match.
    pub fn find(&self, query: &str) -> Result<Account, Error> {
        let all = self.accounts()?;
        if let Some(a) = all.iter().find(|a| a.id == query) {
            return Ok(a.clone());
        }
        let q = query.to_lowercase();
        let mut hits: Vec<Account> = all
            .into_iter()
            .filter(|a| a.label().to_lowercase().contains(&q))
            .collect();
        match hits.len() {
            0 => Err(Error::NoAccount(query.into())),
            1 => Ok(hits.remove(0)),
            _ => Err(Error::Ambiguous(query.into())),
        }
    }

    fn next_position(&self) -> Result<i64, Error> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM accounts",
            [],
            |r| r.get(0),
        )?)
    }

    fn check_duplicate(
        &mut self,
        issuer: Option<&str>,
        name: &str,
        fingerprint: &[u8],
    ) -> Result<(), Error> {
        let dup: Option<(Option<String>, String)> = self
            .conn
            .query_row(
                "SELECT issuer, name FROM accounts WHERE fingerprint = ?1 OR (name = ?2 AND COALESCE(issuer, '') = ?3)",
                params![fingerprint, name, issuer.unwrap_or("")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match dup {
            Some((Some(i), n)) => Err(Error::Duplicate(format!("{i} ({n})"))),
            Some((None, n)) => Err(Error::Duplicate(n)),
            None => Ok(()),
        }
    }

    /// Adds an OTP account; an account with the same secret or the same
    /// issuer and name is reported as a duplicate.
    pub fn add_otp(&mut self, a: &OtpAccount, now: u64) -> Result<Account, Error> {
        let fingerprint = self.fingerprint(a.secret.expose())?;
        self.check_duplicate(a.issuer.as_deref(), &a.account, &fingerprint)?;
        let id = random_id(&self.rng)?;
        let sealed = self.seal(a.secret.expose(), &secret_aad(&id))?;
        let (kind, period, counter) = match a.kind {
            OtpKind::Totp { period } => (AccountKind::Totp, period, 0),
            OtpKind::Hotp { counter } => (AccountKind::Hotp, 30, counter),
        };
        self.conn.execute(
            "INSERT INTO accounts (id, position, issuer, name, kind, algorithm, digits, period, counter, secret, fingerprint, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                id,
                self.next_position()?,
                a.issuer,
                a.account,
                kind.as_str(),
                a.algorithm.as_str(),
                a.digits,
                period,
                counter as i64,
                sealed,
                fingerprint,
                now
            ],
        )?;
        self.find(&id)
    }

    /// Adds a push account; `kek` is the passcode key that seals the device key.
    pub fn add_push(
        &mut self,
        p: &NewPush<'_>,
        kek: &countersign_core::vault::SealingKey,
        now: u64,
    ) -> Result<Account, Error> {
        let fingerprint = self.fingerprint(p.totp_secret.expose())?;
        self.check_duplicate(Some(p.issuer), p.name, &fingerprint)?;
        let id = random_id(&self.rng)?;
        let secret = self.seal(p.totp_secret.expose(), &secret_aad(&id))?;
        let token = self.seal(p.channel_token.as_bytes(), &token_aad(&id))?;
        let signing = kek.seal(
            &self.rng,
            p.signing_key.pkcs8().expose(),
            signing_key_aad(&id).as_bytes(),
        )?;
        let receipt = self.seal(p.receipt_key.pkcs8().expose(), &receipt_key_aad(&id))?;
        self.conn.execute(
            "INSERT INTO accounts (id, position, issuer, name, kind, algorithm, digits, period, secret, fingerprint, created_at, \
             server_url, server_key, pin, device_id, channel_token, signing_key, receipt_key, next_pin, pin_switch_at) \
             VALUES (?1, ?2, ?3, ?4, 'push', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            params![
                id,
                self.next_position()?,
                p.issuer,
                p.name,
                p.algorithm.as_str(),
                p.digits,
                p.period,
                secret,
                fingerprint,
                now,
                p.push.server_url,
                &p.push.server_key.0[..],
                p.push.pin.map(|x| x.to_vec()),
                p.push.device_id,
                token,
                signing,
                receipt,
                p.push.next_pin.map(|(pin, _)| pin.to_vec()),
                p.push.next_pin.map(|(_, at)| at as i64)
            ],
        )?;
        self.find(&id)
    }

    /// The account's secret, opened with the data key.
    pub(crate) fn secret(&mut self, id: &str) -> Result<SecretBytes, Error> {
        let blob: Vec<u8> =
            self.conn
                .query_row("SELECT secret FROM accounts WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        self.open_sealed(&blob, &secret_aad(id))
    }

    /// A push account's channel token.
    pub(crate) fn channel_token(&mut self, id: &str) -> Result<SecretBytes, Error> {
        let blob: Vec<u8> = self.conn.query_row(
            "SELECT channel_token FROM accounts WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        self.open_sealed(&blob, &token_aad(id))
    }

    /// A push account's receipt key (`None` for accounts enrolled before
    /// receipt keys existed).
    pub(crate) fn receipt_key(&mut self, id: &str) -> Result<Option<SigningKey>, Error> {
        let blob: Option<Vec<u8>> = self.conn.query_row(
            "SELECT receipt_key FROM accounts WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        match blob {
            Some(b) => {
                let pkcs8 = self.open_sealed(&b, &receipt_key_aad(id))?;
                Ok(Some(SigningKey::from_pkcs8(pkcs8.expose())?))
            }
            None => Ok(None),
        }
    }

    /// A push account's device key: needs the passcode; a wrong one counts.
    pub(crate) fn signing_key(
        &mut self,
        id: &str,
        passcode: &Passcode,
        now: u64,
    ) -> Result<SigningKey, Error> {
        let kek = self.passcode_key(passcode, now)?;
        let blob: Vec<u8> = self.conn.query_row(
            "SELECT signing_key FROM accounts WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        match kek.open(&blob, signing_key_aad(id).as_bytes()) {
            Ok(pkcs8) => {
                self.passcode_ok()?;
                Ok(SigningKey::from_pkcs8(pkcs8.expose())?)
            }
            Err(_) => Err(self.passcode_failed(now)?),
        }
    }

    /// The current code of an account. For HOTP the counter advances and is
    /// stored in the same statement that reads it, so no code repeats.
    pub fn code(&mut self, a: &Account, now: u64) -> Result<Code, Error> {
        let secret = self.secret(&a.id)?;
        let kind = match a.kind {
            AccountKind::Hotp => {
                let counter: i64 = self.conn.query_row(
                    "UPDATE accounts SET counter = counter + 1 WHERE id = ?1 RETURNING counter - 1",
                    [&a.id],
                    |r| r.get(0),
                )?;
                OtpKind::Hotp {
                    counter: counter as u64,
                }
            }
            _ => OtpKind::Totp { period: a.period },
        };
        let otp = Otp::new(&secret, a.algorithm, a.digits, kind)?;
        Ok(Code {
            account: a.label(),
            id: a.id.clone(),
            code: otp.code(now),
            seconds_left: otp.seconds_left(now),
        })
    }

    /// Renames an account.
    pub fn rename(&mut self, id: &str, name: &str) -> Result<(), Error> {
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(Error::Core(countersign_core::Error::Field {
                field: "name",
                problem: "must be 1–128 characters".into(),
            }));
        }
        self.conn.execute(
            "UPDATE accounts SET name = ?2 WHERE id = ?1",
            params![id, name],
        )?;
        Ok(())
    }

    /// Trusts `key` as the push account's server signing key from now on:
    /// its server rotated its key, and the old one vouched for the new
    /// (see [`countersign_core::key_update`]).
    pub fn set_server_key(&mut self, id: &str, key: &PublicKey) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE accounts SET server_key = ?2 WHERE id = ?1 AND server_url IS NOT NULL",
            params![id, &key.0[..]],
        )?;
        Ok(())
    }

    /// Stores the TLS pins a push account trusts, as its server's key
    /// switch moves them (see [`countersign_core::key_update::PinTrust`]).
    pub fn set_pin_trust(&mut self, id: &str, trust: &PinTrust) -> Result<(), Error> {
        let (next, at) = match trust.next {
            Some((pin, at)) => (Some(pin.to_vec()), Some(at as i64)),
            None => (None, None),
        };
        self.conn.execute(
            "UPDATE accounts SET pin = ?2, next_pin = ?3, pin_switch_at = ?4 \
             WHERE id = ?1 AND server_url IS NOT NULL AND pin IS NOT NULL",
            params![id, &trust.pin[..], next, at],
        )?;
        Ok(())
    }

    /// Moves an account to `position` (0 = top), shifting the others.
    pub fn move_to(&mut self, id: &str, position: usize) -> Result<(), Error> {
        let mut ids: Vec<String> = self
            .accounts()?
            .into_iter()
            .map(|a| a.id)
            .filter(|x| x != id)
            .collect();
        ids.insert(position.min(ids.len()), id.to_string());
        let tx = self.conn.transaction()?;
        for (i, x) in ids.iter().enumerate() {
            tx.execute(
                "UPDATE accounts SET position = ?2 WHERE id = ?1",
                params![x, i as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes an account from the vault.
    pub fn remove(&mut self, id: &str) -> Result<(), Error> {
        self.conn
            .execute("DELETE FROM accounts WHERE id = ?1", [id])?;
        Ok(())
    }
}

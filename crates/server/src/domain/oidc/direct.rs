//! The direct MFA API, for applications that keep their own passwords (the
//! shape of Duo's Auth API and privacyIDEA's `/validate/check`): a
//! registered confidential application asks Countersign to run the second
//! factor for a named officer — a number-matched push, whose number the
//! application shows, or a code the application collected from the
//! officer's app — and reads the verdict with its `amr`.

use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::ChallengeKind;

use super::Client;
use crate::domain::push::{Created, Origin};
use crate::domain::{Code, Error, Server};

/// A verdict as the application reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVerdict {
    /// Where the challenge stands.
    pub status: ChallengeStatus,
    /// The methods used, when approved (`swk`, `user`); empty otherwise.
    pub amr: Vec<&'static str>,
}

fn not_confidential() -> Error {
    Error::refused(
        Code::InvalidClient,
        "the direct MFA API is for confidential applications (with a secret)",
    )
}

impl Server {
    /// Sends a number-matched push for `username` on behalf of `client`:
    /// a sign-in challenge that names the application.
    pub fn api_push(
        &self,
        client: &Client,
        username: &str,
        ip: &str,
        location: &str,
        now_ms: u64,
    ) -> Result<Created, Error> {
        if client.is_public() {
            return Err(not_confidential());
        }
        // The prompt shows it as the officer's address: it must be one.
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(
                "invalid_input",
                "ip must be an IPv4 or IPv6 address",
            ));
        }
        let actor = format!("client:{}", client.id);
        let origin = Origin {
            application: &client.name,
            ip,
            location,
            kind: ChallengeKind::SignIn,
            actor: &actor,
        };
        let created = self.create_challenge(username, None, &origin, now_ms)?;
        self.write(now_ms / 1000, |w| {
            w.insert_api_challenge(&created.challenge_id, &client.id, now_ms / 1000)
        })?;
        Ok(created)
    }

    /// Where `client`'s push stands; another application's, or none, is
    /// "not found".
    pub fn api_push_verdict(
        &self,
        client: &Client,
        challenge_id: &str,
        now: u64,
    ) -> Result<ApiVerdict, Error> {
        if self.store.api_challenge_client(challenge_id)?.as_deref() != Some(client.id.as_str()) {
            return Err(Error::not_found("challenge"));
        }
        let (_, status) = self.challenge_status(challenge_id, now)?;
        Ok(ApiVerdict {
            status,
            amr: if status == ChallengeStatus::Approved {
                vec!["swk", "user"]
            } else {
                Vec::new()
            },
        })
    }

    /// Checks a code from the officer's app for `client`; the amr when
    /// accepted (`otp`), `None` when not.
    pub fn api_check_code(
        &self,
        client: &Client,
        username: &str,
        code: &str,
        ip: &str,
        now: u64,
    ) -> Result<Option<Vec<&'static str>>, Error> {
        if client.is_public() {
            return Err(not_confidential());
        }
        let actor = format!("client:{}", client.id);
        Ok(self
            .verify_totp(username, code, &actor, ip, now)?
            .then(|| vec!["otp"]))
    }
}

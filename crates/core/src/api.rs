//! JSON bodies of the device API, shared by the server and the device so
//! both sides agree on one definition.

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::otp::Algorithm;

/// `POST /api/v1/devices/activate`.
#[derive(Clone, Serialize, Deserialize)]
pub struct ActivateRequest {
    /// The one-time activation code from the enrollment payload.
    pub code: String,
    /// The device's new Ed25519 public key; answers are signed with it.
    pub device_key: PublicKey,
    /// The key of the device's delivery and shown receipts. Its private
    /// half is usable without the passcode, so it can only acknowledge a
    /// request, never answer one.
    #[serde(default)]
    pub receipt_key: Option<PublicKey>,
    /// A name the person recognises, e.g. "Clark's phone".
    pub device_name: String,
    /// `linux`, `android`, `ios`, `windows`, `macos` or `cli`.
    pub platform: String,
    /// The app's version.
    #[serde(default)]
    pub app_version: String,
}

impl std::fmt::Debug for ActivateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivateRequest")
            .field("code", &"<redacted>")
            .field("device_key", &self.device_key)
            .field("device_name", &self.device_name)
            .field("platform", &self.platform)
            .finish()
    }
}

/// TOTP parameters of the offline fallback.
#[derive(Clone, Serialize, Deserialize)]
pub struct TotpParams {
    /// Base32 secret.
    pub secret: String,
    /// HMAC hash.
    pub algorithm: Algorithm,
    /// Code length.
    pub digits: u32,
    /// Seconds per step.
    pub period: u32,
}

impl TotpParams {
    /// The codes these parameters give.
    pub fn otp(&self) -> Result<crate::otp::Otp, crate::Error> {
        crate::otp::Otp::new(
            &crate::otp::decode_base32(&self.secret)?,
            self.algorithm,
            self.digits,
            crate::otp::OtpKind::Totp {
                period: self.period,
            },
        )
    }
}

impl std::fmt::Debug for TotpParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TotpParams({:?}, {} digits, {} s)",
            self.algorithm, self.digits, self.period
        )
    }
}

/// Answer to a successful activation.
#[derive(Clone, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// The device's id on the server.
    pub device_id: String,
    /// Bearer token for the challenge channel (shown once, stored hashed).
    pub channel_token: String,
    /// The account enrolled.
    pub account: String,
    /// The issuer.
    pub issuer: String,
    /// Offline fallback.
    pub totp: TotpParams,
    /// Server Unix time.
    pub server_time: u64,
    /// While the server switches TLS keys: the next key's announcement,
    /// as envelopes carry it (see [`crate::key_update::PinUpdate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_update: Option<crate::key_update::PinUpdate>,
}

impl std::fmt::Debug for ActivateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivateResponse")
            .field("device_id", &self.device_id)
            .field("channel_token", &"<redacted>")
            .field("account", &self.account)
            .field("totp", &self.totp)
            .finish()
    }
}

/// Where a challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeStatus {
    /// Waiting for the device.
    Pending,
    /// Approved with the right number.
    Approved,
    /// Denied by the person.
    Denied,
    /// Reported as fraud; pushes for the account are blocked.
    Reported,
    /// Approved with a wrong number: the sign-in fails.
    NumberMismatch,
    /// Not answered in time.
    Expired,
}

impl ChallengeStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeStatus::Pending => "pending",
            ChallengeStatus::Approved => "approved",
            ChallengeStatus::Denied => "denied",
            ChallengeStatus::Reported => "reported",
            ChallengeStatus::NumberMismatch => "number_mismatch",
            ChallengeStatus::Expired => "expired",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ChallengeStatus::Pending,
            ChallengeStatus::Approved,
            ChallengeStatus::Denied,
            ChallengeStatus::Reported,
            ChallengeStatus::NumberMismatch,
            ChallengeStatus::Expired,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// True once nothing can change it any more.
    pub fn is_final(self) -> bool {
        self != ChallengeStatus::Pending
    }
}

/// The server's verdict on a response, or a challenge's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// The challenge.
    pub challenge_id: String,
    /// Where it stands.
    pub status: ChallengeStatus,
}

/// An API error body: a stable code to branch on and a plain message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, e.g. `invalid_code`.
    pub code: String,
    /// For people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in [
            "pending",
            "approved",
            "denied",
            "reported",
            "number_mismatch",
            "expired",
        ] {
            let st = ChallengeStatus::parse(s).unwrap();
            assert_eq!(st.as_str(), s);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{s}\""));
        }
        assert!(ChallengeStatus::parse("nope").is_none());
    }

    #[test]
    fn debug_hides_codes_tokens_and_secrets() {
        let r = ActivateResponse {
            device_id: "d".into(),
            channel_token: "TOKEN123".into(),
            account: "a".into(),
            issuer: "i".into(),
            totp: TotpParams {
                secret: "JBSWY3DPEHPK3PXP".into(),
                algorithm: Algorithm::Sha1,
                digits: 6,
                period: 30,
            },
            server_time: 0,
            pin_update: None,
        };
        let s = format!("{r:?}");
        assert!(!s.contains("TOKEN123") && !s.contains("JBSWY3DP"), "{s}");
    }
}

//! The settings in force when the file leaves them out (OPERATIONS.md
//! lists them).

use super::*;
use countersign_core::password::DEFAULT_TEMPLATE;

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max: 0,
            per_address: 256,
            header_timeout_seconds: 10,
            handshake_timeout_seconds: 10,
        }
    }
}

impl Default for TelephonyConfig {
    fn default() -> Self {
        TelephonyConfig {
            mode: TelephonyMode::Outbox,
            outbox_dir: None,
            webhook_url: String::new(),
            webhook_token_env: "COUNTERSIGN_TELEPHONY_TOKEN".into(),
            code_minutes: 5,
            max_per_window: 5,
            window_minutes: 15,
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            application: "ALEA Portal".into(),
            return_to_allow: Vec::new(),
            stay_signed_in_days: 30,
            session_minutes: 480,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            org_name: "ALEA".into(),
            email_domain: "alacop.gov".into(),
            banner: "You are accessing a restricted information system. Usage may be monitored, recorded and subject to audit. Unauthorized use is prohibited and subject to criminal and civil penalties.".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_url: String::new(),
            tls: TlsConfig::default(),
            password: PasswordPolicy::default(),
            lockout: LockoutConfig::default(),
            push: PushConfig::default(),
            totp: TotpConfig::default(),
            users: UsersConfig::default(),
            log: LogConfig::default(),
            web: WebConfig::default(),
            telephony: TelephonyConfig::default(),
            connections: ConnectionsConfig::default(),
            oidc: OidcConfig::default(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::SelfSigned,
            cert_file: None,
            key_file: None,
        }
    }
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 5,
            minutes: 10,
            per_address_failures: 30,
            per_address_minutes: 15,
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            ttl_seconds: 60,
            max_per_window: 5,
            window_minutes: 15,
        }
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            skew: 1,
            digits: 6,
            period: 30,
        }
    }
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            temporary_password_template: DEFAULT_TEMPLATE.into(),
            skip_setup_hours: 24,
            temporary_password_days: 7,
        }
    }
}

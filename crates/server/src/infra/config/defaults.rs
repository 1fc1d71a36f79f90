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
            workers: 0,
        }
    }
}

impl ConnectionsConfig {
    /// The threads that serve connections: `workers`, or when it is 0 one
    /// fewer than the cores, at least one. The core left over goes to
    /// what runs beside them (password hashing, blocking work handed off,
    /// and on a small machine the database or the balancer): on two cores one
    /// worker measured faster and cheaper than two (docs/PERFORMANCE.md).
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }
            n => n,
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
            logo: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            org_name: "ALEA".into(),
            email_domain: "alacop.gov".into(),
            // The seed guides' notice, word for word: an officer who does
            // not see it is not on the portal (guide 002).
            banner: "WARNING This site is intended strictly for official law enforcement and criminal justice use only. It is a violation of Alabama State law to attempt to enter this site without possessing the appropriate credentials. All transactions are monitored and logged. The use of publicly accessible computers (e.g. libraries, airports, cafes, hotels, etc.) to access this information system is strictly prohibited. Any unauthorized access of this system or unauthorized use of the information on this system by authorized users or others is prohibited and is subject to criminal and administrative penalties under federal and state laws.".into(),
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
            store: StoreConfig::default(),
            metrics: MetricsConfig::default(),
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
            helpdesk_resets_per_hour: 20,
        }
    }
}

//! The server's shared state, built once at start and passed to every
//! handler and subcommand.

use countersign_core::vault::SealingKey;
use countersign_core::SigningKey;
use ring::rand::SystemRandom;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::domain::limits::AddressLimiter;
use crate::domain::push::Hub;
use crate::domain::shared_keys::SharedKeys;
use crate::infra::config::Config;
use crate::infra::datadir::DataDir;
use crate::infra::telephony::Gateway;
use crate::store::{Event, NewAudit, Order, Store, StoreError, Write};
use crate::Error;

/// Everything a request needs.
pub struct Server {
    /// Validated configuration.
    pub config: Config,
    /// The database (shared with the thread that follows other instances).
    pub store: Arc<Store>,
    /// Signs challenge envelopes.
    pub server_key: SigningKey,
    /// While a rotated signing key retires: the current key vouched for by
    /// the old one, sent with every envelope (see [`crate::domain::keys`]).
    pub key_update: Option<countersign_core::key_update::KeyUpdate>,
    /// Seals stored TOTP secrets.
    pub master_key: SealingKey,
    /// SHA-256 of the admin token.
    pub admin_token_hash: [u8; 32],
    /// SHA-256 of the TLS certificate's SPKI, when devices should pin it.
    pub tls_pin: Option<[u8; 32]>,
    /// While a new TLS key is staged: its pin and switch time, announced
    /// with every envelope until then (see [`crate::infra::tls`]).
    pub pin_update: Option<countersign_core::key_update::PinUpdate>,
    /// The staged TLS key, if any (see [`crate::infra::tls`]).
    pub tls_next: Option<crate::infra::tls::NextKey>,
    /// Live channels to devices and sign-in pages.
    pub hub: Arc<Hub>,
    /// On PostgreSQL: the keys this instance shares with the others.
    pub shared_keys: Option<Arc<SharedKeys>>,
    /// Randomness.
    pub rng: SystemRandom,
    /// Failed password and code attempts per network address.
    pub address_failures: AddressLimiter,
    /// Refusals audited at most once a minute per address: refused
    /// `return_to` links, and activation guesses past the address limit (a
    /// flood must not flood the audit log).
    pub audit_once_a_minute: AddressLimiter,
    /// Sends codes by text and call.
    pub telephony: Gateway,
    /// MACs the recovery CAPTCHA's answer kept in the browser.
    pub web_key: ring::hmac::Key,
    /// The threads that hash passwords and answers (see [`Server::hashing`]).
    hashing: crate::infra::hashing::Hashing,
    /// Recovery CAPTCHAs already tried.
    pub used_captchas: crate::domain::captcha::UsedCaptchas,
    /// Posts logout tokens to applications.
    pub backchannel: crate::infra::backchannel::BackChannelClient,
    /// Signs ID and logout tokens.
    pub token_keys: crate::infra::token_keys::TokenKeys,
    /// The applications registered in the configuration file, checked.
    pub config_clients: Vec<crate::domain::oidc::Client>,
    /// Figures for Prometheus (see [`crate::infra::metrics`]).
    pub metrics: Arc<crate::infra::metrics::Metrics>,
    /// Counts audit rows written by this process, so live help-desk views
    /// wake when something happens instead of polling the database.
    audit_written: watch::Sender<u64>,
    /// On PostgreSQL, for a serving instance: the connection holding the
    /// lock that keeps key rotations away, taken before the keys were
    /// read, until the thread that follows other instances takes it over.
    presence: std::sync::Mutex<Option<crate::store::Presence>>,
}

impl Server {
    /// Opens the data folder's database and keys.
    pub fn open(config: Config, dir: &DataDir) -> anyhow::Result<Self> {
        Self::open_as(config, dir, false)
    }

    /// [`Server::open`] for `serve`: on PostgreSQL, the lock that keeps
    /// key rotations away is taken before any key is read (waiting while
    /// a rotation runs).
    pub fn open_serving(config: Config, dir: &DataDir) -> anyhow::Result<Self> {
        Self::open_as(config, dir, true)
    }

    fn open_as(config: Config, dir: &DataDir, serving: bool) -> anyhow::Result<Self> {
        let store = Arc::new(if config.store.is_postgres() {
            Store::open_url(&config.store.url)
                .map_err(|e| anyhow::anyhow!("store {}: {e}", config.store.display_url()))?
        } else {
            Store::open(&dir.database())?
        });
        let presence = match serving {
            true => Some(store.hold_serving()?),
            false => None,
        };
        let shared_keys = if store.is_postgres() {
            Some(Self::share_keys(&config, dir, &store)?)
        } else {
            None
        };
        let token = dir.admin_token()?;
        // A master-key rotation a crash interrupted is finished or dropped
        // before the key is read.
        crate::domain::keys::settle_master_rotation(dir, &store)?;
        let master_key = dir.master_key()?;
        let config_clients = config
            .oidc
            .clients
            .iter()
            .map(crate::domain::oidc::Client::from_config)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("configuration key `oidc.clients`: {e}"))?;
        // A retired key stays published while its tokens may be presented.
        let published_for = crate::domain::oidc::keys_published_for(&config);
        let mut token_keys = crate::infra::token_keys::TokenKeys::open(
            &crate::infra::token_keys::TokenKeys::file(dir.root()),
            published_for,
        )?;
        let shared_keys = shared_keys.map(Arc::new);
        if let Some(keys) = &shared_keys {
            let (keys, store) = (keys.clone(), store.clone());
            token_keys = token_keys.after_create(Box::new(move || {
                keys.adopt(&store, "oidc-keys.json", crate::now())
                    .map_err(|e| e.to_string())
            }));
        }
        let (max, window) = (
            config.lockout.per_address_failures,
            config.lockout.per_address_minutes * 60,
        );
        // Instances sharing a database share their limits.
        let (address_failures, audit_once_a_minute, used_captchas) = if store.is_postgres() {
            (
                AddressLimiter::shared(max, window, store.clone(), "failure"),
                AddressLimiter::shared(1, 60, store.clone(), "audit-refusal"),
                crate::domain::captcha::UsedCaptchas::shared(store.clone()),
            )
        } else {
            (
                AddressLimiter::new(max, window),
                AddressLimiter::new(1, 60),
                Default::default(),
            )
        };
        let server_key = dir.server_key()?;
        let key_update =
            crate::domain::keys::signing_handover(dir, &store, serving, &server_key, crate::now())?;
        let metrics = Arc::new(crate::infra::metrics::Metrics::new()?);
        store.observe_latency(metrics.store_latency());
        Ok(Server {
            metrics,
            backchannel: crate::infra::backchannel::BackChannelClient::new()
                .map_err(anyhow::Error::msg)?,
            token_keys,
            config_clients,
            web_key: crate::domain::captcha::key(master_key.expose()),
            store,
            key_update,
            server_key,
            master_key,
            admin_token_hash: sha256(token.as_bytes()),
            tls_pin: None,
            pin_update: None,
            tls_next: None,
            hub: Arc::default(),
            shared_keys,
            rng: SystemRandom::new(),
            address_failures,
            audit_once_a_minute,
            used_captchas,
            hashing: Default::default(),
            telephony: Gateway::new(&config.telephony, dir.root())?,
            audit_written: watch::Sender::new(0),
            presence: std::sync::Mutex::new(presence),
            config,
        })
    }

    /// Instances on one PostgreSQL database share their keys (see
    /// [`SharedKeys`]): the database's win; the ones it lacks are made
    /// here, then added. (Single sign-on keys are made at first use; the
    /// first instance to make them wins the same way: see `open`.)
    fn share_keys(config: &Config, dir: &DataDir, store: &Store) -> anyhow::Result<SharedKeys> {
        let keys = SharedKeys::new(&config.store, dir.root())?;
        keys.pull(store)?;
        dir.server_key()?;
        dir.master_key()?;
        dir.admin_token()?;
        if config.tls.mode == crate::infra::config::TlsMode::SelfSigned {
            crate::infra::tls::setup(config, dir)?;
        }
        keys.seed(store, crate::now())?;
        Ok(keys)
    }

    /// The lock [`Server::open_serving`] took, for the thread that follows
    /// other instances to keep (once).
    pub fn take_presence(&self) -> Option<crate::store::Presence> {
        self.presence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// On PostgreSQL, fails if the database's master or signing key is no
    /// longer the one this instance read (a rotation ran while this instance held no
    /// lock: its connection to the database had broken).
    pub fn check_keys_current(&self) -> anyhow::Result<()> {
        let Some(keys) = &self.shared_keys else {
            return Ok(());
        };
        for (name, what, mine) in [
            ("master.key", "master key", &self.master_key.expose()[..]),
            (
                "server.key",
                "signing key",
                self.server_key.pkcs8().expose(),
            ),
        ] {
            if let Some(db) = keys.current(&self.store, name)? {
                if db.expose() != mine {
                    anyhow::bail!(
                        "the {what} was rotated while this instance ran: it must start again to take the new one"
                    );
                }
            }
        }
        Ok(())
    }

    /// Takes the pins of the TLS set up for serving: the current one and,
    /// while a new key is staged, its announcement for devices.
    pub fn use_tls(&mut self, tls: &crate::infra::tls::Tls) {
        self.tls_pin = tls.pin;
        self.tls_next = tls.next;
        self.pin_update = match (tls.pin, tls.next) {
            (Some(pin), Some(next)) => Some(countersign_core::key_update::PinUpdate::sign(
                &self.server_key,
                &pin,
                &next.pin,
                next.switch_at,
            )),
            _ => None,
        };
    }

    /// The pin devices enrolling at `now` must trust: the staged key's
    /// from its switch time on.
    pub fn tls_pin_at(&self, now: u64) -> Option<[u8; 32]> {
        match self.tls_next {
            Some(next) if now >= next.switch_at => Some(next.pin),
            _ => self.tls_pin,
        }
    }

    /// The staged key's announcement, until its switch time.
    pub fn pin_update_at(&self, now: u64) -> Option<countersign_core::key_update::PinUpdate> {
        self.pin_update
            .clone()
            .filter(|update| now < update.switch_at)
    }

    /// Runs `work` that hashes passwords or answers (Argon2id) on the
    /// hashing threads, off the async workers; see [`crate::infra::hashing`].
    pub async fn hashing<T, F>(self: &Arc<Self>, work: F) -> Result<T, Error>
    where
        F: FnOnce(&Server) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        self.hashing
            .run(self.carrying_request(work))
            .await
            .ok_or_else(|| Error::Internal("the hashing threads stopped".into()))?
    }

    /// Runs `work` that may go through many rows on a blocking thread, so
    /// that the async workers (one, on two cores) keep serving streams
    /// and pages meanwhile.
    pub async fn off_workers<T, F>(self: &Arc<Self>, work: F) -> Result<T, Error>
    where
        F: FnOnce(&Server) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(self.carrying_request(work))
            .await
            .map_err(|e| Error::Internal(format!("blocking work stopped: {e}")))?
    }

    /// `work` to run on another thread, with the request's id along for
    /// the audit rows it writes.
    fn carrying_request<T, F>(self: &Arc<Self>, work: F) -> impl FnOnce() -> T + Send + 'static
    where
        F: FnOnce(&Server) -> T + Send + 'static,
    {
        let (s, id) = (self.clone(), crate::store::request::current());
        move || crate::store::request::on_thread(id, || work(&s))
    }

    /// Appends an audit row; a failure to audit fails the operation.
    pub fn audit(&self, e: NewAudit<'_>, now: u64) -> Result<(), Error> {
        self.concurrent_write(now, |w| w.audit(&e))
    }

    /// Runs `change` (state changes and their audit rows) in one
    /// transaction, see [`Store::write`]; then wakes live views.
    pub fn write<T>(
        &self,
        now: u64,
        change: impl FnOnce(&mut Write<'_>) -> Result<T, StoreError>,
    ) -> Result<T, Error> {
        self.write_in(Order::Serialised, now, change)
    }

    /// [`Server::write`] beside other writes: see
    /// [`Store::concurrent_write`] for the changes it may run.
    pub fn concurrent_write<T>(
        &self,
        now: u64,
        change: impl FnOnce(&mut Write<'_>) -> Result<T, StoreError>,
    ) -> Result<T, Error> {
        self.write_in(Order::Concurrent, now, change)
    }

    fn write_in<T>(
        &self,
        order: Order,
        now: u64,
        change: impl FnOnce(&mut Write<'_>) -> Result<T, StoreError>,
    ) -> Result<T, Error> {
        let mut audited = Vec::new();
        let change = |w: &mut Write<'_>| {
            let out = change(w)?;
            audited = w.take_audited();
            // A challenge's announcement stands for its audit rows too.
            if !audited.is_empty() && !w.announces_a_challenge() {
                w.announce(Event::Audit);
            }
            Ok(out)
        };
        let out = self.store.write_in(order, now, change)?;
        if !audited.is_empty() {
            // Counted, and live views (which read from a reader) woken,
            // once the rows are committed: an alert on fraud reports must
            // not fire for a report a full disk lost.
            let (metrics, written) = (self.metrics.clone(), self.audit_written.clone());
            self.store.after_commit(move || {
                for (action, outcome, detail) in &audited {
                    metrics.audited(action, outcome, detail);
                }
                written.send_modify(|n| *n = n.wrapping_add(1));
            });
        }
        Ok(out)
    }

    /// Wakes live views of the audit log.
    pub(crate) fn wake_audit_views(&self) {
        self.audit_written.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every audit row this process writes from now on.
    pub fn audit_changes(&self) -> AuditChanges {
        AuditChanges(self.audit_written.subscribe())
    }
}

/// Follows the audit rows a server writes: see [`Server::audit_changes`].
pub struct AuditChanges(watch::Receiver<u64>);

impl AuditChanges {
    /// Waits until a row is written after the last wait, or `at_most`.
    /// The limit picks up rows written by other processes on the same
    /// database (command-line fixes), which this one cannot see happen.
    pub async fn next(&mut self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.0.changed()).await;
    }
}

/// 256 random bits, base64url: session ids, codes, tokens.
pub(crate) fn random_token(rng: &SystemRandom) -> Result<String, Error> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(rng, &mut b)
        .map_err(|_| Error::Internal("random generator failed".into()))?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&b))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

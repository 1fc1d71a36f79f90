//! TLS: a self-signed certificate generated on first start and kept (its
//! public-key pin goes into enrollment payloads), provided files, or none
//! behind a reverse proxy. rustls with the ring provider.
//!
//! A new self-signed key (`keys rotate tls --new-key`) is staged beside
//! the current one with the time the server switches to it. Until then
//! devices are told its pin through the signed channel; from then on the
//! server presents it, without a restart, and the next start moves its
//! files into place.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use time::{Duration, OffsetDateTime};

use crate::infra::config::{Config, TlsMode};
use crate::infra::datadir::{write_private, DataDir};

/// The server's TLS: its rustls configuration and the pin devices check.
pub struct Tls {
    /// None when TLS is off.
    pub config: Option<Arc<rustls::ServerConfig>>,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub pin: Option<[u8; 32]>,
    /// A staged key the server switches to.
    pub next: Option<NextKey>,
}

/// A staged TLS key: its pin, and the Unix time the server presents it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextKey {
    /// SHA-256 of its certificate's SubjectPublicKeyInfo.
    pub pin: [u8; 32],
    /// Server Unix time of the switch.
    pub switch_at: u64,
}

/// The staged key's switch time and pin, as written in `tls-next.json`.
/// The pin is what devices were told; the switch checks it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Plan {
    switch_at: u64,
    pin: [u8; 32],
}

/// Loads or creates the certificate as configured.
pub fn setup(config: &Config, dir: &DataDir) -> anyhow::Result<Tls> {
    // A staged key still waiting for its switch (self-signed mode only).
    let mut waiting = None;
    let (cert_path, key_path) = match config.tls.mode {
        TlsMode::Off => {
            return Ok(Tls {
                config: None,
                pin: None,
                next: None,
            })
        }
        TlsMode::Files => match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => anyhow::bail!(
                "configuration key `tls.mode`: `files` needs tls.cert_file and tls.key_file"
            ),
        },
        TlsMode::SelfSigned => {
            let (c, k) = dir.tls_paths();
            waiting = switch_if_due(dir, crate::now())?;
            if !c.exists() || !k.exists() {
                let key = rcgen::KeyPair::generate()?;
                write_private(&k, key.serialize_pem().as_bytes())?;
                certify(config, &key, &c, now_utc())?;
                tracing::info!(cert = %c.display(), "generated a self-signed TLS certificate");
            } else if needs_renewal(&c, now_utc())? {
                // Devices pin the key, not the certificate: renewing with
                // the same key keeps every enrolled device working.
                let pem = std::fs::read_to_string(&k)?;
                let key = rcgen::KeyPair::from_pem(&pem)?;
                certify(config, &key, &c, now_utc())?;
                tracing::info!(cert = %c.display(), "renewed the self-signed TLS certificate (same key)");
            }
            (c, k)
        }
    };
    let (current, pin) = certified_key(&cert_path, &key_path)?;
    let next = match waiting {
        Some(switch_at) => {
            let (c, k, _) = dir.next_tls_paths();
            let (key, pin) = certified_key(&c, &k)?;
            Some((key, NextKey { pin, switch_at }))
        }
        None => None,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth();
    let mut server_config = builder.with_cert_resolver(Arc::new(Presented {
        current,
        next: next
            .as_ref()
            .map(|(key, plan)| (key.clone(), plan.switch_at)),
    }));
    // Devices hold one long-lived connection each; resumption tickets would
    // only cost memory and CPU per connection.
    server_config.send_tls13_tickets = 0;
    Ok(Tls {
        config: Some(Arc::new(server_config)),
        pin: Some(pin),
        next: next.map(|(_, plan)| plan),
    })
}

/// A certificate chain and its key, ready for rustls, and the chain's pin.
fn certified_key(
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<(Arc<CertifiedKey>, [u8; 32])> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", cert_path.display()))?;
    let first = certs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: holds no certificate", cert_path.display()))?;
    let pin = countersign_core::pin::spki_sha256(first.as_ref())?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", key_path.display()))?;
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|e| {
        anyhow::anyhow!(
            "{} does not belong to {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok((Arc::new(certified), pin))
}

/// The key the server presents: the current one, or the staged one from
/// its switch time on.
#[derive(Debug)]
struct Presented {
    current: Arc<CertifiedKey>,
    next: Option<(Arc<CertifiedKey>, u64)>,
}

impl Presented {
    fn at(&self, now: u64) -> &Arc<CertifiedKey> {
        match &self.next {
            Some((next, switch_at)) if now >= *switch_at => next,
            _ => &self.current,
        }
    }
}

impl ResolvesServerCert for Presented {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.at(crate::now()).clone())
    }
}

/// When the staged key takes over, if one is staged.
pub fn staged(dir: &DataDir) -> anyhow::Result<Option<u64>> {
    Ok(plan(dir)?.map(|p| p.switch_at))
}

fn plan(dir: &DataDir) -> anyhow::Result<Option<Plan>> {
    let (_, _, plan) = dir.next_tls_paths();
    match std::fs::read(&plan) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", plan.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", plan.display())),
    }
}

/// Moves a staged key whose time has come into place; returns the switch
/// time of one still waiting. Each step can be done again: a start after a
/// crash part-way finishes the move (a staged file already gone was
/// moved), and the plan goes last.
fn switch_if_due(dir: &DataDir, now: u64) -> anyhow::Result<Option<u64>> {
    let Some(Plan { switch_at, pin }) = plan(dir)? else {
        return Ok(None);
    };
    if now < switch_at {
        return Ok(Some(switch_at));
    }
    let (cert, key) = dir.tls_paths();
    let (next_cert, next_key, plan) = dir.next_tls_paths();
    for (from, to) in [(&next_key, &key), (&next_cert, &cert)] {
        match std::fs::rename(from, to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("moving {} to {}: {e}", from.display(), to.display()),
        }
    }
    // Devices were told this pin: any other key in place (staged files
    // deleted or replaced) would lock them all out.
    let in_place = certified_key(&cert, &key).map(|(_, pin)| pin).ok();
    if in_place != Some(pin) {
        anyhow::bail!(
            "the TLS key devices were told to expect from the switch is not in place \
             ({} and {} are missing or hold another key); restore the staged files \
             (tls-next-key.pem, tls-next-cert.pem) from a backup and start again",
            key.display(),
            cert.display()
        );
    }
    std::fs::File::open(dir.root())
        .and_then(|f| f.sync_all())
        .map_err(|e| anyhow::anyhow!("syncing {}: {e}", dir.root().display()))?;
    std::fs::remove_file(&plan).map_err(|e| anyhow::anyhow!("{}: {e}", plan.display()))?;
    tracing::info!("the staged TLS key is now the server's key");
    Ok(None)
}

/// Stages a new key and certificate for the self-signed mode, presented
/// from `switch_at` on; returns its pin. The caller checks that none is
/// staged already ([`staged`]).
pub fn stage_new_key(config: &Config, dir: &DataDir, switch_at: u64) -> anyhow::Result<[u8; 32]> {
    let (cert, key, plan) = dir.next_tls_paths();
    let pair = rcgen::KeyPair::generate()?;
    write_private(&key, pair.serialize_pem().as_bytes())?;
    certify(config, &pair, &cert, now_utc())?;
    let (_, pin) = certified_key(&cert, &key)?;
    write_private(&plan, &serde_json::to_vec(&Plan { switch_at, pin })?)?;
    Ok(pin)
}

/// Issues the self-signed certificate again now, with the same key (the
/// pin holds); returns the pin.
pub fn reissue(config: &Config, dir: &DataDir) -> anyhow::Result<[u8; 32]> {
    let (c, k) = dir.tls_paths();
    let pem = std::fs::read_to_string(&k).map_err(|e| anyhow::anyhow!("{}: {e}", k.display()))?;
    let key = rcgen::KeyPair::from_pem(&pem)?;
    certify(config, &key, &c, now_utc())?;
    Ok(certified_key(&c, &k)?.1)
}

/// How long a self-signed certificate is valid: what browsers accept.
const LIFETIME: Duration = Duration::days(397);

/// A self-signed certificate this close to its end is renewed at start.
const RENEW_BEFORE: Duration = Duration::days(30);

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Writes a self-signed certificate for `key`, valid from a day before
/// `now` (clocks differ) for [`LIFETIME`], naming this server's addresses.
fn certify(
    config: &Config,
    key: &rcgen::KeyPair,
    cert_path: &Path,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        config.listen.ip().to_string(),
    ];
    if let Some(host) = config
        .public_url()
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
    {
        names.push(host.to_string());
    }
    names.sort();
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names)?;
    params.not_before = now - Duration::days(1);
    params.not_after = now + LIFETIME;
    let cert = params.self_signed(key)?;
    write_private(cert_path, cert.pem().as_bytes())?;
    Ok(())
}

/// How long the certificate in `cert_path` stays valid (negative once
/// it has ended).
pub fn time_left(cert_path: &Path) -> anyhow::Result<Duration> {
    Ok(not_after(cert_path)? - now_utc())
}

/// When the certificate in `cert_path` ends, whatever names it carries.
fn not_after(cert_path: &Path) -> anyhow::Result<OffsetDateTime> {
    let der = CertificateDer::from_pem_file(cert_path)
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    Ok(OffsetDateTime::from_unix_timestamp(
        cert.validity().not_after.timestamp(),
    )?)
}

/// Whether the certificate in `cert_path` must be issued again: it ends
/// within [`RENEW_BEFORE`] of `now`, or lasts far longer than
/// [`LIFETIME`] (older versions issued certificates valid until 4096).
fn needs_renewal(cert_path: &Path, now: OffsetDateTime) -> anyhow::Result<bool> {
    let left =
        not_after(cert_path).map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))? - now;
    Ok(left < RENEW_BEFORE || left > LIFETIME + Duration::days(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_kept_and_pinned() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let config = Config::default();
        let a = setup(&config, &dir).unwrap();
        let b = setup(&config, &dir).unwrap();
        assert!(a.config.is_some());
        assert_eq!(a.pin, b.pin, "the certificate is generated once");
        let off = setup(
            &Config {
                tls: crate::infra::config::TlsConfig {
                    mode: TlsMode::Off,
                    ..Default::default()
                },
                ..Config::default()
            },
            &dir,
        )
        .unwrap();
        assert!(off.config.is_none() && off.pin.is_none());
    }

    #[test]
    fn the_certificate_lives_a_year_and_is_renewed_near_its_end_with_the_same_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let config = Config::default();
        let first = setup(&config, &dir).unwrap();
        let (cert, key) = dir.tls_paths();
        let t = now_utc();
        let end = rcgen::CertificateParams::from_ca_cert_der(
            &CertificateDer::from_pem_file(&cert).unwrap(),
        )
        .unwrap()
        .not_after;
        assert!(
            end - t > Duration::days(396) && end - t <= LIFETIME,
            "{end}"
        );
        assert!(!needs_renewal(&cert, t).unwrap());

        // Near its end (written as if issued 380 days ago): renewed at the
        // next start, with the same key, so the pin holds.
        let pem = std::fs::read_to_string(&key).unwrap();
        let pair = rcgen::KeyPair::from_pem(&pem).unwrap();
        certify(&config, &pair, &cert, t - Duration::days(380)).unwrap();
        assert!(needs_renewal(&cert, t).unwrap());
        let old = std::fs::read(&cert).unwrap();
        let second = setup(&config, &dir).unwrap();
        assert_ne!(std::fs::read(&cert).unwrap(), old, "renewed");
        assert!(!needs_renewal(&cert, t).unwrap());
        assert_eq!(second.pin, first.pin, "same key, same pin");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), pem);

        // One that lasts for ages (as older versions issued) is reissued.
        certify(&config, &pair, &cert, t + Duration::days(3000)).unwrap();
        assert!(needs_renewal(&cert, t).unwrap());
        let third = setup(&config, &dir).unwrap();
        assert!(!needs_renewal(&cert, t).unwrap());
        assert_eq!(third.pin, first.pin);
    }

    #[test]
    fn a_switch_cut_short_by_a_crash_is_finished_at_the_next_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let config = Config::default();
        setup(&config, &dir).unwrap();
        let next = stage_new_key(&config, &dir, 1).unwrap();
        // As if the machine stopped after the key moved, before the
        // certificate did.
        let (cert, key) = dir.tls_paths();
        let (next_cert, next_key, plan) = dir.next_tls_paths();
        std::fs::rename(&next_key, &key).unwrap();
        let tls = setup(&config, &dir).unwrap();
        assert_eq!(tls.pin, Some(next), "the new key and its certificate");
        assert!(tls.next.is_none());
        assert!(!plan.exists() && !next_cert.exists() && cert.exists());
    }

    #[test]
    fn a_switch_whose_staged_key_is_gone_refuses_to_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let config = Config::default();
        let before = setup(&config, &dir).unwrap().pin;
        stage_new_key(&config, &dir, 1).unwrap();
        let (next_cert, next_key, plan) = dir.next_tls_paths();
        std::fs::remove_file(&next_key).unwrap();
        std::fs::remove_file(&next_cert).unwrap();
        let Err(err) = setup(&config, &dir).map(|_| ()) else {
            panic!("started without the key devices were told about");
        };
        let err = err.to_string();
        assert!(err.contains("devices were told to expect"), "{err}");
        assert!(
            plan.exists(),
            "the plan stays until the announced key is in place"
        );
        // The old key is still there, and still not presented.
        assert!(setup(&config, &dir).is_err());
        assert!(before.is_some());
    }
}

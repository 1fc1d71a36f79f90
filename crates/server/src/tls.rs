//! TLS: a self-signed certificate generated on first start and kept (its
//! public-key pin goes into enrollment payloads), provided files, or none
//! behind a reverse proxy. rustls with the ring provider.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, TlsMode};
use crate::datadir::{write_private, DataDir};

/// The server's TLS: its rustls configuration and the pin devices check.
pub struct Tls {
    /// None when TLS is off.
    pub config: Option<Arc<rustls::ServerConfig>>,
    /// SHA-256 of the certificate's SubjectPublicKeyInfo.
    pub pin: Option<[u8; 32]>,
}

/// Loads or creates the certificate as configured.
pub fn setup(config: &Config, dir: &DataDir) -> anyhow::Result<Tls> {
    let (cert_path, key_path) = match config.tls.mode {
        TlsMode::Off => {
            return Ok(Tls {
                config: None,
                pin: None,
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
            if !c.exists() || !k.exists() {
                generate(config, &c, &k)?;
            }
            (c, k)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", cert_path.display()))?;
    let first = certs
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: holds no certificate", cert_path.display()))?;
    let pin = countersign_core::pin::spki_sha256(first.as_ref())?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // Devices hold one long-lived connection each; resumption tickets would
    // only cost memory and CPU per connection.
    server_config.send_tls13_tickets = 0;
    Ok(Tls {
        config: Some(Arc::new(server_config)),
        pin: Some(pin),
    })
}

fn generate(config: &Config, cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
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
    let certified = rcgen::generate_simple_self_signed(names)?;
    write_private(key_path, certified.key_pair.serialize_pem().as_bytes())?;
    write_private(cert_path, certified.cert.pem().as_bytes())?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
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
                tls: crate::config::TlsConfig {
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
}

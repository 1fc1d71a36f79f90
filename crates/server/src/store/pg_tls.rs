//! How an instance reaches PostgreSQL: in plain text (loopback, a Unix
//! socket) or over TLS with the server's certificate verified, never over
//! TLS that anyone in the middle could answer.
//!
//! The URL's `sslmode` keeps libpq's words, with one rule stricter:
//! `require` and `verify-full` both check the certificate against
//! `sslrootcert` and the host name against it. `prefer` and `allow`
//! (which fall back to plain text) and `verify-ca` (no host name check)
//! are refused with a reason, as is TLS without `sslrootcert`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::StoreError;

/// Where and how to connect.
pub(super) struct Target {
    /// The driver's settings: the URL without the parameters read here,
    /// with TLS required or off.
    pub(super) config: postgres::Config,
    /// The TLS configuration, when the connection is encrypted.
    pub(super) tls: Option<VerifiedTls>,
}

impl Target {
    /// Reads the URL's `sslmode` and `sslrootcert`; the rest of it goes
    /// to the driver as written (percent-decoded by the driver alone).
    pub(super) fn parse(url: &str) -> Result<Self, StoreError> {
        if url.contains('#') {
            return Err(bad(
                "the URL holds a '#': write it as %23 (in a password, say)".into(),
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let (mut mode, mut root, mut kept) = (None, None, Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => mode = Some(decoded(k, v)?),
                "sslrootcert" => root = Some(decoded(k, v)?),
                _ => kept.push(pair),
            }
        }
        let tls = match (encrypted(mode.as_deref())?, root) {
            (false, None) => None,
            (false, Some(_)) => return Err(bad(
                "sslrootcert is set but the connection is not encrypted: add sslmode=verify-full"
                    .into(),
            )),
            (true, None) => {
                return Err(bad(
                    "TLS needs sslrootcert=FILE, the CA certificate (PEM) that signed \
                     PostgreSQL's certificate, or sslrootcert=system for the system's CAs"
                        .into(),
                ))
            }
            (true, Some(root)) => Some(VerifiedTls::new(&root)?),
        };
        let rest = match kept.is_empty() {
            true => base.to_string(),
            false => format!("{base}?{}", kept.join("&")),
        };
        let mut config: postgres::Config = rest.parse().map_err(|e| bad(super::pg::explain(&e)))?;
        config.ssl_mode(match tls {
            Some(_) => postgres::config::SslMode::Require,
            None => postgres::config::SslMode::Disable,
        });
        if config.get_application_name().is_none() {
            // Names the instances in pg_stat_activity.
            config.application_name("countersign-server");
        }
        if config.get_keepalives_idle() == DRIVER_KEEPALIVE_IDLE {
            // A database host that vanished is noticed in about a minute,
            // not two hours.
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        Ok(Target { config, tls })
    }

    /// Whether every address the driver may connect to is loopback or a
    /// Unix socket, where plain text crosses no network.
    pub(super) fn crosses_no_network(&self) -> bool {
        use postgres::config::Host;
        let addrs = self.config.get_hostaddrs();
        if !addrs.is_empty() {
            return addrs.iter().all(|a| a.is_loopback());
        }
        self.config.get_hosts().iter().all(|h| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(|c| c == '[' || c == ']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        })
    }
}

/// Whether `sslmode` asks for TLS; the modes refused, with the reason.
fn encrypted(mode: Option<&str>) -> Result<bool, StoreError> {
    match mode {
        None | Some("disable") => Ok(false),
        Some("require" | "verify-full") => Ok(true),
        Some(m @ ("prefer" | "allow")) => Err(bad(format!(
            "sslmode={m} falls back to plain text when PostgreSQL offers no TLS, \
             which anyone in the middle can arrange: use sslmode=verify-full with \
             sslrootcert=FILE, or sslmode=disable on loopback"
        ))),
        Some("verify-ca") => Err(bad(
            "sslmode=verify-ca does not check the host name: use sslmode=verify-full".into(),
        )),
        Some(m) => Err(bad(format!("unknown sslmode {m:?}"))),
    }
}

/// The driver's idle time before keep-alive probes, when not set.
const DRIVER_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(2 * 60 * 60);
/// Ours, unless the URL sets one.
const KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// A parameter's value, percent-decoded as the driver decodes the others.
fn decoded(key: &str, value: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| bad(format!("{key} is not UTF-8 once decoded")))
}

fn bad(reason: String) -> StoreError {
    StoreError::BadUrl(reason)
}

/// Debian's bundle of the system's trusted CAs (`ca-certificates`).
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS to PostgreSQL with its certificate verified (rustls, ring).
#[derive(Clone)]
pub(super) struct VerifiedTls(Arc<rustls::ClientConfig>);

impl VerifiedTls {
    /// Trusts the CA certificates in the PEM file `root` (`system`: the
    /// system's bundle).
    fn new(root: &str) -> Result<Self, StoreError> {
        let path = if root == "system" { SYSTEM_ROOTS } else { root };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad(format!("sslrootcert {path} holds no certificate")));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // PostgreSQL 17 checks it on direct TLS; earlier ones ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(VerifiedTls(Arc::new(config)))
    }
}

impl<S> MakeTlsConnect<S> for VerifiedTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Encrypted<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Connect(self.0.clone(), name))
    }
}

/// One connection's handshake, to the host it names.
pub(super) struct Connect(Arc<rustls::ClientConfig>, ServerName<'static>);

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Encrypted<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Encrypted<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let Connect(config, name) = self;
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            Ok(Encrypted(tls))
        })
    }
}

/// An encrypted connection to PostgreSQL.
pub(super) struct Encrypted<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Encrypted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Encrypted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Encrypted<S> {
    /// `tls-server-end-point` (RFC 5929), so that SCRAM-SHA-256-PLUS can
    /// bind a password sign-in to this connection.
    fn channel_binding(&self) -> ChannelBinding {
        let (_, conn) = self.0.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => match end_point_hash(cert) {
                Some(hash) => ChannelBinding::tls_server_end_point(hash),
                None => ChannelBinding::none(),
            },
            None => ChannelBinding::none(),
        }
    }
}

/// The certificate's hash under its signature's hash function (SHA-256
/// for MD5 and SHA-1, RFC 5929); `None` for any other algorithm (Ed25519,
/// RSA-PSS), where a guess could fail a sign-in that works without it.
fn end_point_hash(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use x509_parser::oid_registry as oids;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let alg = &parsed.signature_algorithm.algorithm;
    let sha256 = [
        oids::OID_PKCS1_MD5WITHRSAENC,
        oids::OID_PKCS1_SHA1WITHRSA,
        oids::OID_PKCS1_SHA256WITHRSA,
        oids::OID_SIG_ECDSA_WITH_SHA256,
    ];
    let sha384 = [
        oids::OID_PKCS1_SHA384WITHRSA,
        oids::OID_SIG_ECDSA_WITH_SHA384,
    ];
    let sha512 = [
        oids::OID_PKCS1_SHA512WITHRSA,
        oids::OID_SIG_ECDSA_WITH_SHA512,
    ];
    let digest = if sha256.contains(alg) {
        &ring::digest::SHA256
    } else if sha384.contains(alg) {
        &ring::digest::SHA384
    } else if sha512.contains(alg) {
        &ring::digest::SHA512
    } else {
        return None;
    };
    Some(
        ring::digest::digest(digest, cert.as_ref())
            .as_ref()
            .to_vec(),
    )
}

#[cfg(test)]
mod tests;

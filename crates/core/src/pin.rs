//! Certificate pinning: the enrollment payload's `p` is the SHA-256 of the
//! server certificate's SubjectPublicKeyInfo, so a device can trust a
//! self-signed server without any certificate authority. With the `rustls`
//! feature this module also provides the rustls verifier that enforces it.

use crate::Error;

/// SHA-256 of the SubjectPublicKeyInfo of a DER X.509 certificate.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], Error> {
    let spki = spki(cert_der)
        .ok_or_else(|| Error::field("certificate", "is not a DER X.509 certificate"))?;
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, spki).as_ref());
    Ok(out)
}

/// Walks Certificate → tbsCertificate → subjectPublicKeyInfo.
fn spki(der: &[u8]) -> Option<&[u8]> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert.content, 0x30)?;
    let mut rest = tbs.content;
    // version [0] EXPLICIT is optional.
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0)?.1;
    }
    // serialNumber, signature, issuer, validity, subject.
    for tag in [0x02, 0x30, 0x30, 0x30, 0x30] {
        rest = tlv(rest, tag)?.1;
    }
    let (spki, _) = tlv(rest, 0x30)?;
    Some(spki.whole)
}

struct Tlv<'a> {
    whole: &'a [u8],
    content: &'a [u8],
}

/// One DER element with the expected tag: the element and what follows it.
fn tlv(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for &b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some((
        Tlv {
            whole,
            content: &whole[header..],
        },
        &input[end..],
    ))
}

#[cfg(feature = "rustls")]
pub use verifier::PinnedVerifier;

#[cfg(feature = "rustls")]
mod verifier {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{
        verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
    };
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Accepts exactly the servers whose certificate's public key hashes to
    /// one of the pins (two while a server switches TLS keys); handshake
    /// signatures are still checked with ring.
    #[derive(Debug)]
    pub struct PinnedVerifier {
        pins: Vec<[u8; 32]>,
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl PinnedVerifier {
        /// A verifier for `pins`.
        pub fn new(pins: &[[u8; 32]]) -> Arc<Self> {
            let algorithms =
                rustls::crypto::ring::default_provider().signature_verification_algorithms;
            Arc::new(PinnedVerifier {
                pins: pins.to_vec(),
                algorithms,
            })
        }

        /// A rustls client configuration (ring provider) trusting only the pin.
        pub fn client_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, rustls::Error> {
            Self::client_config_for(&[pin])
        }

        /// A rustls client configuration (ring provider) trusting only
        /// these pins.
        pub fn client_config_for(pins: &[[u8; 32]]) -> Result<rustls::ClientConfig, rustls::Error> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Ok(rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Self::new(pins))
                .with_no_client_auth())
        }
    }

    impl ServerCertVerifier for PinnedVerifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let got = super::spki_sha256(end_entity.as_ref()).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
            if self
                .pins
                .iter()
                .any(|pin| crate::secret::constant_time_eq(&got, pin))
            {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(spki_sha256(b"").is_err());
        assert!(spki_sha256(&[0x30, 0x82, 0xff, 0xff]).is_err());
        assert!(spki_sha256(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
    }
}

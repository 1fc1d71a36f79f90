//! The HTTP client a device uses to reach its server: TLS pinned to the
//! key from the enrollment QR code when there is one (rustls, ring).

use std::sync::Arc;
use std::time::Duration;

use countersign_core::api::{ActivateRequest, ActivateResponse, ErrorBody, Verdict};
use countersign_core::pin::PinnedVerifier;
use countersign_core::protocol::{ChallengeEnvelope, Receipt, Response};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncReadExt;

use crate::Error;

/// A connection to one server.
#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
}

fn network(e: reqwest::Error) -> Error {
    if refused_by_pin(&e) {
        return Error::ServerIdentityChanged;
    }
    Error::Network(e.without_url().to_string())
}

/// Whether the TLS handshake failed because the server's key does not
/// match the pin ([`PinnedVerifier`] refuses with
/// `ApplicationVerificationFailure`). The rustls error sits inside an
/// `io::Error` somewhere down the chain of causes.
fn refused_by_pin(e: &(dyn std::error::Error + 'static)) -> bool {
    let pinned = |e: &(dyn std::error::Error + 'static)| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure
            ))
        )
    };
    let mut next = Some(e);
    while let Some(err) = next {
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if pinned(err) || inner.is_some_and(|i| pinned(i) || refused_by_pin(i)) {
            return true;
        }
        next = err.source();
    }
    false
}

impl ServerClient {
    /// A client for `base`, trusting only `pin` when given, else the web PKI.
    pub fn new(base: &str, pin: Option<[u8; 32]>) -> Result<Self, Error> {
        match pin {
            Some(pin) => Self::trusting(base, &[pin]),
            None => Self::with_tls(base, None),
        }
    }

    /// A client for `base` trusting exactly the servers whose key has one
    /// of `pins` (two while the server switches TLS keys).
    pub fn trusting(base: &str, pins: &[[u8; 32]]) -> Result<Self, Error> {
        Self::with_tls(base, Some(pins))
    }

    fn with_tls(base: &str, pins: Option<&[[u8; 32]]>) -> Result<Self, Error> {
        let tls = match pins {
            Some(pins) => PinnedVerifier::client_config_for(pins),
            None => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            }
        }
        .map_err(|e| Error::Network(format!("TLS setup failed: {e}")))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(network)?;
        Ok(ServerClient {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// A client for the same server trusting exactly `pins`.
    pub fn with_pins(&self, pins: &[[u8; 32]]) -> Result<Self, Error> {
        Self::trusting(&self.base, pins)
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, Error> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        match resp.json::<ErrorBody>().await {
            Ok(b) => Err(Error::Server {
                code: b.code,
                message: b.message,
            }),
            Err(_) => Err(Error::Server {
                code: status.as_u16().to_string(),
                message: status.to_string(),
            }),
        }
    }

    /// Activates a device.
    pub async fn activate(&self, req: &ActivateRequest) -> Result<ActivateResponse, Error> {
        let resp = self
            .http
            .post(format!("{}/api/v1/devices/activate", self.base))
            .timeout(Duration::from_secs(30))
            .json(req)
            .send()
            .await
            .map_err(network)?;
        Self::check(resp).await?.json().await.map_err(network)
    }

    /// Open challenges; waits up to `wait` seconds for one when there is none.
    pub async fn pending(
        &self,
        device_id: &str,
        token: &str,
        wait: u64,
    ) -> Result<Vec<ChallengeEnvelope>, Error> {
        let resp = self
            .http
            .get(format!(
                "{}/api/v1/devices/{device_id}/challenges?wait={wait}",
                self.base
            ))
            .bearer_auth(token)
            .timeout(Duration::from_secs(wait + 30))
            .send()
            .await
            .map_err(network)?;
        Self::check(resp).await?.json().await.map_err(network)
    }

    /// The live challenge stream. The device asks for the upgraded
    /// connection (`Upgrade: countersign-events`, see PROTOCOL.md), which
    /// costs the server less per device; a server that answers with plain
    /// server-sent events is read the same way.
    pub async fn stream(
        &self,
        device_id: &str,
        token: &str,
    ) -> Result<BoxStream<'static, Result<ChallengeEnvelope, Error>>, Error> {
        let resp = self
            .http
            .get(format!(
                "{}/api/v1/devices/{device_id}/challenges",
                self.base
            ))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .header("connection", "upgrade")
            .header("upgrade", EVENTS_UPGRADE)
            .send()
            .await
            .map_err(network)?;
        if resp.status() == reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let io = resp.upgrade().await.map_err(network)?;
            return Ok(sse_events(read_chunks(io).boxed(), STREAM_SILENCE).boxed());
        }
        let bytes = Self::check(resp)
            .await?
            .bytes_stream()
            .map(|chunk| chunk.map_err(network));
        Ok(sse_events(bytes, STREAM_SILENCE).boxed())
    }

    /// Posts a signed message about a challenge to `.../challenges/{id}/{what}`.
    async fn post_signed<T: serde::Serialize>(
        &self,
        challenge_id: &str,
        what: &str,
        body: &T,
    ) -> Result<reqwest::Response, Error> {
        let resp = self
            .http
            .post(format!(
                "{}/api/v1/challenges/{challenge_id}/{what}",
                self.base
            ))
            .timeout(Duration::from_secs(30))
            .json(body)
            .send()
            .await
            .map_err(network)?;
        Self::check(resp).await
    }

    /// Posts a signed answer; returns the verdict.
    pub async fn respond(&self, r: &Response) -> Result<Verdict, Error> {
        self.post_signed(&r.challenge_id, "response", r)
            .await?
            .json()
            .await
            .map_err(network)
    }

    /// Posts a signed receipt.
    pub async fn receipt(&self, r: &Receipt) -> Result<(), Error> {
        self.post_signed(&r.challenge_id, "receipt", r)
            .await
            .map(|_| ())
    }

    /// Tells the server this device is gone.
    pub async fn remove_device(&self, device_id: &str, token: &str) -> Result<(), Error> {
        let resp = self
            .http
            .delete(format!("{}/api/v1/devices/{device_id}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(network)?;
        Self::check(resp).await.map(|_| ())
    }
}

/// Parses `challenge` events out of a server-sent-events byte stream.
/// The `Upgrade` token of the challenge stream.
pub const EVENTS_UPGRADE: &str = "countersign-events";

/// The bytes of an upgraded connection, as they arrive.
fn read_chunks<R>(io: R) -> impl Stream<Item = Result<Vec<u8>, Error>> + Send
where
    R: tokio::io::AsyncRead + Unpin + Send,
{
    futures_util::stream::unfold(Some(io), |io| async move {
        let mut io = io?;
        let mut buf = vec![0u8; 4096];
        match io.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(io)))
            }
            Err(e) => Some((Err(Error::Network(e.to_string())), None)),
        }
    })
}

/// The server writes at least a keep-alive comment every 15 s; a stream
/// silent for this long is a dead connection (a dropped NAT mapping, a
/// suspended laptop), and the channel reconnects.
pub const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// Splits an event stream into challenge envelopes. Bytes are gathered
/// until a blank line ends an event, so a character split across two reads
/// stays whole. A stream silent for `silence` ends with an error.
fn sse_events<S, B>(
    bytes: S,
    silence: Duration,
) -> impl Stream<Item = Result<ChallengeEnvelope, Error>> + Send
where
    S: Stream<Item = Result<B, Error>> + Unpin + Send,
    B: AsRef<[u8]>,
{
    futures_util::stream::unfold(
        (bytes, Vec::new()),
        move |(mut bytes, mut buf)| async move {
            loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buf.drain(..end + 2).collect();
                    if let Some(env) = parse_event(&String::from_utf8_lossy(&block)) {
                        return Some((env, (bytes, buf)));
                    }
                    continue;
                }
                let Ok(next) = tokio::time::timeout(silence, bytes.next()).await else {
                    let e = Error::Network(format!(
                        "the server sent nothing for {} s",
                        silence.as_secs()
                    ));
                    return Some((Err(e), (bytes, buf)));
                };
                match next {
                    Some(Ok(chunk)) => buf.extend_from_slice(chunk.as_ref()),
                    Some(Err(e)) => return Some((Err(e), (bytes, buf))),
                    None => return None,
                }
                if buf.len() > 1 << 20 {
                    return Some((
                        Err(Error::Network(
                            "event stream sent an over-long event".into(),
                        )),
                        (bytes, Vec::new()),
                    ));
                }
            }
        },
    )
}

fn parse_event(block: &str) -> Option<Result<ChallengeEnvelope, Error>> {
    let mut event = "message";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    (event == "challenge").then(|| {
        serde_json::from_str(&data)
            .map_err(|e| Error::Network(format!("malformed challenge event: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_split_anywhere_arrive_whole() {
        use countersign_core::protocol::{Challenge, ChallengeKind};
        let key = countersign_core::SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
        let challenge = Challenge {
            id: "c1".into(),
            device_id: "d".into(),
            account: "a".into(),
            application: "Dossier pénal".into(),
            ip: String::new(),
            location: "Montréal".into(),
            kind: ChallengeKind::SignIn,
            created_at: 0,
            expires_at: 60,
        };
        let envelope = ChallengeEnvelope::sign(challenge, 0, &key);
        let json = serde_json::to_string(&envelope).unwrap();
        let text = format!(":\n\nevent: challenge\nid: c1\ndata: {json}\n\n");
        let bytes = text.as_bytes();
        // Every split point, including inside the two-byte letters.
        for cut in 1..bytes.len() {
            let chunks = vec![Ok(bytes[..cut].to_vec()), Ok(bytes[cut..].to_vec())];
            let got: Vec<_> = sse_events(futures_util::stream::iter(chunks), STREAM_SILENCE)
                .collect()
                .await;
            assert_eq!(got.len(), 1, "cut at {cut}");
            let got = got[0].as_ref().unwrap();
            assert_eq!(got.challenge.application, "Dossier pénal", "cut at {cut}");
            assert_eq!(got.challenge.location, "Montréal", "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_silent_stream_ends_with_an_error() {
        let silent = futures_util::stream::pending::<Result<Vec<u8>, Error>>();
        let mut events = Box::pin(sse_events(silent, Duration::from_millis(50)));
        let got = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("the silence limit ends the wait");
        let Some(Err(Error::Network(e))) = got else {
            panic!("an error, not {:?}", got.map(|r| r.is_ok()))
        };
        assert!(e.contains("sent nothing"), "{e}");
    }

    #[test]
    fn keep_alive_comments_are_skipped_and_bad_json_reported() {
        assert!(parse_event(":\n\n").is_none());
        assert!(matches!(
            parse_event("event: challenge\ndata: {oops}\n\n"),
            Some(Err(Error::Network(_)))
        ));
    }
}

//! A device's challenge stream on an upgraded connection.
//!
//! Devices hold one stream open all day, so its per-connection cost decides
//! how many devices one server can hold. As plain server-sent events each
//! stream keeps hyper's HTTP/1.1 read and write buffers (8 KiB each) for
//! its whole life. A device that asks for `Upgrade: countersign-events`
//! gets `101 Switching Protocols` instead; hyper then hands the TLS stream
//! over and frees its buffers, and the same event-stream text is written on
//! the bare connection. Browsers and older devices keep plain SSE.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use countersign_core::protocol::ChallengeEnvelope;
use futures_util::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The `Upgrade` token a device sends for its challenge stream.
pub const UPGRADE: &str = "countersign-events";
/// The event name of a challenge, in both transports.
pub const CHALLENGE: &str = "challenge";
/// A comment line is sent this often when nothing else is, so a dead
/// connection is noticed and proxies keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether the request asks for the upgraded stream.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, UPGRADE)
}

/// Answers `101` and writes `envelopes` on the connection once hyper has
/// handed it over. `None` when the connection cannot be upgraded (HTTP/2).
pub fn upgrade<S>(request: &mut Request, envelopes: S) -> Option<Response>
where
    S: Stream<Item = ChallengeEnvelope> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(request);
    // On the heap once: held inline, room for the stream's state is laid
    // out in each layer of the task's future that holds it.
    let envelopes = Box::pin(envelopes);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => write_events(TokioIo::new(upgraded), envelopes).await,
            Err(e) => tracing::debug!(error = %e, "challenge stream upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
        .header(header::UPGRADE, HeaderValue::from_static(UPGRADE))
        .body(Body::empty())
        .ok()
}

/// Writes each envelope as an event, and a keep-alive comment when idle,
/// until the device goes away or the stream ends. The connection is read
/// too: a device that closes it is noticed at once, and the first read
/// releases the buffer hyper handed over with it.
async fn write_events<IO, S>(io: IO, envelopes: S)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Stream<Item = ChallengeEnvelope> + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let closed = async {
        let mut ignored = [0u8; 64];
        while let Ok(1..) = reader.read(&mut ignored).await {}
    };
    let write = async {
        let mut envelopes = envelopes;
        loop {
            let text = match tokio::time::timeout(KEEP_ALIVE, envelopes.next()).await {
                Ok(Some(e)) => event_text(&e),
                Ok(None) => break,
                Err(_) => ":\n\n".to_string(),
            };
            if writer.write_all(text.as_bytes()).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    };
    tokio::select! {
        () = closed => {}
        () = write => {}
    }
}

/// One event in the text/event-stream format.
pub fn event_text(e: &ChallengeEnvelope) -> String {
    let data = serde_json::to_string(e).unwrap_or_default();
    format!(
        "event: {CHALLENGE}\nid: {}\ndata: {data}\n\n",
        e.challenge.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_upgrade_to_countersign_events_counts() {
        let mut h = HeaderMap::new();
        assert!(!wants_upgrade(&h));
        h.insert(
            header::UPGRADE,
            HeaderValue::from_static("countersign-events"),
        );
        assert!(!wants_upgrade(&h), "Connection: upgrade is required too");
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&h));
    }
}

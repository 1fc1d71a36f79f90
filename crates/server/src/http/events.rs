//! A device's challenge stream on an upgraded connection.
//!
//! Devices hold one stream open all day, so its per-connection cost decides
//! how many devices one server can hold. As plain server-sent events each
//! stream keeps hyper's HTTP/1.1 read and write buffers (8 KiB each) for
//! its whole life. A device that asks for `Upgrade: countersign-events`
//! gets `101 Switching Protocols` instead; hyper then hands the TLS stream
//! over and frees its buffers, and the same event-stream text is written on
//! the bare connection. Browsers and older devices keep plain SSE.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use countersign_core::protocol::ChallengeEnvelope;
use futures_util::Stream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::domain::inbox::KEEP_ALIVE_TICKS;
use crate::http::envelopes::Outgoing;

/// The `Upgrade` token a device sends for its challenge stream.
pub const UPGRADE: &str = "countersign-events";
/// The event name of a challenge, in both transports.
pub const CHALLENGE: &str = "challenge";
/// A comment line is sent on every device stream this often (the first
/// within this time of the stream's start), so a dead connection is
/// noticed and proxies keep it open.
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
pub(crate) fn upgrade<S>(request: &mut Request, envelopes: S) -> Option<Response>
where
    S: Stream<Item = Outgoing> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(request);
    // On the heap once: inline, it would take tokio's task cell for the
    // stream a size class up (see `DeviceStream`).
    let envelopes = Box::pin(envelopes);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => DeviceStream::new(TokioIo::new(upgraded), envelopes).await,
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

/// A device's stream on its own connection: writes each challenge as an
/// event and each keep-alive as a comment, as its source gives them, until
/// the device goes away or the source ends. The connection is read too: a
/// device that closes it (or sends anything, which a device never does) is
/// noticed at once, and the first read releases the buffer hyper handed
/// over with it.
///
/// Written out by hand rather than as `async` code with `select!` and
/// `tokio::io::split`, with no timer of its own (the source says when a
/// keep-alive is due) and nothing inline but the connection and two
/// pointers: a server holds one of these per connected device all day, and
/// tokio allocates a task in steps of 128 bytes. At up to 72 bytes
/// (`tests::a_device_stream_fits_a_small_task` holds it there) this one
/// with its task takes 256 (see PERFORMANCE.md, "Streams with no timer of their own").
pub(crate) struct DeviceStream<IO, S> {
    io: IO,
    /// `None` once the source ended: the connection is being closed.
    source: Option<S>,
    /// What is being written, while it is.
    out: Option<Box<Writing>>,
}

/// Bytes being written on a [`DeviceStream`].
struct Writing {
    bytes: Cow<'static, [u8]>,
    written: usize,
}

impl Writing {
    fn of(next: Outgoing) -> Box<Writing> {
        let bytes = match next {
            Outgoing::Challenge(e) => Cow::Owned(event_text(&e).into_bytes()),
            Outgoing::KeepAlive => Cow::Borrowed(&b":\n\n"[..]),
        };
        Box::new(Writing { bytes, written: 0 })
    }
}

impl<IO, S> DeviceStream<IO, S> {
    /// Writes what `source` gives on `io`.
    pub(crate) fn new(io: IO, source: S) -> Self {
        DeviceStream {
            io,
            source: Some(source),
            out: None,
        }
    }
}

impl<IO, S> Future for DeviceStream<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Stream<Item = Outgoing> + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // A device sends nothing after its request (PROTOCOL.md): the end
        // of its side, an error, or anything it sends ends the stream. A
        // client that keeps sending is not read on for nothing.
        let mut byte = [0u8; 1];
        if Pin::new(&mut this.io)
            .poll_read(cx, &mut ReadBuf::new(&mut byte))
            .is_ready()
        {
            return Poll::Ready(());
        }
        loop {
            if let Some(out) = &mut this.out {
                while out.written < out.bytes.len() {
                    let rest = &out.bytes[out.written..];
                    match Pin::new(&mut this.io).poll_write(cx, rest) {
                        Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                        Poll::Ready(Ok(n)) => out.written += n,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                match Pin::new(&mut this.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => this.out = None,
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let Some(source) = &mut this.source else {
                return Pin::new(&mut this.io).poll_shutdown(cx).map(|_| ());
            };
            match Pin::new(source).poll_next(cx) {
                Poll::Ready(Some(next)) => this.out = Some(Writing::of(next)),
                Poll::Ready(None) => this.source = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Tells the streams connected here when their keep-alives are due: a few
/// every tick (50 ms), each stream's every [`KEEP_ALIVE`] (see
/// [`crate::domain::inbox`]). Runs until aborted; `serve` starts it, so
/// a router served any other way sends no keep-alives.
pub(crate) async fn keep_alives(server: std::sync::Arc<crate::Server>) {
    let mut tick = tokio::time::interval(KEEP_ALIVE / KEEP_ALIVE_TICKS as u32);
    // Late ticks are not made up in a burst: a stream's keep-alive is
    // then just late, as with a timer of its own.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        tick.tick().await;
        server.hub.keep_alive(n);
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
    use crate::domain::inbox::Delivery;

    #[test]
    fn a_device_stream_fits_a_small_task() {
        // A server holds one per connected device all day. With its
        // task's header and trailer this takes 256 bytes (tokio's task
        // cells come in steps of 128); 88 bytes measured as 384.
        type Stream = DeviceStream<
            hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>,
            std::pin::Pin<Box<crate::http::envelopes::DeviceEnvelopes>>,
        >;
        let size = std::mem::size_of::<Stream>();
        assert!(size <= 72, "{size} bytes");
        // Boxed, on its own.
        let envelopes = std::mem::size_of::<crate::http::envelopes::DeviceEnvelopes>();
        assert!(envelopes <= 24, "{envelopes} bytes");
    }

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

    fn envelope(id: &str) -> ChallengeEnvelope {
        let key = countersign_core::keys::SigningKey::generate(&ring::rand::SystemRandom::new())
            .expect("a key");
        let challenge = crate::domain::inbox::tests::challenge(id, "d1");
        ChallengeEnvelope::sign(challenge, 100, &key)
    }

    /// Reads until the blank line that ends an event or a comment.
    async fn next_block(client: &mut tokio::io::DuplexStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut text = Vec::new();
        while !text.ends_with(b"\n\n") {
            let mut byte = [0u8; 1];
            assert_eq!(
                client.read(&mut byte).await.expect("read"),
                1,
                "stream ended"
            );
            text.push(byte[0]);
        }
        String::from_utf8(text).expect("text")
    }

    #[tokio::test]
    async fn a_device_stream_writes_events_and_keep_alives_and_ends_with_the_device() {
        let (mut client, server) = tokio::io::duplex(4096);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let stream = tokio::spawn(DeviceStream::new(
            server,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        tx.send(Outgoing::Challenge(envelope("c1")))
            .await
            .expect("send");
        let event = next_block(&mut client).await;
        assert!(
            event.starts_with("event: challenge\nid: c1\ndata: {"),
            "{event}"
        );
        tx.send(Outgoing::KeepAlive).await.expect("send");
        assert_eq!(next_block(&mut client).await, ":\n\n");

        // The next event too; then the device going away ends the task.
        tx.send(Outgoing::Challenge(envelope("c2")))
            .await
            .expect("send");
        assert!(next_block(&mut client).await.contains("id: c2\n"));
        drop(client);
        tokio::time::timeout(Duration::from_secs(1), stream)
            .await
            .expect("the stream ends when the device goes away")
            .expect("no panic");
    }

    #[tokio::test(start_paused = true)]
    async fn each_stream_is_due_a_keep_alive_every_interval() {
        use futures_util::StreamExt;
        let (_dir, server) = crate::scratch_server();
        let mut first = server.hub.subscribe("d1");
        let mut second = server.hub.subscribe("d2");
        let ticker = tokio::spawn(keep_alives(server.clone()));
        async fn next(inbox: &mut crate::domain::inbox::Inbox) -> Option<Delivery> {
            let next = tokio::time::timeout(KEEP_ALIVE * 2, inbox.next());
            next.await.expect("a keep-alive in time")
        }
        let start = tokio::time::Instant::now();
        for round in 0..3u32 {
            let due = next(&mut first).await;
            assert!(matches!(due, Some(Delivery::KeepAlive)), "{due:?}");
            assert_eq!(start.elapsed(), KEEP_ALIVE * round, "the first");
            let due = next(&mut second).await;
            assert!(matches!(due, Some(Delivery::KeepAlive)), "{due:?}");
            let tick = KEEP_ALIVE / KEEP_ALIVE_TICKS as u32;
            assert_eq!(start.elapsed(), KEEP_ALIVE * round + tick, "the second");
        }
        ticker.abort();
    }

    #[tokio::test]
    async fn a_device_that_sends_anything_is_disconnected() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(4096);
        let (_tx, rx) = tokio::sync::mpsc::channel::<Outgoing>(4);
        let stream = tokio::spawn(DeviceStream::new(
            server,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!stream.is_finished(), "an idle device stays connected");
        client.write_all(b"x").await.expect("write");
        tokio::time::timeout(Duration::from_secs(5), stream)
            .await
            .expect("the stream ends")
            .expect("no panic");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("the end");
        assert!(rest.is_empty(), "nothing more was sent");
    }

    /// A connection that notes when it is shut down.
    struct Noting {
        io: tokio::io::DuplexStream,
        shut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl AsyncRead for Noting {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Noting {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            self.shut.store(true, std::sync::atomic::Ordering::SeqCst);
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn a_device_stream_shuts_the_connection_down_when_its_envelopes_end() {
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(4096);
        let shut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let io = Noting {
            io: server,
            shut: shut.clone(),
        };
        let stream = tokio::spawn(DeviceStream::new(
            io,
            futures_util::stream::iter(vec![Outgoing::Challenge(envelope("c1"))]),
        ));
        let mut all = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut all));
        read.await
            .expect("the stream ends")
            .expect("read to the end");
        assert!(all.starts_with("event: challenge\nid: c1\n"), "{all}");
        assert!(all.ends_with("\n\n"), "{all}");
        stream.await.expect("no panic");
        assert!(
            shut.load(std::sync::atomic::Ordering::SeqCst),
            "shut down, not just dropped"
        );
    }

    #[tokio::test]
    async fn a_device_going_away_ends_a_stream_stuck_writing() {
        // A tiny pipe nobody reads: the event cannot be written whole.
        let (client, server) = tokio::io::duplex(16);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let stream = tokio::spawn(DeviceStream::new(
            server,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let event = Outgoing::Challenge(envelope("c1"));
        tx.send(event).await.expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!stream.is_finished(), "waiting to write");
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), stream)
            .await
            .expect("the stream ends when the device goes away")
            .expect("no panic");
    }
}

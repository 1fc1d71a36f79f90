//! TLS on an accepted connection, on rustls's unbuffered API, with
//! buffers that exist only while they hold bytes.
//!
//! A device keeps one connection open all day and it is idle nearly all of
//! that time. rustls's buffered connection keeps a 4 KiB read buffer from
//! its first read on, about 40 % of an idle device stream's memory
//! (PERFORMANCE.md). Here the socket is read into a buffer on the stack;
//! what is kept is only a partial record, decrypted bytes the reader has
//! not taken, or encrypted bytes the socket has not taken, each freed once
//! empty. An idle connection holds no buffer at all.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic,
};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at a time, into a buffer on the stack.
const READ_CHUNK: usize = 8 * 1024;
/// Most received bytes held before they form a message: a handshake
/// message may span records up to 64 KiB (rustls's own limit), plus one
/// record.
const MAX_INCOMING: usize = 64 * 1024 + 17 * 1024;
/// Most plaintext taken by one write (four full records).
const MAX_WRITE: usize = 64 * 1024;

/// A server-side TLS connection over `IO`.
pub struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// Received bytes not yet processed (part of a record).
    incoming: Vec<u8>,
    /// Decrypted bytes not yet read, from `taken` on.
    plaintext: Vec<u8>,
    taken: usize,
    /// Encrypted bytes not yet written, from `sent` on.
    outgoing: Vec<u8>,
    sent: usize,
    /// The socket reached its end.
    eof: bool,
    /// The peer sent close_notify: no more application data comes.
    peer_closed: bool,
    /// Our close_notify is queued.
    closing: bool,
}

/// What the caller of [`TlsStream::process`] is after.
enum Want<'d> {
    Read,
    Write(&'d [u8]),
    Close,
}

/// Where [`TlsStream::process`] stopped.
enum Progress {
    /// Decrypted bytes wait in `plaintext`.
    Plaintext,
    /// Nothing more can happen until more bytes arrive.
    NeedBytes,
    /// This many plaintext bytes were encrypted into `outgoing`.
    Wrote(usize),
    /// Both sides have closed.
    Closed,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// Runs the handshake on `io`.
    pub async fn accept(io: IO, config: Arc<ServerConfig>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut tls = TlsStream {
            io,
            conn,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            taken: 0,
            outgoing: Vec::new(),
            sent: 0,
            eof: false,
            peer_closed: false,
            closing: false,
        };
        std::future::poll_fn(|cx| tls.poll_handshake(cx)).await?;
        Ok(tls)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_send(cx))?;
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.process(Want::Read) {
                Ok(Progress::NeedBytes) => {
                    // Our flight goes out before we wait for the answer.
                    ready!(self.poll_send(cx))?;
                    if !self.conn.is_handshaking() {
                        return Poll::Ready(Ok(()));
                    }
                    ready!(self.poll_receive(cx))?;
                }
                Ok(Progress::Plaintext | Progress::Wrote(_)) => {}
                Ok(Progress::Closed) => return Poll::Ready(Err(closed())),
                Err(e) => {
                    self.send_alert(cx);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Best effort: writes the alert rustls queued for a failed handshake,
    /// so the client learns why, without waiting for the socket.
    fn send_alert(&mut self, cx: &mut Context<'_>) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = status.state {
            if encode(&mut data, &mut self.outgoing).is_ok() {
                let _ = self.poll_send(cx);
            }
        }
    }

    /// Feeds `incoming` to rustls until it has something for `want`, or
    /// needs more bytes.
    fn process(&mut self, want: Want<'_>) -> io::Result<Progress> {
        loop {
            let TlsStream {
                conn,
                incoming,
                plaintext,
                outgoing,
                peer_closed,
                closing,
                ..
            } = self;
            let status = conn.process_tls_records(incoming);
            let discard = status.discard;
            let step = match status.state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        plaintext.extend_from_slice(record.map_err(tls_error)?.payload);
                    }
                    Some(Progress::Plaintext)
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    encode(&mut data, outgoing)?;
                    None
                }
                // The encoded bytes are in `outgoing`, sent in order before
                // anything encrypted later.
                ConnectionState::TransmitTlsData(data) => {
                    data.done();
                    None
                }
                ConnectionState::BlockedHandshake => Some(Progress::NeedBytes),
                ConnectionState::PeerClosed => {
                    *peer_closed = true;
                    None
                }
                ConnectionState::Closed => Some(Progress::Closed),
                ConnectionState::WriteTraffic(mut traffic) => Some(match want {
                    Want::Read => Progress::NeedBytes,
                    Want::Write(data) => Progress::Wrote(encrypt(&mut traffic, data, outgoing)?),
                    Want::Close => {
                        if !*closing {
                            close_notify(&mut traffic, outgoing)?;
                            *closing = true;
                        }
                        Progress::Wrote(0)
                    }
                }),
                ConnectionState::ReadEarlyData(_) => {
                    return Err(invalid("early data is not accepted"))
                }
                _ => return Err(invalid("unexpected TLS state")),
            };
            incoming.drain(..discard);
            if incoming.is_empty() {
                *incoming = Vec::new();
            }
            if let Some(progress) = step {
                return Ok(progress);
            }
        }
    }

    /// Reads what the socket has into `incoming`. Nothing is allocated
    /// while the socket has nothing to give.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.eof {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        if buf.filled().is_empty() {
            self.eof = true;
        } else if self.incoming.len() + buf.filled().len() > MAX_INCOMING {
            return Poll::Ready(Err(invalid("TLS message too large")));
        } else {
            self.incoming.extend_from_slice(buf.filled());
        }
        Poll::Ready(Ok(()))
    }

    /// Writes `outgoing` to the socket, then frees it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.taken < this.plaintext.len() {
                let n = buf.remaining().min(this.plaintext.len() - this.taken);
                buf.put_slice(&this.plaintext[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.plaintext.len() {
                    this.plaintext = Vec::new();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            match this.process(Want::Read)? {
                Progress::Plaintext | Progress::Wrote(_) => {}
                Progress::Closed => return Poll::Ready(Ok(())),
                Progress::NeedBytes => {
                    // Whatever rustls answered (a key update) goes out
                    // before waiting for the peer.
                    if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    match ready!(this.poll_receive(cx)) {
                        Ok(()) => {}
                        // A peer that drops the connection without
                        // close_notify: the end of the stream all the same
                        // (HTTP frames its own messages).
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            return Poll::Ready(Ok(()))
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // At most one write's worth waits for the socket.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let data = &data[..data.len().min(MAX_WRITE)];
        loop {
            match this.process(Want::Write(data))? {
                Progress::Wrote(n) => {
                    if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    return Poll::Ready(Ok(n));
                }
                // Records that came in first wait for the reader.
                Progress::Plaintext => {}
                Progress::NeedBytes => return Poll::Ready(Err(invalid("handshake not complete"))),
                Progress::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while !this.closing {
            match this.process(Want::Close) {
                Ok(Progress::Plaintext) => {}
                Ok(_) => break,
                // A connection rustls refuses to go on with just closes.
                Err(_) => break,
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Copies a handshake record into `outgoing`.
fn encode(
    data: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    outgoing: &mut Vec<u8>,
) -> io::Result<()> {
    grow_into(outgoing, |room| match data.encode(room) {
        Ok(n) => Ok(Ok(n)),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            Ok(Err(required_size))
        }
        Err(e) => Err(invalid(&e.to_string())),
    })
}

/// Encrypts `data` into `outgoing`.
fn encrypt(
    traffic: &mut WriteTraffic<'_, rustls::server::ServerConnectionData>,
    data: &[u8],
    outgoing: &mut Vec<u8>,
) -> io::Result<usize> {
    grow_into(outgoing, |room| match traffic.encrypt(data, room) {
        Ok(n) => Ok(Ok(n)),
        Err(e) => encrypt_error(e),
    })
    .map(|()| data.len())
}

/// Queues close_notify in `outgoing`.
fn close_notify(
    traffic: &mut WriteTraffic<'_, rustls::server::ServerConnectionData>,
    outgoing: &mut Vec<u8>,
) -> io::Result<()> {
    grow_into(outgoing, |room| match traffic.queue_close_notify(room) {
        Ok(n) => Ok(Ok(n)),
        Err(e) => encrypt_error(e),
    })
}

fn encrypt_error(e: EncryptError) -> io::Result<Result<usize, usize>> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Ok(Err(required_size))
        }
        e => Err(io::Error::other(e.to_string())),
    }
}

/// Appends to `outgoing` what `write` puts in the room it is given:
/// `write` answers `Ok(written)`, or `Err(room needed)` having written
/// nothing, and is asked again with that much room.
fn grow_into(
    outgoing: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> io::Result<Result<usize, usize>>,
) -> io::Result<()> {
    let start = outgoing.len();
    let mut room = 0;
    loop {
        outgoing.resize(start + room, 0);
        match write(&mut outgoing[start..])? {
            Ok(written) => {
                outgoing.truncate(start + written);
                return Ok(());
            }
            Err(needed) if needed > room => room = needed,
            Err(_) => return Err(io::Error::other("TLS record does not fit")),
        }
    }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the client closed the connection during the TLS handshake",
    )
}

/// An acceptor that runs the TLS handshake, within `timeout`, on what
/// `inner` accepted.
#[derive(Clone)]
pub struct TlsAcceptor<A> {
    inner: A,
    config: Arc<ServerConfig>,
    timeout: Duration,
}

impl<A> TlsAcceptor<A> {
    /// TLS with `config` on the connections `inner` accepts.
    pub fn new(inner: A, config: Arc<ServerConfig>, timeout: Duration) -> Self {
        TlsAcceptor {
            inner,
            config,
            timeout,
        }
    }
}

impl<A, I, S> Accept<I, S> for TlsAcceptor<A>
where
    A: Accept<I, S>,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
    A::Future: Send + 'static,
{
    type Stream = TlsStream<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let config = self.config.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            match tokio::time::timeout(timeout, TlsStream::accept(stream, config)).await {
                Ok(tls) => Ok((tls?, service)),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A server configuration with a fresh self-signed key, and a client
    /// configuration that pins it.
    fn configs() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pin = countersign_core::pin::spki_sha256(cert.der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let client = countersign_core::pin::PinnedVerifier::client_config(pin).unwrap();
        (Arc::new(server), Arc::new(client))
    }

    /// `test`, failed if it takes more than ten seconds (instead of hanging).
    async fn within(test: impl std::future::Future<Output = ()>) {
        tokio::time::timeout(Duration::from_secs(10), test)
            .await
            .expect("the test did not finish within ten seconds");
    }

    /// A server connection and a rustls client connected to it.
    async fn pair() -> (
        TlsStream<TcpStream>,
        tokio_rustls::client::TlsStream<TcpStream>,
    ) {
        let (server, client) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            TlsStream::accept(tcp, server).await.unwrap()
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let client = tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        (accept.await.unwrap(), client)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_whole_and_in_order() {
        within(async {
            let (mut server, mut client) = pair().await;
            let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let sent = big.clone();
            let writer = tokio::spawn(async move {
                client.write_all(b"hello").await.unwrap();
                client.write_all(&sent).await.unwrap();
                client.flush().await.unwrap();
                let mut back = vec![0u8; 200_000];
                client.read_exact(&mut back).await.unwrap();
                client.shutdown().await.unwrap();
                back
            });
            let mut got = vec![0u8; 5 + big.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(&got[..5], b"hello");
            assert_eq!(&got[5..], &big[..]);
            server.write_all(&big[..200_000]).await.unwrap();
            server.flush().await.unwrap();
            let back = writer.await.unwrap();
            assert_eq!(&back[..], &big[..200_000]);
            // The client's close_notify ends the stream.
            let mut rest = Vec::new();
            server.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            server.shutdown().await.unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer() {
        within(async {
            let (mut server, mut client) = pair().await;
            client.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(b"pong").await.unwrap();
            server.flush().await.unwrap();
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"pong");
            // A read waits for the client, holding nothing meanwhile.
            let mut one = [0u8; 1];
            let waited =
                tokio::time::timeout(Duration::from_millis(50), server.read(&mut one)).await;
            assert!(waited.is_err(), "nothing was sent");
            let held = server.incoming.capacity()
                + server.plaintext.capacity()
                + server.outgoing.capacity();
            assert_eq!(held, 0, "buffers held by an idle connection");
        })
        .await;
    }

    #[tokio::test]
    async fn garbage_instead_of_a_handshake_is_refused() {
        within(async {
            let (server, _) = configs();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let err = TlsStream::accept(accepted, server).await.err().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        })
        .await;
    }
}

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
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, WriteTraffic,
};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use held::Held;

/// Bytes read from the socket at a time, into a buffer on the stack.
const READ_CHUNK: usize = 8 * 1024;
/// Most received bytes held before they form a message: a handshake
/// message may span records up to 64 KiB (rustls's own limit), plus one
/// record.
const MAX_INCOMING: usize = 64 * 1024 + 17 * 1024;
/// Most plaintext taken by one write (four full records).
const MAX_WRITE: usize = 64 * 1024;

/// A server-side TLS connection over `IO`.
///
/// Reading may send (what rustls queued), so both directions must be
/// polled from one task, as hyper and the device stream (`http/events.rs`) do:
/// the socket keeps one waker per direction.
pub struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// Received bytes; used once processed.
    incoming: Held,
    /// Decrypted bytes; used once read.
    plaintext: Held,
    /// Encrypted bytes; used once sent.
    outgoing: Held,
    /// The socket reached its end.
    eof: bool,
    /// The peer sent close_notify: no more application data comes.
    peer_closed: bool,
    /// Our close_notify is queued.
    closing: bool,
    /// rustls refused the connection: it is not called again, and only
    /// the alert it queued is still sent.
    failed: bool,
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
            incoming: Held::default(),
            plaintext: Held::default(),
            outgoing: Held::default(),
            eof: false,
            peer_closed: false,
            closing: false,
            failed: false,
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
            match self.process_or_alert(Want::Read, cx) {
                // Our flight goes out (at the top of the loop) before we
                // wait for the answer. The client's Finished may end the
                // handshake with nothing to send: then nothing more comes
                // until the client's request, which is not ours to wait for.
                Ok(Progress::NeedBytes)
                    if self.outgoing.is_used_up() && self.conn.is_handshaking() =>
                {
                    ready!(self.poll_receive(cx))?
                }
                Ok(Progress::NeedBytes | Progress::Plaintext | Progress::Wrote(_)) => {}
                Ok(Progress::Closed) => return Poll::Ready(Err(closed())),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Feeds the received bytes to rustls until it has something for
    /// `want`, or needs more bytes. After an error rustls is not called
    /// again.
    fn process(&mut self, want: Want<'_>) -> io::Result<Progress> {
        if self.failed {
            return Err(invalid("the TLS connection failed"));
        }
        loop {
            let status = self.conn.process_tls_records(self.incoming.unused_mut());
            let mut discard = status.discard;
            let step = match status.state {
                Ok(state) => {
                    let mut handover = Handover {
                        plaintext: &mut self.plaintext,
                        outgoing: &mut self.outgoing,
                        peer_closed: &mut self.peer_closed,
                        closing: &mut self.closing,
                        discard: &mut discard,
                    };
                    handover.handle(state, &want)
                }
                Err(e) => Err(tls_error(e)),
            };
            self.incoming.used(discard);
            // After the peer's close_notify rustls reads nothing more, so
            // whatever came with it is dropped rather than held.
            if self.peer_closed {
                self.incoming.free();
            }
            match step {
                Ok(Some(progress)) => return Ok(progress),
                Ok(None) => {}
                Err(e) => {
                    self.fail();
                    return Err(e);
                }
            }
        }
    }

    /// [`Self::process`]; on an error, the alert it queued is sent if the
    /// socket takes it at once (best effort: the error is what counts).
    fn process_or_alert(&mut self, want: Want<'_>, cx: &mut Context<'_>) -> io::Result<Progress> {
        let processed = self.process(want);
        if processed.is_err() {
            let _ = self.poll_send(cx);
        }
        processed
    }

    /// Marks the connection failed and queues the alerts rustls has for
    /// the peer, without letting it process anything more (it would fail,
    /// and alert, again).
    fn fail(&mut self) {
        self.failed = true;
        while self.conn.wants_write() {
            let status = self.conn.process_tls_records(self.incoming.unused_mut());
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    if encode(&mut data, self.outgoing.vec()).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    }

    /// Reads what the socket has into `incoming`. Nothing is allocated
    /// while the socket has nothing to give.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.eof || self.peer_closed {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let got = buf.filled();
        if got.is_empty() {
            self.eof = true;
            return Poll::Ready(Ok(()));
        }
        self.incoming.compact();
        if self.incoming.len() + got.len() > MAX_INCOMING {
            // What was read is dropped, so the stream has a hole in it:
            // the connection cannot go on.
            self.failed = true;
            return Poll::Ready(Err(invalid("TLS message too large")));
        }
        self.incoming.extend(got);
        Poll::Ready(Ok(()))
    }

    /// Writes `outgoing` to the socket, then frees it.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_used_up() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, self.outgoing.unused()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.used(n);
        }
        self.outgoing.free();
        Poll::Ready(Ok(()))
    }
}

/// Where [`TlsStream::process`] puts what rustls hands over.
struct Handover<'a> {
    plaintext: &'a mut Held,
    outgoing: &'a mut Held,
    peer_closed: &'a mut bool,
    closing: &'a mut bool,
    discard: &'a mut usize,
}

impl Handover<'_> {
    /// Handles one state: `Some` where `process` stops, `None` to go on.
    fn handle(
        &mut self,
        state: ConnectionState<'_, '_, ServerConnectionData>,
        want: &Want<'_>,
    ) -> io::Result<Option<Progress>> {
        Ok(match state {
            ConnectionState::ReadTraffic(mut records) => {
                while let Some(record) = records.next_record() {
                    let record = record.map_err(tls_error)?;
                    *self.discard += record.discard;
                    self.plaintext.extend(record.payload);
                }
                Some(Progress::Plaintext)
            }
            ConnectionState::EncodeTlsData(mut data) => {
                encode(&mut data, self.outgoing.vec())?;
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
                *self.peer_closed = true;
                None
            }
            ConnectionState::Closed => Some(Progress::Closed),
            ConnectionState::WriteTraffic(mut traffic) => Some(match want {
                Want::Read => Progress::NeedBytes,
                Want::Write(data) => {
                    Progress::Wrote(encrypt(&mut traffic, data, self.outgoing.vec())?)
                }
                Want::Close => {
                    if !*self.closing {
                        close_notify(&mut traffic, self.outgoing.vec())?;
                        *self.closing = true;
                    }
                    Progress::Wrote(0)
                }
            }),
            ConnectionState::ReadEarlyData(_) => return Err(invalid("early data is not accepted")),
            _ => return Err(invalid("unexpected TLS state")),
        })
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
            let unread = this.plaintext.unused();
            if !unread.is_empty() {
                let n = buf.remaining().min(unread.len());
                buf.put_slice(&unread[..n]);
                this.plaintext.used(n);
                return Poll::Ready(Ok(()));
            }
            match this.process_or_alert(Want::Read, cx)? {
                Progress::Plaintext | Progress::Wrote(_) => {}
                Progress::Closed => return Poll::Ready(Ok(())),
                // close_notify: the end of the stream.
                Progress::NeedBytes if this.peer_closed => return Poll::Ready(Ok(())),
                Progress::NeedBytes => {
                    // What rustls queued while reading (an alert) goes out
                    // before waiting for the peer.
                    if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                    match ready!(this.poll_receive(cx)) {
                        Ok(()) => {}
                        // A peer that drops the connection without
                        // close_notify between records: the end of the
                        // stream all the same (HTTP frames its own
                        // messages). Within a record, it was cut short.
                        Err(e)
                            if e.kind() == io::ErrorKind::UnexpectedEof
                                && this.incoming.is_used_up() =>
                        {
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
        // Nothing may follow our close_notify.
        if this.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let data = &data[..data.len().min(MAX_WRITE)];
        loop {
            match this.process_or_alert(Want::Write(data), cx)? {
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
        // A failed connection sends only its alert.
        while !this.closing && !this.failed {
            match this.process(Want::Close) {
                Ok(Progress::Plaintext) => {}
                _ => break,
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Copies a handshake record into `outgoing`.
fn encode(
    data: &mut EncodeTlsData<'_, ServerConnectionData>,
    outgoing: &mut Vec<u8>,
) -> io::Result<()> {
    grow_into(outgoing, |room| Ok(data.encode(room)?))
}

/// Encrypts `data` into `outgoing`.
fn encrypt(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    data: &[u8],
    outgoing: &mut Vec<u8>,
) -> io::Result<usize> {
    grow_into(outgoing, |room| Ok(traffic.encrypt(data, room)?)).map(|()| data.len())
}

/// Queues close_notify in `outgoing`.
fn close_notify(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    outgoing: &mut Vec<u8>,
) -> io::Result<()> {
    grow_into(outgoing, |room| Ok(traffic.queue_close_notify(room)?))
}

/// Why rustls wrote nothing into the room it was given.
enum Unfit {
    /// It needs this much room.
    Needs(usize),
    /// It cannot write at all.
    Failed(io::Error),
}

impl From<EncodeError> for Unfit {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Unfit::Needs(required_size)
            }
            e => Unfit::Failed(io::Error::other(e.to_string())),
        }
    }
}

impl From<EncryptError> for Unfit {
    fn from(e: EncryptError) -> Self {
        match e {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Unfit::Needs(required_size)
            }
            e => Unfit::Failed(io::Error::other(e.to_string())),
        }
    }
}

/// Appends to `outgoing` what `write` puts in the room it is given, asking
/// again with the room it says it needs.
fn grow_into(
    outgoing: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Unfit>,
) -> io::Result<()> {
    let start = outgoing.len();
    let mut room = 0;
    loop {
        outgoing.resize(start + room, 0);
        match write(&mut outgoing[start..]) {
            Ok(written) => {
                outgoing.truncate(start + written);
                return Ok(());
            }
            Err(Unfit::Needs(needed)) if needed > room => room = needed,
            Err(Unfit::Needs(_)) => return Err(io::Error::other("TLS record does not fit")),
            Err(Unfit::Failed(e)) => {
                outgoing.truncate(start);
                return Err(e);
            }
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

mod acceptor;
mod held;
#[cfg(test)]
mod tests;

pub use acceptor::TlsAcceptor;

//! Limits on connections. Each accepted connection takes one file
//! descriptor until it closes, device streams all day long; a client that
//! opens connections and sends nothing could otherwise take every
//! descriptor and stall every other request. So: a total cap kept well
//! under the open-file limit (raised to its hard limit at start), a cap per
//! network address, and timeouts for the TLS handshake and for request
//! headers (which also closes idle kept-alive connections; see `serve`).
//! A connection over a cap is closed at once, before any TLS work.

use std::collections::HashMap;
use std::future::Ready;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::{BoxFuture, Either};
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Descriptors kept free for the database, logs and the data folder.
const RESERVED_FILES: u64 = 64;

/// Writes go straight to the wrapped `stream`: these wrappers only count
/// or time the reading side.
macro_rules! delegate_write {
    ($wrapper:ty $(, $t:ident)?) => {
        impl$(<$t: AsyncWrite + Unpin>)? AsyncWrite for $wrapper {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.stream).poll_write(cx, buf)
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.stream).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.stream).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.stream.is_write_vectored()
            }
        }
    };
}

/// Raises the open-file limit to its hard limit and returns the total
/// connection cap: `configured`, or seven eighths of the limit, and never
/// closer than [`RESERVED_FILES`] to it.
pub fn raise_file_limit(configured: usize) -> (u64, usize) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let room = usize::try_from(limit.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    let default = usize::try_from(limit / 8 * 7).unwrap_or(usize::MAX);
    let cap = if configured == 0 { default } else { configured };
    (limit, cap.min(room).max(1))
}

/// Counts open connections, in total and per network address.
pub struct Gate {
    total: usize,
    per_address: Option<usize>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

impl Gate {
    /// At most `total` connections, and `per_address` from one network
    /// address (`None`: no per-address cap, as behind a reverse proxy).
    pub fn new(total: usize, per_address: Option<usize>) -> Arc<Self> {
        Arc::new(Gate {
            total,
            per_address,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for a connection from `ip`, held until dropped; `None` when
    /// a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let key = crate::domain::limits::network_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_address) = &mut *open;
        let here = by_address.get(&key).copied().unwrap_or(0);
        if *total >= self.total || self.per_address.is_some_and(|max| here >= max) {
            return None;
        }
        *total += 1;
        by_address.insert(key, here + 1);
        Some(Admitted {
            gate: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// A connection's place, given back when it closes.
pub struct Admitted {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        let (total, by_address) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.key);
            }
        }
    }
}

/// A TCP connection holding its place.
pub struct Counted {
    stream: TcpStream,
    _place: Admitted,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

delegate_write!(Counted);

/// The first acceptor: admits a connection through the [`Gate`] (or
/// closes it) before `inner` (TLS, or nothing) sees it.
#[derive(Clone)]
pub struct Capped<A> {
    inner: A,
    gate: Arc<Gate>,
}

impl<A> Capped<A> {
    /// `inner` behind `gate`.
    pub fn new(inner: A, gate: Arc<Gate>) -> Self {
        Capped { inner, gate }
    }
}

impl<A, S> Accept<TcpStream, S> for Capped<A>
where
    A: Accept<Counted, S>,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Either<Ready<io::Result<(A::Stream, A::Service)>>, A::Future>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let place = stream
            .peer_addr()
            .ok()
            .and_then(|a| self.gate.admit(a.ip()));
        match place {
            Some(place) => Either::Right(self.inner.accept(
                Counted {
                    stream,
                    _place: place,
                },
                service,
            )),
            None => Either::Left(std::future::ready(Err(io::Error::other(
                "connection limit reached",
            )))),
        }
    }
}

/// The outer acceptor: the client must start its first request within
/// `timeout` of the connection being ready (after TLS). hyper times the
/// headers once they start, and idle kept-alive connections after a
/// response, but not a connection that never sends a byte.
#[derive(Clone)]
pub struct FirstRequest<A> {
    inner: A,
    timeout: Duration,
}

impl<A> FirstRequest<A> {
    /// `inner`, then the first bytes within `timeout`.
    pub fn new(inner: A, timeout: Duration) -> Self {
        FirstRequest { inner, timeout }
    }
}

impl<A, S> Accept<TcpStream, S> for FirstRequest<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Awaited<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, A::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let timeout = self.timeout;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let deadline = Some(Box::pin(tokio::time::sleep(timeout)));
            Ok((Awaited { stream, deadline }, service))
        })
    }
}

/// A connection waiting for its first bytes until a deadline.
pub struct Awaited<T> {
    stream: T,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Awaited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        let Some(deadline) = self.deadline.as_mut() else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => Poll::Ready(Err(
                io::Error::new(io::ErrorKind::TimedOut, "no request within the timeout"),
            )),
            other => other,
        }
    }
}

delegate_write!(Awaited<T>, T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_total_and_places_come_back() {
        let gate = Gate::new(3, Some(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "per address");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(b).is_none(), "in total");
        drop(a1);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(b).is_some());
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let gate = Gate::new(10, Some(1));
        let _x = gate.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(gate.admit("2001:db8::ffff".parse().unwrap()).is_none());
        assert!(gate.admit("2001:db8:0:1::1".parse().unwrap()).is_some());
        // An IPv4 address mapped into IPv6 counts as itself.
        let _y = gate.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert!(gate.admit("::ffff:192.0.2.1".parse().unwrap()).is_none());
    }

    #[test]
    fn the_cap_stays_under_the_file_limit() {
        let (limit, cap) = raise_file_limit(0);
        assert!((cap as u64) < limit);
        let (_, cap) = raise_file_limit(usize::MAX);
        assert!(cap as u64 <= limit - RESERVED_FILES);
    }
}

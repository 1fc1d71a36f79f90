//! The acceptor that puts TLS on accepted connections.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum_server::accept::Accept;
use futures_util::future::BoxFuture;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};

use super::TlsStream;

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

//! The TLS adapter against tokio-rustls's client, and against bytes
//! no client should send.

use super::*;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::time::Duration;
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
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    // As the server's own configuration: with no tickets to send, nothing
    // follows the client's Finished, and the handshake must still end.
    server.send_tls13_tickets = 0;
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
        let waited = tokio::time::timeout(Duration::from_millis(50), server.read(&mut one)).await;
        assert!(waited.is_err(), "nothing was sent");
        let held =
            server.incoming.capacity() + server.plaintext.capacity() + server.outgoing.capacity();
        assert_eq!(held, 0, "buffers held by an idle connection");
        // Once the server has closed (the client has not), nothing may
        // follow its close_notify.
        server.shutdown().await.unwrap();
        let late = server.write(b"late").await.unwrap_err();
        assert_eq!(late.kind(), io::ErrorKind::BrokenPipe);
    })
    .await;
}

#[tokio::test]
async fn close_notify_ends_the_stream_while_the_socket_stays_open() {
    within(async {
        let (mut server, mut client) = pair().await;
        client.write_all(b"last").await.unwrap();
        client.flush().await.unwrap();
        // close_notify and bytes after it, in one write.
        let (tcp, tls) = client.get_mut();
        tls.send_close_notify();
        let mut bytes = Vec::new();
        tls.write_tls(&mut bytes).unwrap();
        bytes.extend_from_slice(&[0x17; 1000]);
        tcp.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last");
        // Nothing more is read from the socket after close_notify, and
        // what came with it is not kept.
        assert_eq!(server.read(&mut [0u8; 8]).await.unwrap(), 0);
        assert_eq!(
            server.incoming.capacity(),
            0,
            "bytes kept after close_notify"
        );
        server.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_forged_record_fails_the_connection_and_shutdown_still_works() {
    within(async {
        let (mut server, mut client) = pair().await;
        let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        forged.extend_from_slice(&[0x5a; 0x20]);
        client.get_mut().0.write_all(&forged).await.unwrap();
        let err = server.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // The client is told why, before the connection is dropped.
        let told = client.read(&mut [0u8; 8]).await.unwrap_err();
        assert!(told.to_string().contains("alert"), "{told}");
        // rustls is not asked again (it would alert twice).
        assert!(server.read(&mut [0u8; 8]).await.is_err());
        assert!(server.write(b"x").await.is_err());
        server.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_record_cut_short_by_the_end_of_the_connection_is_an_error() {
    within(async {
        let (mut server, mut client) = pair().await;
        // Half of an application-data record, then the end.
        let tcp = &mut client.get_mut().0;
        tcp.write_all(&[0x17, 0x03, 0x03, 0x00, 0x40, 1, 2, 3])
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
        let err = server.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    })
    .await;
}

/// The error of a handshake on a connection whose client sent `bytes`.
async fn handshake_after(bytes: &[&[u8]]) -> io::Error {
    let (server, _) = configs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    for b in bytes {
        tcp.write_all(b).await.unwrap();
    }
    let (accepted, _) = listener.accept().await.unwrap();
    TlsStream::accept(accepted, server).await.err().unwrap()
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_refused() {
    within(async {
        let err = handshake_after(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    })
    .await;
}

#[tokio::test]
async fn an_alert_inside_a_split_handshake_message_is_refused_without_a_panic() {
    within(async {
        // The first 4 bytes of a 256-byte ClientHello, then an alert.
        let err = handshake_after(&[
            &[0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x01, 0x00],
            &[0x15, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00],
        ])
        .await;
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    })
    .await;
}

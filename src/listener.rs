//! The gRPC port's connections: accepted with `TCP_NODELAY`, capped in
//! number, and (unless plaintext was chosen) put through a TLS handshake,
//! bounded in time, before tonic sees them. Each connection carries
//! [`PeerInfo`] (address and verified client-certificate names) into every
//! request's extensions.

use crate::security::identity::{certificate_names, PeerInfo};
use crate::security::tls::TlsReloader;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long accepting pauses after a failed accept (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted connection. Holding it holds one of the connection slots.
pub struct Conn {
    io: Io,
    info: PeerInfo,
    _slot: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

/// Accepts connections in the background and yields them ready for HTTP/2.
/// At `max_connections` open, accepting pauses (the kernel's backlog holds
/// new ones) until one closes. The accept loop ends when the stream is
/// dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    max_connections: usize,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let slot = tokio::select! {
                () = tx.closed() => return,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            };
            let (stream, remote) = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: say so, keep
                        // serving the connections already open, and wait a
                        // little before trying again rather than spin.
                        tracing::warn!(error = %e, "accepting a gRPC connection failed");
                        drop(slot);
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            // No Nagle: a unary answer must not wait for the peer's delayed ACK.
            let _ = stream.set_nodelay(true);
            let info = PeerInfo {
                remote: Some(remote),
                certificate: None,
            };
            match &tls {
                None => {
                    let conn = Conn {
                        io: Io::Plain(stream),
                        info,
                        _slot: slot,
                    };
                    if tx.send(Ok(conn)).await.is_err() {
                        return;
                    }
                }
                Some(tls) => {
                    let acceptor = TlsAcceptor::from(tls.config());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(stream)) => {
                                let certificate = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .and_then(|leaf| certificate_names(leaf));
                                let conn = Conn {
                                    io: Io::Tls(Box::new(stream)),
                                    info: PeerInfo {
                                        certificate,
                                        ..info
                                    },
                                    _slot: slot,
                                };
                                let _ = tx.send(Ok(conn)).await;
                            }
                            // A failed handshake is the client's problem, not
                            // the server's: log it and go on.
                            Ok(Err(e)) => {
                                tracing::info!(%remote, error = %e, "TLS handshake failed")
                            }
                            Err(_) => {
                                tracing::info!(%remote, "TLS handshake timed out")
                            }
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

//! The gRPC port's connections: accepted with `TCP_NODELAY`, capped in
//! number, and (unless plaintext was chosen) put through a TLS handshake
//! before tonic sees them. Each connection carries [`PeerInfo`] (address,
//! verified client-certificate names, its calls' [`Activity`]) into every
//! request's extensions.
//!
//! A connection slot is held only by a connection that uses it: one that has
//! not finished its TLS handshake, HTTP/2 preface and first call within
//! [`Lifetimes::handshake_timeout`], or that has had no call open for
//! [`Lifetimes::idle_timeout`], is closed by its own IO returning an error,
//! so tonic drops it and the slot is free again. The maximum age's GOAWAY
//! is tonic's; its grace is enforced here the same way.

mod calls;
mod report;

pub use calls::{Activity, CallLayer};
pub use report::{Closed, Report};

use crate::security::identity::{certificate_names, PeerInfo};
use crate::security::tls::TlsReloader;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long accepting pauses after a failed accept (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How long a gRPC connection may live, and how it is kept honest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// From accept to the end of the TLS handshake, the HTTP/2 preface and
    /// the first call (`GATEWAY_HANDSHAKE_TIMEOUT`).
    pub handshake_timeout: Duration,
    /// HTTP/2 PING interval (`GATEWAY_KEEPALIVE_INTERVAL`).
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered (`GATEWAY_KEEPALIVE_TIMEOUT`).
    pub keepalive_timeout: Duration,
    /// How long a connection may have no call open (`GATEWAY_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// When a connection is sent GOAWAY (`GATEWAY_MAX_CONNECTION_AGE`).
    pub max_age: Duration,
    /// How long its calls may still run after that
    /// (`GATEWAY_MAX_CONNECTION_AGE_GRACE`).
    pub max_age_grace: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5 * 60),
            max_age: Duration::from_secs(30 * 60),
            max_age_grace: Duration::from_secs(60),
        }
    }
}

/// One of the connection slots, counted in `grpc_connections_open`.
struct Slot {
    _permit: OwnedSemaphorePermit,
    report: Arc<Report>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, report: Arc<Report>) -> Self {
        report.metrics().grpc_connections_open_add(1);
        Self {
            _permit: permit,
            report,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.report.metrics().grpc_connections_open_add(-1);
    }
}

/// One accepted connection. Holding it holds one of the connection slots.
pub struct Conn {
    io: Io,
    info: PeerInfo,
    life: Life,
    _slot: Slot,
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

/// A connection's deadlines: first call, idle, end of the age grace.
struct Life {
    accepted: Instant,
    lifetimes: Lifetimes,
    activity: Arc<Activity>,
    timer: Pin<Box<Sleep>>,
    /// Past every deadline a connection can have.
    never: Instant,
    closed: Option<Closed>,
    report: Arc<Report>,
}

impl Life {
    fn new(accepted: Instant, lifetimes: Lifetimes, report: Arc<Report>) -> Self {
        let never = accepted
            .checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
            .or_else(|| accepted.checked_add(Duration::from_secs(365 * 24 * 3600)))
            .unwrap_or(accepted);
        Self {
            accepted,
            lifetimes,
            activity: Arc::new(Activity::new(accepted)),
            timer: Box::pin(tokio::time::sleep_until(never)),
            never,
            closed: None,
            report,
        }
    }

    /// The next deadline and what passing it means.
    fn next(&self) -> (Instant, Closed) {
        let l = &self.lifetimes;
        let forced = self
            .accepted
            .checked_add(l.max_age)
            .and_then(|t| t.checked_add(l.max_age_grace))
            .map(|t| (t, Closed::MaxAge));
        let quiet = if !self.activity.started() {
            self.accepted
                .checked_add(l.handshake_timeout)
                .map(|t| (t, Closed::HandshakeTimeout))
        } else {
            self.activity
                .idle_since()
                .and_then(|since| since.checked_add(l.idle_timeout))
                .map(|t| (t, Closed::Idle))
        };
        [forced, quiet]
            .into_iter()
            .flatten()
            .min_by_key(|(t, _)| *t)
            .unwrap_or((self.never, Closed::MaxAge))
    }

    /// Ready with the reason once a deadline has passed; the connection is
    /// closed from then on.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Closed> {
        if let Some(why) = self.closed {
            return Poll::Ready(why);
        }
        // Before reading the state, so a call ending meanwhile wakes us.
        self.activity.set_reader(cx.waker());
        loop {
            let (deadline, _) = self.next();
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The timer fired; the state may have moved the deadline on.
            let (deadline, why) = self.next();
            if deadline <= Instant::now() {
                self.closed = Some(why);
                return Poll::Ready(why);
            }
        }
    }
}

impl Drop for Life {
    fn drop(&mut self) {
        match self.closed {
            Some(why) => self.report.note(why),
            // tonic's GOAWAY at the maximum age ended it.
            None if self.accepted.elapsed() >= self.lifetimes.max_age => {
                self.report.note(Closed::MaxAge)
            }
            None => {}
        }
    }
}

/// The connections that may be open at once, shared by every listener of
/// the gRPC port (one per worker thread), so the cap is the port's.
#[derive(Debug, Clone)]
pub struct ConnectionSlots(Arc<Semaphore>);

impl ConnectionSlots {
    pub fn new(max_connections: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            max_connections.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }
}

/// Accepts connections in the background and yields them ready for HTTP/2.
/// At `max_connections` open, accepting pauses (the kernel's backlog holds
/// new ones) until one closes. The accept loop ends when the stream is
/// dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    slots: ConnectionSlots,
    lifetimes: Lifetimes,
    report: Arc<Report>,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = slots.0;
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
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
                        drop(permit);
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let accepted = Instant::now();
            let slot = Slot::new(permit, report.clone());
            // No Nagle: a unary answer must not wait for the peer's delayed ACK.
            let _ = stream.set_nodelay(true);
            let life = Life::new(accepted, lifetimes, report.clone());
            let info = PeerInfo {
                remote: Some(remote),
                certificate: None,
                activity: Some(life.activity.clone()),
            };
            match &tls {
                None => {
                    let conn = Conn {
                        io: Io::Plain(stream),
                        info,
                        life,
                        _slot: slot,
                    };
                    if tx.send(Ok(conn)).await.is_err() {
                        return;
                    }
                }
                Some(tls) => {
                    let acceptor = TlsAcceptor::from(tls.config());
                    let tx = tx.clone();
                    let report = report.clone();
                    let deadline = accepted
                        .checked_add(lifetimes.handshake_timeout)
                        .unwrap_or(accepted);
                    tokio::spawn(async move {
                        let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
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
                                    life,
                                    _slot: slot,
                                };
                                let _ = tx.send(Ok(conn)).await;
                            }
                            // A failed handshake is the client's problem, not
                            // the server's: count it, summarise it, go on.
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                                uncounted(life);
                                report.note(Closed::TlsHandshakeFailed);
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "TLS handshake timed out");
                                uncounted(life);
                                report.note(Closed::HandshakeTimeout);
                            }
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Drops a connection's deadlines without counting a closure: the caller
/// counts the one that happened.
fn uncounted(mut life: Life) {
    life.lifetimes.max_age = Duration::MAX;
    life.closed = None;
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(why) = self.life.poll_expired(cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connection closed by the gateway: {}", why.label()),
            )));
        }
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

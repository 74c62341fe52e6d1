//! The HTTP client of Graph calls: hyper's pooled client over rustls, with
//! nothing between the outbound stack and the connection but what Graph
//! calls need.
//!
//! What it does, as the shared client of token and key-set requests does
//! ([`super::http_client`]):
//!
//! - TLS through rustls with the system's root certificates, ALPN `h2` and
//!   `http/1.1`, so Graph is reached over pooled HTTP/2;
//! - a connection (TCP, proxy tunnel and TLS together) must be made within
//!   10 s; `TCP_NODELAY`; idle pooled connections are closed after 90 s;
//! - `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (and their lowercase forms)
//!   are honoured unless proxies are off: `https://` goes through a
//!   `CONNECT` tunnel, `http://` is sent to the proxy in absolute form;
//! - redirects are never followed: a 3xx is an answer like any other;
//! - the request headers it always sends are made once, here.
//!
//! Gzip answers are inflated as they are read, under the body limit
//! ([`super::body`]).

use bytes::Bytes;
use http::header::{HeaderValue, USER_AGENT};
use http::uri::Scheme;
use http::{Request, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::{Client, ResponseFuture};
pub use hyper_util::client::proxy::matcher::Matcher as ProxyMatcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower::Service;

/// How long a connection may take to be made: TCP, a proxy's tunnel, TLS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a pooled connection may stay idle.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Sent with every request.
pub(crate) const USER_AGENT_VALUE: HeaderValue =
    HeaderValue::from_static(concat!("graph-grpc-gateway/", env!("CARGO_PKG_VERSION")));
/// Answers may come gzip-compressed; they are inflated as they are read.
pub(crate) const GZIP: HeaderValue = HeaderValue::from_static("gzip");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client could not be built (no usable root certificates, a TLS
/// setting rustls refuses).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

/// The HTTP client of Graph calls. Clones share the connection pool.
#[derive(Clone)]
pub struct GraphHttp {
    client: Client<Connector, Full<Bytes>>,
    proxy: Option<Arc<ProxyMatcher>>,
    /// Sent with each request, for the target it was bound to.
    proxy_authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for GraphHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphHttp")
            .field("proxy", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

/// What every Graph client of the process shares: the TLS configuration,
/// with the system's root certificates loaded once, and the proxy rules.
/// Each client made from it ([`Self::client`]) has its own connection pool,
/// so a per-core worker's client costs a pool, not another read of the
/// root store.
#[derive(Clone)]
pub struct GraphHttpConfig {
    tls: rustls::ClientConfig,
    proxy: Option<Arc<ProxyMatcher>>,
}

impl std::fmt::Debug for GraphHttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphHttpConfig")
            .field("proxy", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

impl GraphHttpConfig {
    /// Clients that honour the proxy variables of the environment when
    /// `use_proxy` is true, and reach every host directly otherwise.
    pub fn new(use_proxy: bool) -> Result<Self, BuildError> {
        Self::with_proxy(use_proxy.then(ProxyMatcher::from_env))
    }

    /// Clients that send what `proxy` intercepts through its proxy, and
    /// everything else (or everything, when `None`) directly.
    pub fn with_proxy(proxy: Option<ProxyMatcher>) -> Result<Self, BuildError> {
        Ok(Self {
            tls: tls_config()?,
            proxy: proxy.map(Arc::new),
        })
    }

    /// A client with a connection pool of its own.
    pub fn client(&self) -> GraphHttp {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // A proxy itself may be `https://`; it speaks HTTP/1.1 only.
        let to_proxy = HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp.clone());
        let route = Route {
            direct: tcp,
            to_proxy,
            proxy: self.proxy.clone(),
        };
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(self.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(route);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Connector { https });
        GraphHttp {
            client,
            proxy: self.proxy.clone(),
            proxy_authorization: None,
        }
    }
}

impl GraphHttp {
    /// A client that honours the proxy variables of the environment when
    /// `use_proxy` is true, and reaches every host directly otherwise.
    pub fn new(use_proxy: bool) -> Result<Self, BuildError> {
        Ok(GraphHttpConfig::new(use_proxy)?.client())
    }

    /// A client that sends what `proxy` intercepts through its proxy, and
    /// everything else (or everything, when `None`) directly.
    pub fn with_proxy(proxy: Option<ProxyMatcher>) -> Result<Self, BuildError> {
        Ok(GraphHttpConfig::with_proxy(proxy)?.client())
    }

    /// The client for requests to `target`'s scheme and host (which is
    /// what decides the proxy): a plain `http://` request through a proxy
    /// with credentials carries them in `Proxy-Authorization`, found here
    /// once. (An `https://` request carries them in its tunnel's `CONNECT`.)
    pub(crate) fn for_target(mut self, target: &Uri) -> Self {
        self.proxy_authorization = if target.scheme() == Some(&Scheme::HTTP) {
            self.proxy
                .as_ref()
                .and_then(|m| m.intercept(target))
                .and_then(|i| i.basic_auth().cloned())
        } else {
            None
        };
        self
    }

    /// What [`Self::for_target`] found.
    pub(crate) fn proxy_authorization(&self) -> Option<&HeaderValue> {
        self.proxy_authorization.as_ref()
    }

    /// Sends one request; its URI must be absolute.
    pub fn send(&self, req: Request<Full<Bytes>>) -> ResponseFuture {
        self.client.request(req)
    }
}

/// rustls as the shared client has it: the system's roots (certificates
/// it cannot parse are skipped; only a store with none usable and some
/// unusable is an error), TLS 1.2 and 1.3, the process's crypto provider
/// or ring.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    let (mut valid, mut invalid) = (0usize, 0usize);
    for cert in loaded.certs {
        match roots.add(cert) {
            Ok(()) => valid += 1,
            Err(_) => invalid += 1,
        }
    }
    if valid == 0 && invalid > 0 {
        let why = loaded
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(BuildError(if why.is_empty() {
            "no valid certificate in the system's root store".to_owned()
        } else {
            format!("the system's root store: {why}")
        }));
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| BuildError(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The whole connection, TLS included, within [`CONNECT_TIMEOUT`].
#[derive(Clone)]
struct Connector {
    https: HttpsConnector<Route>,
}

/// A connection that was not made in time.
#[derive(Debug, thiserror::Error)]
#[error("connecting timed out")]
pub struct ConnectTimedOut;

impl Service<Uri> for Connector {
    type Response = MaybeHttpsStream<Conn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.https.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.https.call(dst);
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(conn) => conn,
                Err(_) => Err(ConnectTimedOut.into()),
            }
        })
    }
}

/// Picks the way to a destination: directly, through a proxy's tunnel
/// (`https://`), or to the proxy itself (`http://`, sent in absolute form).
/// TLS to the destination is done above this, by the HTTPS connector.
#[derive(Clone)]
struct Route {
    direct: HttpConnector,
    to_proxy: HttpsConnector<HttpConnector>,
    proxy: Option<Arc<ProxyMatcher>>,
}

impl Service<Uri> for Route {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let Some(proxy) = self.proxy.as_ref().and_then(|m| m.intercept(&dst)) else {
            let connecting = self.direct.call(dst);
            return Box::pin(async move {
                Ok(Conn {
                    io: MaybeHttpsStream::Http(connecting.await?),
                    proxied: false,
                })
            });
        };
        if dst.scheme() == Some(&Scheme::HTTPS) {
            let mut tunnel = Tunnel::new(proxy.uri().clone(), self.to_proxy.clone());
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let mut headers = http::HeaderMap::new();
            headers.insert(USER_AGENT, USER_AGENT_VALUE);
            let mut tunnel = tunnel.with_headers(headers);
            let connecting = tunnel.call(dst);
            Box::pin(async move {
                Ok(Conn {
                    io: connecting.await?,
                    proxied: false,
                })
            })
        } else {
            let connecting = self.to_proxy.call(proxy.uri().clone());
            Box::pin(async move {
                Ok(Conn {
                    io: connecting.await?,
                    proxied: true,
                })
            })
        }
    }
}

/// A connection to the destination, or to the proxy that forwards plain
/// HTTP requests to it.
pub struct Conn {
    io: MaybeHttpsStream<TokioIo<TcpStream>>,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

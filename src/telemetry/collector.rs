//! The collector's two OTLP transports, each posting an encoded
//! `ExportTraceServiceRequest`:
//!
//! - **gRPC**: the `TraceService/Export` method over HTTP/2 (prior
//!   knowledge on `http://`, ALPN `h2` on `https://`), the request in one
//!   length-prefixed message; the answer's `grpc-status` says whether the
//!   collector took it;
//! - **HTTP/protobuf**: `POST {endpoint}/v1/traces` with
//!   `Content-Type: application/x-protobuf`; a 2xx answer is success.
//!
//! TLS is the Graph client's (rustls with the system's roots); no proxy is
//! used (a collector is a cluster service); redirects are not followed.

use super::otel::{TraceSettings, Transport};
use crate::graph::stack::describe;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_TYPE, TE, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The gRPC method spans are exported with.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where and how spans are sent.
pub struct Collector {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    transport: Transport,
}

impl Collector {
    pub fn new(settings: &TraceSettings) -> Result<Self, String> {
        let tls = crate::graph::transport::tls_config().map_err(|e| e.to_string())?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(crate::graph::transport::CONNECT_TIMEOUT));
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let (connector, http2_only) = match settings.transport {
            Transport::Grpc => (builder.enable_http2().wrap_connector(tcp), true),
            Transport::HttpProtobuf => (
                builder.enable_http1().enable_http2().wrap_connector(tcp),
                false,
            ),
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_only(http2_only)
            .build(connector);
        let uri = match settings.transport {
            Transport::Grpc => format!("{}{EXPORT_PATH}", settings.export_url()),
            Transport::HttpProtobuf => settings.export_url(),
        };
        let uri = uri
            .parse()
            .map_err(|e| format!("the collector's URL: {e}"))?;
        Ok(Self {
            client,
            uri,
            transport: settings.transport,
        })
    }

    /// Posts one encoded request; `Err` says why the collector did not
    /// take it.
    pub async fn send(&self, request: &[u8]) -> Result<(), String> {
        // The body is the request's one copy.
        let (body, content_type) = match self.transport {
            Transport::Grpc => {
                // One uncompressed message: a zero flag and its length.
                let mut framed = BytesMut::with_capacity(request.len() + 5);
                framed.put_u8(0);
                framed.put_u32(request.len() as u32);
                framed.put_slice(request);
                (framed.freeze(), "application/grpc")
            }
            Transport::HttpProtobuf => (Bytes::copy_from_slice(request), "application/x-protobuf"),
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .header(USER_AGENT, crate::graph::transport::USER_AGENT_VALUE);
        if self.transport == Transport::Grpc {
            req = req.header(TE, HeaderValue::from_static("trailers"));
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| describe(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let answer = resp.into_body().collect().await.map_err(|e| describe(&e))?;
        match self.transport {
            Transport::HttpProtobuf if status.is_success() => Ok(()),
            Transport::HttpProtobuf => Err(format!("HTTP {status}")),
            Transport::Grpc if !status.is_success() => Err(format!("HTTP {status}")),
            Transport::Grpc => {
                // A trailers-only answer carries the status in its headers.
                let code = answer
                    .trailers()
                    .and_then(|t| t.get("grpc-status"))
                    .or_else(|| headers.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match code.as_deref() {
                    Some("0") => Ok(()),
                    Some(code) => Err(format!("grpc-status {code}")),
                    None => Err("no grpc-status in the answer".to_owned()),
                }
            }
        }
    }
}

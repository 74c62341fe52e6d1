//! How the admin port is served: HTTP/1.1 with limits on everything a client
//! controls, so that a scanner or a slow or hostile client on the admin port
//! cannot tie up the probes' and scrapes' way in.
//!
//! - request heads above [`MAX_HEAD_BYTES`] are answered 431;
//! - a client gets [`HEADER_READ_TIMEOUT`] to send each request head, idle
//!   keep-alive connections included (slowloris);
//! - a request may carry at most [`MAX_BODY_BYTES`] of body, and no chunked
//!   body (413): no admin route reads one;
//! - a request is answered within [`REQUEST_TIMEOUT`] (408);
//! - at most [`MAX_CONNECTIONS`] connections are served at once; more are
//!   closed on accept;
//! - only GET and HEAD are allowed (405 with `Allow`).

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest wait for a complete request head, from the connection's start or
/// the previous answer.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body accepted; the admin routes take none.
pub const MAX_BODY_BYTES: usize = 1024;
/// Longest time one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Pause after a failed accept (e.g. out of file descriptors) before the
/// next, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// `app` with the per-request limits: methods, body size, time.
pub fn with_request_limits(app: Router) -> Router {
    app.layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(only_get_and_head))
}

/// 405 for anything but GET and HEAD, on every path; 413 for a chunked
/// body, whose size no header announces (`RequestBodyLimitLayer` refuses a
/// `Content-Length` past the limit, and would cut a chunked one only if a
/// route read it).
async fn only_get_and_head(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if request.headers().contains_key(header::TRANSFER_ENCODING) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "admin routes take no body\n").into_response();
    }
    next.run(request).await
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let service = TowerToHyperService::new(with_request_limits(app));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin server: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(
                max = MAX_CONNECTIONS,
                "admin server: connection refused, too many open"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(stream), service.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

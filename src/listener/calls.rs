//! Calls in flight: per connection (so an idle connection can be told from
//! a busy one) and across all connections, capped by
//! `GATEWAY_MAX_CONCURRENT_CALLS`. A call counts from the moment tonic hands
//! it to the server's layers until its response body is done or dropped
//! (the stream ended or was reset), so a streaming call counts for as long
//! as it streams.

use super::report::{Closed, Report};
use crate::security::identity::PeerInfo;
use bytes::Bytes;
use http::{Request, Response};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::body::Body;

/// What one connection's calls are doing, shared between the connection's
/// IO (which closes it when idle) and the call layer (which counts calls).
pub struct Activity {
    open: AtomicUsize,
    started: AtomicBool,
    /// When the last open call ended (or the connection was accepted).
    idle_since: Mutex<Instant>,
    /// The connection's reader, woken when its last call ends so it re-arms
    /// its idle deadline.
    reader: Mutex<Option<Waker>>,
}

impl fmt::Debug for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activity")
            .field("open", &self.open.load(Ordering::Relaxed))
            .field("started", &self.started.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Activity {
    pub(super) fn new(accepted: Instant) -> Self {
        Self {
            open: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            idle_since: Mutex::new(accepted),
            reader: Mutex::new(None),
        }
    }

    /// Whether any call has started on the connection.
    pub(super) fn started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Since when no call has been open; `None` while one is.
    pub(super) fn idle_since(&self) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        // A call may have opened meanwhile.
        (self.open.load(Ordering::Acquire) == 0).then_some(since)
    }

    pub(super) fn set_reader(&self, waker: &Waker) {
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        match &*reader {
            Some(w) if w.will_wake(waker) => {}
            _ => *reader = Some(waker.clone()),
        }
    }

    fn open(self: &Arc<Self>) -> OpenCall {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.started.store(true, Ordering::Release);
        OpenCall(self.clone())
    }
}

/// One open call on a connection.
struct OpenCall(Arc<Activity>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        let activity = &self.0;
        let mut since = activity
            .idle_since
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if activity.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
            drop(since);
            if let Some(reader) = activity
                .reader
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                reader.wake_by_ref();
            }
        }
    }
}

/// What a call holds while it is open.
struct Held {
    _open: Option<OpenCall>,
    _permit: OwnedSemaphorePermit,
    report: Arc<Report>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.report.metrics().grpc_calls_in_flight_add(-1);
    }
}

/// The tower layer for tonic's server builder: outermost, so a refused call
/// costs no policy check.
#[derive(Clone)]
pub struct CallLayer {
    slots: Arc<Semaphore>,
    max: usize,
    report: Arc<Report>,
}

impl CallLayer {
    pub fn new(max_concurrent_calls: usize, report: Arc<Report>) -> Self {
        let max = max_concurrent_calls.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            report,
        }
    }
}

impl<S> tower::Layer<S> for CallLayer {
    type Service = CallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CallService<S> {
    inner: S,
    layer: CallLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<Request<B>> for CallService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let open = req
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.activity.as_ref())
            .map(Activity::open);
        let report = self.layer.report.clone();
        let Ok(permit) = self.layer.slots.clone().try_acquire_owned() else {
            report.note(Closed::CallCap);
            let status = crate::status::too_many_calls(self.layer.max);
            return Box::pin(async move {
                drop(open);
                Ok(status.into_http())
            });
        };
        report.metrics().grpc_calls_in_flight_add(1);
        let held = Held {
            _open: open,
            _permit: permit,
            report,
        };
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(req).await?;
            Ok(response.map(|body| Body::new(HeldBody { body, _held: held })))
        })
    }
}

/// A response body that keeps its call counted until it is done or dropped.
struct HeldBody {
    body: Body,
    _held: Held,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

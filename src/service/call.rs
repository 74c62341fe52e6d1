//! One gRPC call's bookkeeping: the ids and deadline it carries in, the
//! metadata, metrics and log line it carries out.

use crate::graph::CallContext;
use crate::metrics::Metrics;
use crate::status::CallError;
use crate::translate::InvalidRequest;
use std::time::Duration;
use tokio::time::Instant;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};
use tracing::Span;

/// The longest caller-supplied request id accepted.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// A call in progress.
pub struct Call {
    rpc: &'static str,
    started: Instant,
    pub ctx: CallContext,
    /// A caller-supplied request id that cannot be forwarded to Graph.
    bad_request_id: Option<InvalidRequest>,
    span: Span,
}

/// A success: the message and Graph's `request-id` for it.
pub type Outcome<T> = Result<(T, Option<String>), CallError>;

impl Call {
    /// Reads the caller's request id (`client-request-id`, else
    /// `x-request-id`, else a new UUID) and gRPC deadline.
    pub fn start<T>(rpc: &'static str, req: &Request<T>) -> Self {
        let started = Instant::now();
        let md = req.metadata();
        let supplied = ["client-request-id", "x-request-id"]
            .into_iter()
            .find_map(|key| md.get(key).map(|v| (key, v.to_str().ok())));
        let (client_request_id, bad_request_id) = match supplied {
            None => (uuid::Uuid::new_v4().to_string(), None),
            Some((_, Some(id))) if is_request_id(id) => (id.to_owned(), None),
            Some((key, _)) => (
                uuid::Uuid::new_v4().to_string(),
                Some(InvalidRequest::single(
                    format!("metadata {key}"),
                    "must be 1 to 128 characters of A-Z a-z 0-9 - _ . :",
                )),
            ),
        };
        // Finish a little before the caller gives up, so the caller gets our
        // DEADLINE_EXCEEDED with its details rather than a bare cancellation.
        let deadline =
            grpc_timeout(md).map(|t| started + t - (t / 10).min(Duration::from_millis(50)));
        let span = if crate::telemetry::otel::on() {
            // The access layer opened the call's server span already when
            // it checked the caller; otherwise it opens here.
            let span = match req.extensions().get::<ServerSpan>() {
                Some(ServerSpan(span)) => span.clone(),
                None => server_span(rpc, crate::telemetry::otel::extract(md)),
            };
            span.record("client_request_id", client_request_id.as_str());
            span
        } else {
            tracing::info_span!("rpc", rpc, client_request_id = %client_request_id, request_id = tracing::field::Empty)
        };
        Self {
            rpc,
            started,
            ctx: CallContext {
                client_request_id,
                deadline,
                sent: Default::default(),
                caller: req
                    .extensions()
                    .get::<crate::security::access::Admitted>()
                    .map(|a| crate::budget::Caller {
                        name: a.caller.clone(),
                        weight: a.weight,
                    })
                    .unwrap_or_default(),
            },
            bad_request_id,
            span,
        }
    }

    /// Refuses the call before any work if its metadata is unusable.
    pub fn check_metadata(&mut self) -> Result<(), CallError> {
        match self.bad_request_id.take() {
            Some(e) => Err(CallError::Invalid(e)),
            None => Ok(()),
        }
    }

    /// The span the call's work runs in.
    pub fn span(&self) -> Span {
        self.span.clone()
    }

    /// Turns the outcome into the gRPC answer, with `request-id` and
    /// `client-request-id` metadata either way, and records it.
    pub fn finish<T>(self, metrics: &Metrics, outcome: Outcome<T>) -> Result<Response<T>, Status> {
        let elapsed = self.started.elapsed();
        let _enter = self.span.enter();
        match outcome {
            Ok((message, request_id)) => {
                record_code(&self.span, Code::Ok);
                let mut resp = Response::new(message);
                self.add_metadata(resp.metadata_mut(), request_id.as_deref());
                metrics.rpc(self.rpc, Code::Ok, elapsed);
                tracing::debug!(code = "OK", elapsed_us = micros(elapsed), "call finished");
                Ok(resp)
            }
            Err(e) => {
                let mut status = e.to_status();
                record_code(&self.span, status.code());
                self.add_metadata(status.metadata_mut(), e.request_id());
                metrics.rpc(self.rpc, status.code(), elapsed);
                let code = crate::metrics::code_name(status.code());
                match status.code() {
                    Code::Internal | Code::Unknown | Code::Unavailable | Code::DeadlineExceeded => {
                        tracing::warn!(code, elapsed_us = micros(elapsed), error = %status.message(), "call failed")
                    }
                    _ => {
                        tracing::info!(code, elapsed_us = micros(elapsed), error = %status.message(), "call failed")
                    }
                }
                Err(status)
            }
        }
    }

    /// Records an answer given without running the call's work (a replay
    /// of an earlier call with the same `request_id`, or a refusal by the
    /// `request_id` store), whose metadata is already set.
    pub fn finish_answered<T>(
        self,
        metrics: &Metrics,
        answer: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        let elapsed = self.started.elapsed();
        let _enter = self.span.enter();
        let code = match &answer {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        record_code(&self.span, code);
        metrics.rpc(self.rpc, code, elapsed);
        tracing::info!(
            code = crate::metrics::code_name(code),
            elapsed_us = micros(elapsed),
            "call answered by the request_id store"
        );
        answer
    }

    fn add_metadata(&self, md: &mut MetadataMap, request_id: Option<&str>) {
        if let Some(id) = request_id {
            self.span.record("request_id", id);
            if let Ok(v) = MetadataValue::try_from(id) {
                md.insert("request-id", v);
            }
        }
        if let Ok(v) = MetadataValue::try_from(self.ctx.client_request_id.as_str()) {
            md.insert("client-request-id", v);
        }
    }
}

/// A call's server span, opened by the access layer and handed to the
/// handler in the request's extensions (not as the current span: entering
/// it around the whole call would cost a registry lookup per layer on each
/// poll, for nothing the handler's own spans need).
#[derive(Debug, Clone)]
pub struct ServerSpan(pub Span);

/// The call's server span when traces are exported: named and attributed
/// after OpenTelemetry's RPC conventions, the child of the caller's W3C
/// trace context `parent` (a new trace without one), and carrying its
/// trace and span ids for the log lines written in it. For a call the
/// sampler leaves out, a log-only span with the same ids: the trace layer
/// has nothing to record for it.
pub fn server_span(rpc: &'static str, parent: opentelemetry::Context) -> Span {
    let service = crate::methods::SERVICE;
    let root = crate::telemetry::spans::decide(&parent);
    let ids = root.ids;
    if !ids.sampled {
        // The call's log lines still carry the trace's ids.
        return tracing::info_span!(
            "rpc",
            rpc,
            client_request_id = tracing::field::Empty,
            request_id = tracing::field::Empty,
            trace_id = %ids.trace_id,
            span_id = %ids.span_id,
        );
    }
    crate::telemetry::spans::open_root(root, || {
        tracing::info_span!(
            "rpc",
            otel.name = %format_args!("{service}/{rpc}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = rpc,
            rpc.grpc.status_code = tracing::field::Empty,
            rpc,
            client_request_id = tracing::field::Empty,
            request_id = tracing::field::Empty,
            trace_id = %ids.trace_id,
            span_id = %ids.span_id,
        )
    })
}

/// The gRPC code on the server span; the codes OpenTelemetry counts as a
/// server's error also mark the span an error.
pub fn record_code(span: &Span, code: Code) {
    span.record("rpc.grpc.status_code", code as i64);
    if matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    ) {
        span.record("otel.status_code", "ERROR");
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn is_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The caller's `grpc-timeout` (e.g. `250m`, `5S`), if any.
fn grpc_timeout(md: &MetadataMap) -> Option<Duration> {
    let value = md.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(timeout: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("grpc-timeout", timeout.parse().expect("ascii"));
        m
    }

    #[test]
    fn reads_grpc_timeout_units() {
        assert_eq!(grpc_timeout(&md("250m")), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(&md("5S")), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout(&md("2M")), Some(Duration::from_secs(120)));
        assert_eq!(grpc_timeout(&md("1H")), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout(&md("7u")), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout(&md("9n")), Some(Duration::from_nanos(9)));
        for bad in ["", "m", "123456789m", "5x", "-1S"] {
            assert_eq!(grpc_timeout(&md(bad)), None, "{bad}");
        }
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn request_ids() {
        assert!(is_request_id("5d630f12-0f12-5d63-120f-635d120f635d"));
        assert!(is_request_id("trace:abc_1.2"));
        for bad in ["", "a b", "a\r\nX-Evil: 1", &"a".repeat(129)] {
            assert!(!is_request_id(bad), "{bad:?}");
        }
    }
}

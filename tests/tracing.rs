//! Traces through the real binary: a gateway process exporting over OTLP
//! to a real OTLP receiver served by the test on loopback, in front of an
//! emulator process. A traced call is one trace under the caller's span,
//! with its children in order and their attributes; a retried call shows
//! each attempt; nothing secret or private is in the exported bytes (a
//! task's id only when `GATEWAY_TRACE_URL_FULL` asks for the full URL); a
//! call that waits for Intune's budget or for a Graph call slot shows the
//! wait; log lines carry the trace's ids; a dead collector fails no call.

mod common;

use common::otlp::{OtlpReceiver, ReceivedSpan};
use common::process::{emulator_gateway_and_client, Running};
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use graph_grpc_gateway::proto::v1::{
    SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{json, Value};
use std::time::Duration;
use tonic::transport::Channel;

const SECRET: &str = "trace-test-client-secret-6f1d";
/// A task field value: it must never be exported.
const FIELD_VALUE: &str = "private-display-name-9c2e";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An emulator process, and a gateway process against it exporting traces
/// to `endpoint` by `protocol`.
struct Stack {
    _emulator: Running,
    emulator: String,
    gateway: Running,
    client: SecurityConfigurationTaskServiceClient<Channel>,
    admin: String,
}

impl Stack {
    async fn start(endpoint: String, protocol: &str) -> Self {
        Self::start_with(endpoint, protocol, Vec::new()).await
    }

    /// As [`Stack::start`], the gateway with `more` environment too.
    async fn start_with(
        endpoint: String,
        protocol: &str,
        more: Vec<(&'static str, String)>,
    ) -> Self {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
            ("OTEL_SERVICE_NAME", "gateway-under-test".to_owned()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "k8s.pod.name=gw-0,team=sec%20ops".to_owned(),
            ),
        ];
        env.extend(more);
        // Every call's own line ("call finished") is debug.
        let (started, client) = emulator_gateway_and_client(
            &[],
            SECRET,
            env,
            &["--log", "info,graph_grpc_gateway::service=debug"],
        )
        .await;
        Self {
            _emulator: started.emulator,
            emulator: started.emulator_url,
            gateway: started.gateway,
            client,
            admin: started.admin_url,
        }
    }

    async fn faults(&self, faults: Value) {
        reqwest::Client::new()
            .post(format!("{}/_emulator/faults", self.emulator))
            .json(&faults)
            .send()
            .await
            .expect("faults")
            .error_for_status()
            .expect("queued");
    }

    /// The Graph requests the emulator has had.
    async fn received(&self) -> u64 {
        let answer: Value = reqwest::get(format!("{}/_emulator/requests", self.emulator))
            .await
            .expect("requests")
            .json()
            .await
            .expect("JSON");
        answer["received"].as_u64().expect("a count")
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

fn rename(name: &str) -> tonic::Request<UpdateSecurityConfigurationTaskRequest> {
    let mut req = tonic::Request::new(common::rename(
        graph_grpc_gateway::emulator::seed::EXAMPLE_TASK_ID,
        name,
        "",
    ));
    req.set_timeout(Duration::from_secs(20));
    req
}

fn traced(
    req: tonic::Request<UpdateSecurityConfigurationTaskRequest>,
) -> tonic::Request<UpdateSecurityConfigurationTaskRequest> {
    traced_in(req, CALLER_TRACE)
}

/// As [`traced`], in the caller's trace `trace`.
fn traced_in(
    mut req: tonic::Request<UpdateSecurityConfigurationTaskRequest>,
    trace: &str,
) -> tonic::Request<UpdateSecurityConfigurationTaskRequest> {
    let md = req.metadata_mut();
    md.insert(
        "traceparent",
        format!("00-{trace}-{CALLER_SPAN}-01")
            .parse()
            .expect("ascii"),
    );
    md.insert("tracestate", "caller=1".parse().expect("ascii"));
    md.insert("baggage", "tenant-hint=contoso".parse().expect("ascii"));
    md.insert(
        "client-request-id",
        "trace-test-call-1".parse().expect("ascii"),
    );
    req
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    let mut found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    found.sort_by_key(|s| s.start_unix_nanos);
    found
}

const UPDATE_SPAN: &str =
    "graphgateway.v1.SecurityConfigurationTaskService/UpdateSecurityConfigurationTask";
const PATCH_SPAN: &str = "PATCH /beta/deviceAppManagement/deviceAppManagementTasks/{id}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_call_is_one_trace_under_the_callers_span_with_each_attempt() {
    let receiver = OtlpReceiver::start().await;
    let mut stack = Stack::start(receiver.grpc_endpoint(), "grpc").await;
    // The first PATCH is answered 503: the gateway sends it again.
    stack
        .faults(json!([{"status": 503, "retry_after": "0"}]))
        .await;
    let answer = stack
        .client
        .update_security_configuration_task(traced(rename(FIELD_VALUE)))
        .await
        .expect("updated after a retry");
    let graph_request_id = answer
        .metadata()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id")
        .to_owned();
    let task: SecurityConfigurationTask = answer.into_inner();
    assert_eq!(task.display_name.as_deref(), Some(FIELD_VALUE));

    let spans = receiver
        .wait_for(
            |spans| named(spans, UPDATE_SPAN).len() == 1 && named(spans, PATCH_SPAN).len() == 2,
            Duration::from_secs(30),
        )
        .await;
    let server = named(&spans, UPDATE_SPAN)[0];
    assert_eq!(server.trace_id, CALLER_TRACE, "the caller's trace");
    assert_eq!(
        server.parent_span_id, CALLER_SPAN,
        "the child of the caller's span"
    );
    assert_eq!(server.kind, SpanKind::Server);
    for (key, value) in [
        ("rpc.system", "grpc"),
        (
            "rpc.service",
            "graphgateway.v1.SecurityConfigurationTaskService",
        ),
        ("rpc.method", "UpdateSecurityConfigurationTask"),
        ("rpc.grpc.status_code", "0"),
        ("client_request_id", "trace-test-call-1"),
        ("request_id", graph_request_id.as_str()),
    ] {
        assert_eq!(
            server.attributes.get(key).map(String::as_str),
            Some(value),
            "{key}: {server:?}"
        );
    }
    assert_eq!(
        server.resource.get("service.name").map(String::as_str),
        Some("gateway-under-test")
    );
    assert_eq!(
        server.resource.get("k8s.pod.name").map(String::as_str),
        Some("gw-0")
    );
    assert_eq!(
        server.resource.get("team").map(String::as_str),
        Some("sec ops")
    );

    // Every span of the call is in the caller's trace, under the server span.
    let call: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == CALLER_TRACE)
        .collect();
    for span in &call {
        if span.span_id != server.span_id {
            assert!(
                descends_from(span, &server.span_id, &spans),
                "{} is not under the server span",
                span.name
            );
        }
    }
    let access = named(&spans, "access");
    let access = access
        .iter()
        .find(|s| s.trace_id == CALLER_TRACE)
        .expect("the caller check's span");
    assert_eq!(
        access.parent_span_id, server.span_id,
        "checked inside the call"
    );
    let token = named(&spans, "token");
    assert!(!token.is_empty(), "the token span: {call:?}");
    assert!(token[0].attributes.contains_key("token.cache_hit"));
    let attempts = named(&spans, PATCH_SPAN);
    assert!(
        token[0].start_unix_nanos <= attempts[0].start_unix_nanos,
        "the token first"
    );
    assert!(
        attempts[0].end_unix_nanos <= attempts[1].start_unix_nanos,
        "one attempt after the other"
    );
    for (attempt, (span, status)) in attempts.iter().zip(["503", "200"]).enumerate() {
        assert_eq!(span.kind, SpanKind::Client);
        let attr = |k: &str| span.attributes.get(k).map(String::as_str);
        assert_eq!(attr("http.request.method"), Some("PATCH"));
        assert_eq!(
            attr("url.template"),
            Some("/beta/deviceAppManagement/deviceAppManagementTasks/{id}")
        );
        assert_eq!(attr("http.response.status_code"), Some(status));
        assert_eq!(attr("retry.attempt"), Some(attempt.to_string().as_str()));
        assert_eq!(attr("graph.client_request_id"), Some("trace-test-call-1"));
        assert!(
            attr("graph.request_id").is_some_and(|id| !id.is_empty()),
            "{span:?}"
        );
        assert_eq!(attr("url.full"), None, "off unless asked for: {span:?}");
    }
    assert_eq!(
        attempts[0]
            .attributes
            .get("retry_after")
            .map(String::as_str),
        Some("0")
    );

    // Nothing secret or private anywhere in what was exported.
    let exported = String::from_utf8_lossy(&receiver.raw_bytes()).into_owned();
    for private in [
        SECRET,
        FIELD_VALUE,
        graph_grpc_gateway::emulator::seed::EXAMPLE_TASK_ID,
        "tenant-hint",
        "Bearer",
    ] {
        assert!(!exported.contains(private), "{private} was exported");
    }

    // The call's log lines carry the trace's ids.
    let transcript = stack.gateway.transcript.lock().expect("lock").join("\n");
    assert!(
        transcript.contains(&format!("\"trace_id\":\"{CALLER_TRACE}\"")),
        "no log line carries the trace id"
    );
}

/// Whether `span` is under `ancestor` in `spans`.
fn descends_from(span: &ReceivedSpan, ancestor: &str, spans: &[ReceivedSpan]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.span_id == parent) {
            Some(p) => parent = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_exports_the_same_trace_and_a_call_without_context_starts_its_own() {
    let receiver = OtlpReceiver::start().await;
    // Off as the chart writes it when tracing.recordFullUrl is false.
    let off = vec![("GATEWAY_TRACE_URL_FULL", "false".to_owned())];
    let mut stack = Stack::start_with(receiver.http_endpoint(), "http/protobuf", off).await;
    stack
        .client
        .update_security_configuration_task(rename("over http"))
        .await
        .expect("updated");
    let spans = receiver
        .wait_for(
            |s| !named(s, UPDATE_SPAN).is_empty() && !named(s, PATCH_SPAN).is_empty(),
            Duration::from_secs(30),
        )
        .await;
    let server = named(&spans, UPDATE_SPAN)[0];
    assert!(server.parent_span_id.is_empty(), "a root span: {server:?}");
    assert_ne!(server.trace_id, CALLER_TRACE);
    let attempt = named(&spans, PATCH_SPAN)[0];
    assert_eq!(attempt.trace_id, server.trace_id);
    assert!(!attempt.attributes.contains_key("url.full"), "{attempt:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_fails_no_call_and_its_spans_are_counted_dropped() {
    let receiver = OtlpReceiver::start_refusing().await;
    let mut stack = Stack::start(receiver.grpc_endpoint(), "grpc").await;
    for i in 0..20 {
        stack
            .client
            .update_security_configuration_task(rename(&format!("collector down {i}")))
            .await
            .expect("a call never fails for the collector");
    }
    // The exporter says so in /metrics once its first export was refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dropped = stack
            .metric("graph_gateway_trace_spans_dropped_total")
            .await;
        if dropped > 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span counted dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver.requests() > 0, "the gateway tried to export");
    assert_eq!(
        stack
            .metric("graph_gateway_trace_spans_exported_total")
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_waits_for_intunes_budget_shows_the_wait_in_its_trace() {
    let receiver = OtlpReceiver::start().await;
    let budget = vec![
        ("GRAPH_BUDGET", "on".to_owned()),
        ("GRAPH_WRITE_BUDGET", "1/1s".to_owned()),
    ];
    let mut stack = Stack::start_with(receiver.grpc_endpoint(), "grpc", budget).await;
    for name in ["first in the window", "waits for the next"] {
        stack
            .client
            .update_security_configuration_task(rename(name))
            .await
            .expect("paced, then sent");
    }
    let spans = receiver
        .wait_for(
            |s| !named(s, "budget wait").is_empty() && named(s, UPDATE_SPAN).len() == 2,
            Duration::from_secs(30),
        )
        .await;
    let wait = named(&spans, "budget wait")[0];
    let second = named(&spans, UPDATE_SPAN)[1];
    assert_eq!(wait.trace_id, second.trace_id, "the second call waited");
    assert!(descends_from(wait, &second.span_id, &spans));
    let patch = named(&spans, PATCH_SPAN)
        .into_iter()
        .find(|p| p.trace_id == second.trace_id)
        .expect("the second call's PATCH");
    assert!(
        wait.end_unix_nanos <= patch.start_unix_nanos,
        "the wait, then the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_caller_did_not_sample_exports_nothing_but_logs_its_trace_id() {
    const UNSAMPLED_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4736";
    let receiver = OtlpReceiver::start().await;
    let mut stack = Stack::start(receiver.grpc_endpoint(), "grpc").await;
    // The caller's trace context says "not sampled" (flags 00); the default
    // sampler follows its parent.
    let mut unsampled = rename("left out of the trace");
    unsampled.metadata_mut().insert(
        "traceparent",
        format!("00-{UNSAMPLED_TRACE}-{CALLER_SPAN}-00")
            .parse()
            .expect("ascii"),
    );
    stack
        .client
        .update_security_configuration_task(unsampled)
        .await
        .expect("updated");
    // A sampled call after it: once its spans are in, the first call's
    // would be too (the queue exports in the order spans end).
    stack
        .client
        .update_security_configuration_task(traced(rename("in the trace")))
        .await
        .expect("updated");
    let spans = receiver
        .wait_for(
            |s| {
                named(s, UPDATE_SPAN)
                    .iter()
                    .any(|s| s.trace_id == CALLER_TRACE)
            },
            Duration::from_secs(30),
        )
        .await;
    assert!(
        spans.iter().all(|s| s.trace_id != UNSAMPLED_TRACE),
        "a span of the unsampled call was exported: {spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == CALLER_TRACE && s.name == PATCH_SPAN),
        "the sampled call has its children"
    );
    let transcript = stack.gateway.transcript.lock().expect("lock").join("\n");
    assert!(
        transcript.contains(&format!("\"trace_id\":\"{UNSAMPLED_TRACE}\"")),
        "the unsampled call's log lines carry its trace id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_full_url_asked_for_each_attempt_records_it_and_nothing_secret() {
    let receiver = OtlpReceiver::start().await;
    let on = vec![("GATEWAY_TRACE_URL_FULL", "true".to_owned())];
    let mut stack = Stack::start_with(receiver.grpc_endpoint(), "grpc", on).await;
    stack
        .client
        .update_security_configuration_task(traced(rename(FIELD_VALUE)))
        .await
        .expect("updated");
    let spans = receiver
        .wait_for(
            |s| {
                named(s, PATCH_SPAN)
                    .iter()
                    .any(|p| p.trace_id == CALLER_TRACE)
            },
            Duration::from_secs(30),
        )
        .await;
    let attempt = named(&spans, PATCH_SPAN)
        .into_iter()
        .find(|p| p.trace_id == CALLER_TRACE)
        .expect("the call's PATCH");
    let route = format!(
        "/beta/deviceAppManagement/deviceAppManagementTasks/{}",
        graph_grpc_gateway::emulator::seed::EXAMPLE_TASK_ID
    );
    let full = attempt
        .attributes
        .get("url.full")
        .unwrap_or_else(|| panic!("no url.full: {attempt:?}"));
    assert!(full.ends_with(&route), "{full}");
    assert_eq!(*full, format!("{}{route}", stack.emulator));
    assert_eq!(
        attempt.attributes.get("url.template").map(String::as_str),
        Some("/beta/deviceAppManagement/deviceAppManagementTasks/{id}")
    );
    // The attempt span only: no other span carries a URL.
    for span in spans.iter().filter(|s| s.name != PATCH_SPAN) {
        assert!(!span.attributes.contains_key("url.full"), "{span:?}");
    }
    // The id now leaves in the URL; still no secret, token or field value.
    let exported = String::from_utf8_lossy(&receiver.raw_bytes()).into_owned();
    assert!(exported.contains(&route), "the full URL was exported");
    for private in [SECRET, FIELD_VALUE, "tenant-hint", "Bearer"] {
        assert!(!exported.contains(private), "{private} was exported");
    }
    let transcript = stack.gateway.transcript.lock().expect("lock").join("\n");
    assert!(
        transcript.contains("GATEWAY_TRACE_URL_FULL"),
        "the gateway says at start that it records the URL"
    );
}

/// Polls `what` until it holds; panics naming `waiting_for` when `limit`
/// passes first.
async fn until<F: std::future::Future<Output = bool>>(
    waiting_for: &str,
    limit: Duration,
    mut what: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !what().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting_for}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_waits_for_a_graph_call_slot_shows_the_wait_in_its_trace() {
    const HOLDER_TRACE: &str = "6af92f3577b34da6a3ce929d0e0e4736";
    const WAITER_TRACE: &str = "7bf92f3577b34da6a3ce929d0e0e4736";
    let receiver = OtlpReceiver::start().await;
    let one_slot = vec![("GRAPH_MAX_IN_FLIGHT", "1".to_owned())];
    let stack = Stack::start_with(receiver.grpc_endpoint(), "grpc", one_slot).await;
    // Graph holds the first PATCH's answer back (the task is updated at
    // once): its call keeps the only slot for that long.
    stack
        .faults(json!([{"body": "Unchanged", "delay_ms": 5000}]))
        .await;
    let before = stack.received().await;
    let stack = &stack;
    let call = |name: &'static str, trace: &'static str| {
        let mut client = stack.client.clone();
        tokio::spawn(async move {
            client
                .update_security_configuration_task(traced_in(rename(name), trace))
                .await
        })
    };
    let holder = call("holds the only slot", HOLDER_TRACE);
    until(
        "Graph has the first call's PATCH",
        Duration::from_secs(20),
        move || async move { stack.received().await > before },
    )
    .await;
    let waiter = call("waits for the slot", WAITER_TRACE);
    until(
        "the second call waits for a slot",
        Duration::from_secs(20),
        move || async move { stack.metric("graph_gateway_graph_queued").await == 1.0 },
    )
    .await;
    for handle in [holder, waiter] {
        handle.await.expect("joined").expect("updated");
    }
    assert_eq!(stack.metric("graph_gateway_graph_queued").await, 0.0);

    let in_trace = |spans: &[ReceivedSpan], name: &str, trace: &str| {
        named(spans, name)
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .count()
    };
    let spans = receiver
        .wait_for(
            |s| {
                [HOLDER_TRACE, WAITER_TRACE]
                    .iter()
                    .all(|t| in_trace(s, UPDATE_SPAN, t) == 1 && in_trace(s, PATCH_SPAN, t) == 1)
            },
            Duration::from_secs(30),
        )
        .await;
    let waits = named(&spans, "graph slot wait");
    assert_eq!(waits.len(), 1, "one call waited: {waits:?}");
    let wait = waits[0];
    assert_eq!(wait.trace_id, WAITER_TRACE, "the second call waited");
    let server = named(&spans, UPDATE_SPAN)
        .into_iter()
        .find(|s| s.trace_id == WAITER_TRACE)
        .expect("the second call's server span");
    assert_eq!(
        wait.parent_span_id, server.span_id,
        "the wait is a child of the call's server span"
    );
    let patch = named(&spans, PATCH_SPAN)
        .into_iter()
        .find(|p| p.trace_id == WAITER_TRACE)
        .expect("the second call's PATCH");
    assert!(
        wait.end_unix_nanos <= patch.start_unix_nanos,
        "the wait, then the request: {wait:?} {patch:?}"
    );
    // It waited for the first call's answer.
    let held = named(&spans, PATCH_SPAN)
        .into_iter()
        .find(|p| p.trace_id == HOLDER_TRACE)
        .expect("the first call's PATCH");
    assert!(held.end_unix_nanos <= patch.start_unix_nanos);
    assert!(wait.start_unix_nanos < held.end_unix_nanos);
}

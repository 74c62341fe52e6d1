//! A Graph (or whatever answers in its place) that asks for too much: a
//! `Retry-After` past any clock, answers too large to hold, a gzip bomb, a
//! token answer of megabytes. Every such answer is held to a limit, and the
//! gateway goes on serving.

mod common;

use common::process::Running;
use common::{config, connect, fast_retries, get, Harness};
use graph_grpc_gateway::config::{Config, GraphTarget};
use graph_grpc_gateway::emulator::{seed, Emulator, Fault, FaultBody};
use graph_grpc_gateway::graph::{self, CallContext, GraphClient, GraphError};
use graph_grpc_gateway::metrics::Metrics;
use graph_grpc_gateway::translate::IdSegment;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// The `GRAPH_MAX_RETRY_AFTER` of these tests: short, so a test waits out
/// a whole pause.
const CAP: Duration = Duration::from_secs(3);
const MIB: u64 = 1024 * 1024;
const DEFAULT_ANSWER_LIMIT: u64 = 16 * MIB;

/// A gateway on the emulator with Retry-After held to [`CAP`], that never
/// retries (so each injected answer is the one returned).
fn capped() -> Config {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack.retry.max_retries = 0;
    cfg.graph_stack.max_retry_after = CAP;
    cfg
}

fn retry_delay(s: &Status) -> Option<Duration> {
    s.get_details_retry_info().and_then(|r| r.retry_delay)
}

fn reason(s: &Status) -> String {
    s.get_details_error_info().expect("ErrorInfo").reason
}

/// A Get that may wait `timeout` in all.
fn get_within(
    timeout: Duration,
) -> Request<graph_grpc_gateway::proto::v1::GetSecurityConfigurationTaskRequest> {
    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.set_timeout(timeout);
    req
}

/// Graph answers 429 with `Retry-After: value`. The caller is told `told`
/// (none when the value is not a delay); every later call meets a pause of
/// at most [`CAP`] (none when nothing was told), and is served once it ends.
async fn throttled_with(value: &str, told: Option<Duration>) {
    let mut h = Harness::with_config(capped()).await;
    h.emulator().push_faults([Fault::throttled(value)]);
    let first = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("throttled");
    assert_eq!(first.code(), Code::ResourceExhausted, "{value}: {first:?}");
    assert_eq!(retry_delay(&first), told, "{value}: RetryInfo");

    // A call that cannot wait 200 ms meets the pause, if there is one.
    let hurried = h
        .client
        .get_security_configuration_task(get_within(Duration::from_millis(200)))
        .await;
    match told {
        Some(_) => {
            let s = hurried.expect_err("paused");
            assert_eq!(s.code(), Code::ResourceExhausted, "{value}: {s:?}");
            assert_eq!(reason(&s), "GRAPH_THROTTLED", "{value}");
            let left = retry_delay(&s).expect("the pause left, in RetryInfo");
            assert!(left <= CAP, "{value}: a pause of {left:?} is past the cap");
            assert_eq!(h.emulator().received(), 1, "{value}: not sent");
        }
        None => {
            hurried.unwrap_or_else(|s| panic!("{value}: no pause, yet {s:?}"));
            assert_eq!(h.emulator().received(), 2, "{value}");
        }
    }

    // A call that can wait longer than the cap is served once the pause ends.
    let got = h
        .client
        .get_security_configuration_task(get_within(CAP + Duration::from_secs(10)))
        .await
        .unwrap_or_else(|s| panic!("{value}: served after the pause, yet {s:?}"))
        .into_inner();
    assert_eq!(got.id, seed::EXAMPLE_TASK_ID);
}

#[tokio::test]
async fn retry_after_past_any_clock_is_held_to_the_cap() {
    throttled_with("18446744073709551615", Some(CAP)).await;
}

#[tokio::test]
async fn retry_after_in_year_9999_is_held_to_the_cap() {
    throttled_with("Fri, 31 Dec 9999 23:59:59 GMT", Some(CAP)).await;
}

#[tokio::test]
async fn fractional_retry_after_is_read() {
    throttled_with("2.128", Some(Duration::from_millis(2128))).await;
}

#[tokio::test]
async fn retry_after_that_is_no_delay_is_ignored() {
    for value in ["1e9", "-5", "garbage", "NaN", "inf"] {
        throttled_with(value, None).await;
    }
}

#[tokio::test]
async fn a_retry_waits_at_most_the_cap() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack = fast_retries();
    cfg.graph_stack.max_retry_after = Duration::from_secs(1);
    let mut h = Harness::with_config(cfg).await;
    h.emulator()
        .push_faults([Fault::throttled("18446744073709551615")]);
    let got = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK on the retry, after at most the cap")
        .into_inner();
    assert_eq!(got.id, seed::EXAMPLE_TASK_ID);
    assert_eq!(h.emulator().received(), 2, "one retry");
}

#[tokio::test]
async fn only_429_and_503_pause_every_call() {
    for (status, pauses) in [(504, false), (500, false), (503, true)] {
        let mut h = Harness::with_config(capped()).await;
        h.emulator()
            .push_faults([Fault::new(status).with_retry_after("2")]);
        let first = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err("Graph's failure");
        assert_eq!(
            retry_delay(&first),
            Some(Duration::from_secs(2)),
            "{status}: the caller is told Graph's delay"
        );
        let hurried = h
            .client
            .get_security_configuration_task(get_within(Duration::from_millis(200)))
            .await;
        if pauses {
            let s = hurried.expect_err("paused");
            assert_eq!(reason(&s), "GRAPH_THROTTLED", "{status}");
        } else {
            hurried.unwrap_or_else(|s| panic!("{status} paused every call: {s:?}"));
        }
    }
}

/// Asserts `s` is the refusal of a success answer past `limit`.
fn assert_too_large(s: &Status, limit: u64, what: &str) {
    assert_eq!(s.code(), Code::Internal, "{what}: {s:?}");
    let info = s.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "GRAPH_ANSWER_TOO_LARGE", "{what}");
    assert_eq!(info.domain, "graph-grpc-gateway", "{what}");
    assert_eq!(info.metadata["limit-bytes"], limit.to_string(), "{what}");
    assert_eq!(info.metadata["http-status"], "200", "{what}");
}

#[tokio::test]
async fn answers_past_the_limit_are_refused_not_retried() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack = fast_retries();
    let mut h = Harness::with_config(cfg).await;
    for (fault, what) in [
        (Fault::huge(64 * MIB), "64 MiB with Content-Length"),
        (Fault::huge_chunked(64 * MIB), "64 MiB chunked"),
        (
            Fault::huge_chunked(DEFAULT_ANSWER_LIMIT + 1),
            "one byte too many",
        ),
        (Fault::gzip_bomb(1024 * MIB), "gzip inflating to 1 GiB"),
    ] {
        h.emulator().reset();
        h.emulator().push_faults([fault]);
        let s = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err(what);
        assert_too_large(&s, DEFAULT_ANSWER_LIMIT, what);
        assert_eq!(h.emulator().received(), 1, "{what}: not retried");
    }
    // An answer just within the limit is read (and is not a task).
    h.emulator().reset();
    h.emulator()
        .push_faults([Fault::huge_chunked(DEFAULT_ANSWER_LIMIT)]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("spaces are no task");
    assert_ne!(reason(&s), "GRAPH_ANSWER_TOO_LARGE", "{s:?}");
    // And the gateway goes on serving.
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("served");
}

#[tokio::test]
async fn a_write_answered_too_large_says_graph_took_it() {
    let running = Emulator::new()
        .spawn(common::loopback())
        .await
        .expect("emulator");
    let client = GraphClient::new(
        graph::GraphHttp::new(false).expect("client"),
        &running.base_url.parse().expect("url"),
        None,
        Duration::from_secs(10),
        &fast_retries(),
        Arc::new(Metrics::default()),
    );
    running.emulator.push_faults([Fault::huge(64 * MIB)]);
    let id = IdSegment::new(seed::EXAMPLE_TASK_ID).expect("id");
    let ctx = CallContext {
        client_request_id: "c1".into(),
        deadline: None,
        sent: Default::default(),
        caller: Default::default(),
    };
    match client
        .patch_task(&id, br#"{"insights":"x"}"#.to_vec(), &ctx)
        .await
    {
        Err(GraphError::AnswerTooLarge(a)) => {
            assert_eq!(a.status, 200, "a success: the write was taken");
            assert_eq!(a.limit, DEFAULT_ANSWER_LIMIT);
            assert!(a.request_id.is_some(), "Graph's request-id is kept");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(running.emulator.received(), 1, "never re-sent");
}

#[tokio::test]
async fn an_error_body_past_the_limit_still_maps_by_status() {
    let mut h = Harness::with_config(capped()).await;
    h.emulator().push_faults([Fault {
        body: FaultBody::Huge {
            bytes: 64 * MIB,
            chunked: true,
        },
        ..Fault::new(500)
    }]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("500");
    assert_eq!(s.code(), Code::Internal);
    assert_eq!(reason(&s), "HTTP_500");
}

#[tokio::test]
async fn graph_error_messages_are_cut_to_a_kibibyte() {
    let mut h = Harness::with_config(capped()).await;
    let long = "Ω".repeat(20_000);
    h.emulator()
        .push_faults([Fault::new(400).with_message(long.clone())]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("400");
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().len() <= 1024, "{}", s.message().len());
    assert!(long.starts_with(s.message()) && !s.message().is_empty());
}

#[tokio::test]
async fn a_token_answer_past_the_limit_is_a_transient_failure() {
    for fault in [Fault::huge(MIB), Fault::huge_chunked(MIB)] {
        // A gateway each: a failed token request is remembered for a while.
        let mut h = Harness::start().await;
        h.emulator().push_token_faults([fault]);
        h.emulator().expire_tokens();
        let s = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err("no token");
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        assert_eq!(reason(&s), "TOKEN_UNAVAILABLE");
        assert!(
            s.message().contains("larger than 65536 bytes"),
            "{}",
            s.message()
        );
    }
}

/// Peak and current resident memory of `pid`, in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_process_stays_small_under_huge_answers() {
    let running = Emulator::new()
        .spawn(common::loopback())
        .await
        .expect("emulator");
    let authority = format!("http://{}", running.addr);
    let gw = Running::spawn_with_env(
        &[
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &[
            ("AZURE_TENANT_ID", "tenant-1".to_owned()),
            ("AZURE_CLIENT_ID", "client-1".to_owned()),
            ("AZURE_CLIENT_SECRET", "memory-test-secret".to_owned()),
            ("AZURE_AUTHORITY_HOST", authority),
            ("GRAPH_BASE_URL", running.base_url.clone()),
            ("GRAPH_MAX_RETRIES", "0".to_owned()),
            ("GATEWAY_PLAINTEXT", "true".to_owned()),
            ("GATEWAY_ALLOW_UNAUTHENTICATED", "true".to_owned()),
        ],
    );
    let line = gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));
    let addr = line
        .split('"')
        .find(|p| p.starts_with("127.0.0.1:") && !p.ends_with(":0"))
        .expect("grpc_addr in the log line")
        .parse()
        .expect("addr");
    let mut client = connect(addr).await;
    client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("served before");
    let pid = gw.child.id();
    let (before, _) = memory_of(pid);
    for (fault, what) in [
        (Fault::huge(64 * MIB), "64 MiB with Content-Length"),
        (Fault::huge_chunked(64 * MIB), "64 MiB chunked"),
        (Fault::gzip_bomb(1024 * MIB), "gzip inflating to 1 GiB"),
    ] {
        running.emulator.push_faults([fault]);
        let s = client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err(what);
        assert_too_large(&s, DEFAULT_ANSWER_LIMIT, what);
    }
    running.emulator.push_faults([Fault {
        body: FaultBody::GzipBomb {
            inflated_bytes: 1024 * MIB,
        },
        ..Fault::new(503)
    }]);
    let s = client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("503");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("served after");
    let (peak, now) = memory_of(pid);
    assert!(
        peak < 100 * MIB,
        "peak resident memory {} MiB (before the answers: {} MiB, now {} MiB)",
        peak / MIB,
        before / MIB,
        now / MIB
    );
}

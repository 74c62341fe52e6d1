//! The store's rules, on a clock the tests move; the codec's round trips.

use super::local::Clock;
use super::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use tokio::time::Instant;
use tonic::Code;

const WINDOW: Duration = Duration::from_secs(600);

/// A store on a clock the test moves.
fn store(max_entries: usize) -> (Idempotency, Arc<Mutex<Instant>>, Gauge) {
    let now = Arc::new(Mutex::new(Instant::now()));
    let gauge = Gauge::default();
    let store = Idempotency::with_clock(
        WINDOW,
        max_entries,
        Clock::Manual(now.clone()),
        gauge.clone(),
    );
    (store, now, gauge)
}

fn advance(clock: &Mutex<Instant>, by: Duration) {
    *clock.lock().expect("clock") += by;
}

fn key(caller: &str, method: Method, id: u128) -> Key {
    Key {
        caller: caller.into(),
        method,
        request_id: Uuid::from_u128(id),
    }
}

fn print(n: u8) -> Fingerprint {
    Fingerprint([n; 32])
}

fn ok(text: &'static str) -> Answer {
    Answer {
        message: Bytes::from_static(text.as_bytes()),
        request_id: Some(format!("graph-{text}")),
    }
}

fn answer(text: &'static str) -> Remembered {
    Remembered {
        answer: Ok(ok(text)),
        outcome: Outcome::Applied,
        audited: Audited::default(),
    }
}

/// Polls `fut` once, without a runtime: `Pending` means it waits.
fn poll_once<F: Future + ?Sized>(fut: &mut Pin<Box<F>>) -> Poll<F::Output> {
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

fn lead(begin: Begin) -> Lease {
    match begin {
        Begin::Lead(lease) => lease,
        other => panic!("expected to lead, got {other:?}"),
    }
}

fn replay(begin: Begin) -> Remembered {
    match begin {
        Begin::Replay(answer) => answer,
        other => panic!("expected a replay, got {other:?}"),
    }
}

fn replayed(begin: Begin) -> Answer {
    replay(begin).answer.expect("a remembered success")
}

fn ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("still waiting"),
    }
}

#[tokio::test]
async fn a_sequential_duplicate_replays_the_remembered_answer() {
    let (store, _, gauge) = store(10);
    let k = key("patcher", Method::Update, 1);
    lead(store.begin(k.clone(), print(1)).await).remember(answer("task"));
    assert_eq!(replayed(store.begin(k.clone(), print(1)).await), ok("task"));
    assert_eq!(replayed(store.begin(k, print(1)).await), ok("task"));
    assert_eq!(store.len(), 1);
    assert_eq!(gauge.get(), 1);
}

#[tokio::test]
async fn a_remembered_failure_replays_the_same_status() {
    let (store, _, _) = store(10);
    let k = key("patcher", Method::Update, 1);
    lead(store.begin(k.clone(), print(1)).await).remember(Remembered {
        answer: Err(Status::not_found("no such task")),
        outcome: Outcome::NotApplied,
        audited: Audited::default(),
    });
    let again = replay(store.begin(k, print(1)).await);
    assert_eq!(again.outcome, Outcome::NotApplied);
    let again = again.answer.expect_err("the failure");
    assert_eq!(again.code(), Code::NotFound);
    assert_eq!(again.message(), "no such task");
}

#[tokio::test]
async fn a_concurrent_duplicate_waits_for_the_first_and_gets_its_answer() {
    let (store, _, _) = store(10);
    let k = key("patcher", Method::Update, 1);
    let first = lead(store.begin(k.clone(), print(1)).await);
    let mut second = Box::pin(store.begin(k.clone(), print(1)));
    let mut third = Box::pin(store.begin(k, print(1)));
    assert!(
        poll_once(&mut second).is_pending(),
        "waits while the first runs"
    );
    assert!(
        poll_once(&mut third).is_pending(),
        "waits while the first runs"
    );
    first.remember(answer("task"));
    assert_eq!(replayed(ready(poll_once(&mut second))), ok("task"));
    assert_eq!(replayed(ready(poll_once(&mut third))), ok("task"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_another_task_is_woken_by_the_answer() {
    let (store, _, _) = store(10);
    let k = key("patcher", Method::Update, 1);
    let first = lead(store.begin(k.clone(), print(1)).await);
    let waiter = tokio::spawn({
        let (store, k) = (store.clone(), k.clone());
        async move { store.begin(k, print(1)).await }
    });
    // A bounded look at the store's state until the waiter is waiting.
    for _ in 0..10_000 {
        if store.waiting(&k) == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.waiting(&k), 1, "the duplicate waits for the first");
    first.remember(answer("task"));
    let answer = waiter.await.expect("the waiter finishes");
    assert_eq!(replayed(answer), ok("task"));
    assert_eq!(store.waiting(&k), 0);
}

#[tokio::test]
async fn another_request_under_the_same_key_is_reused_whether_answered_or_running() {
    let (store, _, _) = store(10);
    let k = key("patcher", Method::Update, 1);
    let first = lead(store.begin(k.clone(), print(1)).await);
    assert!(matches!(
        store.begin(k.clone(), print(2)).await,
        Begin::Reused
    ));
    first.remember(answer("task"));
    assert!(matches!(
        store.begin(k.clone(), print(2)).await,
        Begin::Reused
    ));
    // The entry is untouched.
    assert_eq!(replayed(store.begin(k, print(1)).await), ok("task"));
}

#[tokio::test]
async fn an_answer_is_kept_for_the_window_and_then_gone() {
    let (store, clock, gauge) = store(10);
    let k = key("patcher", Method::Update, 1);
    let first = lead(store.begin(k.clone(), print(1)).await);
    // The window counts from the answer, not from the start.
    advance(&clock, WINDOW * 2);
    first.remember(answer("task"));
    advance(&clock, WINDOW - Duration::from_millis(1));
    assert_eq!(replayed(store.begin(k.clone(), print(1)).await), ok("task"));
    advance(&clock, Duration::from_millis(1));
    // Gone: the same key runs again, even with another request.
    let again = lead(store.begin(k.clone(), print(2)).await);
    assert_eq!(gauge.get(), 1);
    again.remember(answer("second"));
    assert_eq!(replayed(store.begin(k, print(2)).await), ok("second"));
}

#[tokio::test]
async fn a_running_call_does_not_expire() {
    let (store, clock, _) = store(10);
    let k = key("patcher", Method::Update, 1);
    let _first = lead(store.begin(k.clone(), print(1)).await);
    advance(&clock, WINDOW * 10);
    let mut second = Box::pin(store.begin(k, print(1)));
    assert!(poll_once(&mut second).is_pending());
}

#[tokio::test]
async fn a_full_store_evicts_the_oldest_answer_first() {
    let (store, clock, gauge) = store(2);
    let (a, b, c) = (
        key("patcher", Method::Update, 1),
        key("patcher", Method::Update, 2),
        key("patcher", Method::Update, 3),
    );
    lead(store.begin(a.clone(), print(1)).await).remember(answer("a"));
    advance(&clock, Duration::from_secs(1));
    lead(store.begin(b.clone(), print(1)).await).remember(answer("b"));
    advance(&clock, Duration::from_secs(1));
    lead(store.begin(c.clone(), print(1)).await).remember(answer("c"));
    assert_eq!(store.len(), 2);
    assert_eq!(gauge.get(), 2);
    assert_eq!(replayed(store.begin(b, print(1)).await), ok("b"));
    assert_eq!(replayed(store.begin(c.clone(), print(1)).await), ok("c"));
    // `a` was evicted: it runs again (and evicts `b`, now the oldest).
    lead(store.begin(a, print(1)).await).remember(answer("a again"));
    assert_eq!(store.len(), 2);
    assert_eq!(replayed(store.begin(c, print(1)).await), ok("c"));
}

#[tokio::test]
async fn a_running_call_is_never_evicted_and_a_store_full_of_them_refuses() {
    let (store, _, _) = store(2);
    let (a, b, c) = (
        key("patcher", Method::Update, 1),
        key("patcher", Method::Update, 2),
        key("patcher", Method::Update, 3),
    );
    let running = lead(store.begin(a.clone(), print(1)).await);
    lead(store.begin(b.clone(), print(1)).await).remember(answer("b"));
    // Full: the answered `b` goes, the running `a` stays.
    let third = lead(store.begin(c.clone(), print(1)).await);
    assert!(matches!(store.begin(b, print(1)).await, Begin::Full));
    let mut waiter = Box::pin(store.begin(a, print(1)));
    assert!(poll_once(&mut waiter).is_pending(), "a is still running");
    running.remember(answer("a"));
    assert_eq!(replayed(ready(poll_once(&mut waiter))), ok("a"));
    third.forget();
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn a_forgotten_or_dropped_lease_lets_a_waiter_lead() {
    let (store, _, gauge) = store(10);
    let k = key("patcher", Method::Update, 1);
    let first = lead(store.begin(k.clone(), print(1)).await);
    let mut second = Box::pin(store.begin(k.clone(), print(1)));
    let mut third = Box::pin(store.begin(k.clone(), print(1)));
    assert!(poll_once(&mut second).is_pending());
    assert!(poll_once(&mut third).is_pending());
    first.forget();
    // One waiter leads; the other waits for it.
    let second = lead(ready(poll_once(&mut second)));
    assert!(poll_once(&mut third).is_pending());
    // Dropped unfinished, as when its call is cancelled.
    drop(second);
    let third = lead(ready(poll_once(&mut third)));
    assert_eq!(gauge.get(), 1);
    drop(third);
    assert!(store.is_empty());
    assert_eq!(gauge.get(), 0);
    lead(store.begin(k, print(1)).await);
}

#[tokio::test]
async fn a_waiter_that_gives_up_leaves_nothing_behind() {
    let (store, _, _) = store(10);
    let k = key("patcher", Method::Update, 1);
    let first = lead(store.begin(k.clone(), print(1)).await);
    let mut gone = Box::pin(store.begin(k.clone(), print(1)));
    assert!(poll_once(&mut gone).is_pending());
    drop(gone);
    let mut waiter = Box::pin(store.begin(k.clone(), print(1)));
    assert!(poll_once(&mut waiter).is_pending());
    first.remember(answer("task"));
    assert_eq!(replayed(ready(poll_once(&mut waiter))), ok("task"));
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn other_callers_and_other_rpcs_with_the_same_request_id_are_independent() {
    let (store, _, _) = store(10);
    let id = 7;
    let patcher = key("patcher", Method::Update, id);
    lead(store.begin(patcher.clone(), print(1)).await).remember(answer("patcher"));
    // Another caller, the same id and request: its own call.
    let other = key("auditor", Method::Update, id);
    lead(store.begin(other.clone(), print(1)).await).remember(answer("auditor"));
    // Another RPC, the same caller and id: its own call too.
    let other_rpc = key("patcher", Method::Get, id);
    lead(store.begin(other_rpc, print(2)).await);
    assert_eq!(
        replayed(store.begin(patcher, print(1)).await),
        ok("patcher")
    );
    assert_eq!(replayed(store.begin(other, print(1)).await), ok("auditor"));
}

#[tokio::test]
async fn the_metrics_show_the_entries_held_and_the_replays() {
    let metrics = crate::metrics::Metrics::default();
    let store = Idempotency::counted(WINDOW, 10, metrics.idempotency_entries());
    let k = key("patcher", Method::Update, 1);
    lead(store.begin(k.clone(), print(1)).await).remember(answer("task"));
    replayed(store.begin(k, print(1)).await);
    metrics.idempotent_replay(Method::Update.name());
    let text = metrics.render();
    assert!(
        text.contains("graph_gateway_idempotency_entries 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "graph_gateway_idempotent_replays_total{rpc=\"UpdateSecurityConfigurationTask\"} 1\n"
        ),
        "{text}"
    );
}

#[test]
fn the_fingerprint_tells_requests_apart_and_not_copies() {
    use crate::proto::v1::{SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest};
    let request = |name: &str| UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: "5d630f12-0f12-5d63-120f-635d120f635d".into(),
            display_name: Some(name.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        Fingerprint::of(&request("a")),
        Fingerprint::of(&request("a"))
    );
    assert_ne!(
        Fingerprint::of(&request("a")),
        Fingerprint::of(&request("b"))
    );
    assert_eq!(format!("{:?}", print(0xab)), "abababababababab…");
}

// ---- the codec of the shared memory -------------------------------------

fn every_field() -> Remembered {
    Remembered {
        answer: Ok(Answer {
            message: Bytes::from_static(b"\x0a\x24task bytes \x00\xff"),
            request_id: Some("graph-1".into()),
        }),
        outcome: Outcome::Applied,
        audited: Audited {
            task_id: Some("5d630f12-0f12-5d63-120f-635d120f635d".into()),
            fields: "display_name,status".into(),
            status: Some(crate::translate::enums::STATUS.members[1]),
            note_bytes: Some(42),
            items: vec![
                super::AuditedItem {
                    outcome: Outcome::Applied,
                    code: tonic::Code::Ok,
                },
                super::AuditedItem {
                    outcome: Outcome::Unknown,
                    code: tonic::Code::Unavailable,
                },
            ],
        },
    }
}

fn failed() -> Remembered {
    let mut md = tonic::metadata::MetadataMap::new();
    md.insert("client-request-id", "first".parse().expect("ascii"));
    md.insert_bin(
        "trace-bin",
        tonic::metadata::MetadataValue::from_bytes(b"\x00\x01\xfe"),
    );
    Remembered {
        answer: Err(Status::with_details_and_metadata(
            Code::NotFound,
            "no such task: ü",
            Bytes::from_static(b"\x08\x05details"),
            md,
        )),
        outcome: Outcome::NotApplied,
        audited: Audited::default(),
    }
}

#[test]
fn the_codec_gives_back_a_success_with_everything_the_audit_named() {
    let kept = every_field();
    let back = codec::decode(&codec::encode(&kept)).expect("decodes");
    assert_eq!(back.answer.as_ref().ok(), kept.answer.as_ref().ok());
    assert_eq!(back.outcome, kept.outcome);
    assert_eq!(back.audited, kept.audited);
    let nothing = Remembered {
        answer: Ok(Answer {
            message: Bytes::new(),
            request_id: None,
        }),
        outcome: Outcome::Unknown,
        audited: Audited::default(),
    };
    let back = codec::decode(&codec::encode(&nothing)).expect("decodes");
    assert_eq!(back.answer.ok(), nothing.answer.ok());
    assert_eq!(back.outcome, Outcome::Unknown);
    assert_eq!(back.audited, Audited::default());
}

#[test]
fn the_codec_gives_back_a_failure_with_its_code_message_details_and_metadata() {
    let kept = failed();
    let back = codec::decode(&codec::encode(&kept)).expect("decodes");
    assert_eq!(back.outcome, Outcome::NotApplied);
    let (status, was) = (
        back.answer.expect_err("a failure"),
        kept.answer.expect_err("a failure"),
    );
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), was.message());
    assert_eq!(status.details(), was.details());
    assert_eq!(
        status
            .metadata()
            .get("client-request-id")
            .map(|v| v.to_str().ok()),
        Some(Some("first"))
    );
    assert_eq!(
        status
            .metadata()
            .get_bin("trace-bin")
            .and_then(|v| v.to_bytes().ok()),
        Some(Bytes::from_static(b"\x00\x01\xfe"))
    );
}

#[test]
fn the_codec_refuses_anything_it_did_not_write_without_panicking() {
    let good = codec::encode(&every_field());
    assert!(codec::decode(&[]).is_err());
    assert!(codec::decode(b"garbage").is_err());
    let mut other_version = good.clone();
    other_version[0] = 2;
    assert!(codec::decode(&other_version).is_err());
    // Every truncation and every single flipped bit is refused.
    for len in 0..good.len() {
        assert!(codec::decode(&good[..len]).is_err(), "truncated to {len}");
    }
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut flipped = good.clone();
            flipped[i] ^= 1 << bit;
            assert!(codec::decode(&flipped).is_err(), "byte {i} bit {bit}");
        }
    }
}

#[test]
fn the_codec_refuses_well_formed_entries_with_values_it_never_writes() {
    // An entry as this version frames it, around a body it chooses.
    fn framed(body: &[u8]) -> Vec<u8> {
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        let mut out = vec![1];
        out.extend_from_slice(&digest.as_ref()[..8]);
        out.extend_from_slice(body);
        out
    }
    let good = codec::encode(&failed());
    assert!(
        codec::decode(&framed(&good[9..])).is_ok(),
        "the framing is right"
    );
    // Field 8 (outcome) "sideways"; field 4 (code) 99; field 11 (status
    // member) "bogus"; field 4 = 0 on a failure.
    for body in [
        &b"\x42\x08sideways"[..],
        &b"\x20\x63\x42\x07applied"[..],
        &b"\x08\x01\x42\x07applied\x5a\x05bogus"[..],
        &b"\x42\x07applied"[..],
    ] {
        assert!(codec::decode(&framed(body)).is_err(), "{body:?}");
    }
    // A success that also carries a status code.
    assert!(codec::decode(&framed(b"\x08\x01\x20\x05\x42\x07applied")).is_err());
    // And the same success without it is fine.
    let ok = codec::decode(&framed(b"\x08\x01\x42\x07applied")).expect("a bare success");
    assert_eq!(ok.outcome, Outcome::Applied);
}

use std::sync::Arc;

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{expect_error, start_with, Harness};
use crate::emulator::{seed, Chaos, Emulator, EmulatorOptions, Fault, DEFAULT_CHAOS_STATUSES};

fn chaotic(chaos: Chaos) -> Emulator {
    Emulator::with_options(EmulatorOptions::default().with_chaos(chaos))
}

/// The statuses of `n` GETs sent one after another.
async fn statuses(h: &Harness, n: usize) -> Vec<u16> {
    let url = h.task_url(seed::EXAMPLE_TASK_ID);
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(h.get(&url).await.status().as_u16());
    }
    seen
}

#[tokio::test]
async fn same_seed_same_faults_other_seed_other_faults() {
    let a = start_with(chaotic(Chaos::new(42, 30.0))).await;
    let b = start_with(chaotic(Chaos::new(42, 30.0))).await;
    let c = start_with(chaotic(Chaos::new(43, 30.0))).await;
    let first = statuses(&a, 200).await;
    let second = statuses(&b, 200).await;
    let other = statuses(&c, 200).await;
    assert_eq!(first, second);
    assert_ne!(first, other);
    assert!(first
        .iter()
        .all(|s| *s == 200 || DEFAULT_CHAOS_STATUSES.contains(s)));
    let faults = first.iter().filter(|s| **s != 200).count();
    assert_eq!(a.emulator().chaos_faults_injected(), faults as u64);
    assert_eq!(a.emulator().received(), 200);

    // set_options and reset restart the sequence from the seed.
    a.emulator()
        .set_options(EmulatorOptions::default().with_chaos(Chaos::new(42, 30.0)));
    assert_eq!(statuses(&a, 200).await, first);
    a.emulator().reset();
    assert_eq!(a.emulator().chaos_faults_injected(), 0);
    assert_eq!(statuses(&a, 200).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn about_the_asked_share_of_2000_concurrent_requests_fails() {
    let h = start_with(chaotic(Chaos::new(7, 10.0))).await;
    let in_flight = Arc::new(Semaphore::new(64));
    let mut requests = JoinSet::new();
    for _ in 0..2000 {
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("semaphore");
        let client = h.client.clone();
        let url = h.collection();
        requests.spawn(async move {
            let status = client.get(url).send().await.map(|r| r.status());
            drop(permit);
            status
        });
    }
    let mut failed = 0_u64;
    while let Some(joined) = requests.join_next().await {
        let status = joined.expect("task").expect("response");
        if status != StatusCode::OK {
            failed += 1;
        }
    }
    // Each request draws once, whatever the interleaving, so the count is
    // fixed by the seed; the bounds say it is near 10 % (binomial sd ~13).
    assert!((150..=250).contains(&failed), "{failed} of 2000");
    assert_eq!(h.emulator().chaos_faults_injected(), failed);
    h.running.shutdown().await;
}

#[tokio::test]
async fn faulted_patches_are_not_applied() {
    let h = start_with(chaotic(Chaos::new(3, 50.0))).await;
    let mut expected = "Display Name value".to_owned();
    let (mut applied, mut refused) = (0, 0);
    for i in 0..60 {
        let name = format!("v{i}");
        let status = h
            .patch(seed::EXAMPLE_TASK_ID, &json!({"displayName": name}))
            .await
            .status();
        if status == StatusCode::OK {
            expected = name;
            applied += 1;
        } else {
            refused += 1;
        }
        let stored = h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task");
        assert_eq!(
            stored["displayName"],
            expected.as_str(),
            "after PATCH {i}: {status}"
        );
    }
    assert!(
        applied > 0 && refused > 0,
        "{applied} applied, {refused} refused"
    );
    assert_eq!(h.emulator().chaos_faults_injected(), refused);
}

#[tokio::test]
async fn chaos_429_and_503_carry_retry_after_and_graph_bodies() {
    let h = start_with(chaotic(
        Chaos::new(1, 100.0)
            .with_statuses([429, 503, 500])
            .with_retry_after("3"),
    ))
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        let response = h.get(&h.collection()).await;
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        match status {
            429 | 503 => assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"3"[..])),
            _ => assert!(retry_after.is_none()),
        }
        let code = match status {
            429 => "TooManyRequests",
            503 => "serviceNotAvailable",
            _ => "UnknownError",
        };
        expect_error(
            response,
            StatusCode::from_u16(status).expect("status"),
            code,
        )
        .await;
        seen.insert(status);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[tokio::test]
async fn scripted_faults_take_precedence_over_chaos() {
    let h = start_with(chaotic(Chaos::new(5, 100.0).with_statuses([500]))).await;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::new(404)]);
    let url = h.task_url(seed::EXAMPLE_TASK_ID);
    assert_eq!(h.get(&url).await.status(), StatusCode::OK);
    assert_eq!(h.get(&url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        h.get(&url).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(h.emulator().chaos_faults_injected(), 1);
}

//! Serving per core (the default, `GATEWAY_THREADING=per-core`): a thread
//! per worker, each with its own listener on the gRPC port. Against the
//! real binary and a real emulator process: connections spread over every
//! worker, each answers, and a SIGTERM drains the calls in flight on all of
//! them before the process exits 0.

mod common;

use common::process::{blocking, emulator_and_gateway, GatewayProcesses};
use common::{connect, get};
use graph_grpc_gateway::emulator::seed::EXAMPLE_TASK_ID;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

const WORKERS: usize = 3;
/// Enough that the kernel's hash of connections over the listeners leaves
/// none of them without one (a chance of about 1 in 10^8).
const CONNECTIONS: usize = 48;

/// CPU time so far (ns, from schedstat) of each thread named `grpc-worker-*`.
fn worker_cpu(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let dir = task.expect("task").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim();
        if !name.starts_with("grpc-worker-") {
            continue;
        }
        let ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        out.insert(name.to_owned(), ns);
    }
    out
}

/// The value of an unlabelled metric on `/metrics`.
async fn gauge(admin_url: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{admin_url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_spread_over_every_worker_and_sigterm_drains_them_all() {
    let GatewayProcesses {
        emulator: _emulator,
        gateway,
        grpc_addr,
        admin_url,
        ..
    } = tokio::task::spawn_blocking(|| {
        emulator_and_gateway(
            &["--latency", "300ms"],
            "secret",
            vec![
                ("GATEWAY_WORKER_THREADS", WORKERS.to_string()),
                ("GATEWAY_SHUTDOWN_DELAY", "0s".to_owned()),
            ],
            &[],
        )
    })
    .await
    .expect("started");
    let pid = gateway.child.id();
    let before = worker_cpu(pid);
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        (1..WORKERS)
            .map(|w| format!("grpc-worker-{w}"))
            .collect::<Vec<_>>(),
        "one thread beside the main one per further worker"
    );

    // A call on each of many connections, all in flight at once (the
    // emulator answers each after 300 ms).
    let addr = grpc_addr.parse().expect("addr");
    let mut calls = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut client = connect(addr).await;
        calls.push(tokio::spawn(async move {
            client
                .get_security_configuration_task(get(EXAMPLE_TASK_ID))
                .await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while gauge(&admin_url, "graph_gateway_grpc_calls_in_flight").await < CONNECTIONS as f64 {
        assert!(
            Instant::now() < deadline,
            "the calls never were all in flight"
        );
        tokio::task::yield_now().await;
    }
    let after = worker_cpu(pid);
    for (name, ns) in &after {
        assert!(
            *ns > before[name],
            "{name} served none of {CONNECTIONS} connections"
        );
    }

    // SIGTERM with every call in flight: each is answered, then the
    // process exits 0.
    gateway.terminate();
    for call in calls {
        let got = call
            .await
            .expect("joined")
            .expect("a call in flight at the signal is answered");
        assert_eq!(got.into_inner().id, EXAMPLE_TASK_ID);
    }
    let (mut gateway, _) = blocking(gateway, |gw| {
        gw.wait_for_line("drained", Duration::from_secs(30));
    })
    .await;
    assert_eq!(gateway.child.wait().expect("exits").code(), Some(0));
}

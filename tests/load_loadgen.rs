//! The load tool's `loadgen` scenario in a short smoke run: real wrk and
//! h2load against the real emulator and gateway processes, at concurrency
//! 64 and 1, against a baseline binary too. Every request must succeed, and
//! every h2load request must show at the gateway as one OK Update; a run
//! whose calls fail (a task the emulator does not hold) must fail, although
//! h2load sees only HTTP 200s. (Timings are reported, not asserted.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `tool` on PATH, else in `.cache/tools/bin` (where scripts/tools.sh
/// installs it).
fn tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path
        .or_else(|| {
            let cached = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".cache/tools/bin")
                .join(name);
            cached.is_file().then_some(cached)
        })
        .unwrap_or_else(|| {
            panic!("{name} not found on PATH or in .cache/tools/bin: run scripts/tools.sh")
        })
}

fn loadgen(concurrency: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graph-grpc-gateway-load"))
        .args(["--gateway-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")])
        .arg("loadgen")
        .arg("--wrk")
        .arg(tool("wrk"))
        .arg("--h2load")
        .arg(tool("h2load"))
        .args([
            "--concurrency",
            concurrency,
            "--duration",
            "1s",
            "--calls",
            "300",
        ])
        .args(["--warmup", "100", "--direct-warmup", "0s"])
        .args(extra)
        .output()
        .expect("load tool runs")
}

#[test]
fn wrk_and_h2load_runs_answer_every_request_ok() {
    let out = loadgen(
        "64,1",
        &["--baseline-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "| run | direct (wrk -> emulator) | gateway (h2load -> gateway -> emulator) | baseline (h2load -> --baseline-bin -> emulator) |",
        "| c=64: req/s, calls/s |",
        "| c=64: gateway CPU per call / emulator CPU per direct PATCH |",
        "| c=1: added latency p50 / p99 ms |",
        "| c=64: failed | 0 | 0 | 0 |",
        "| c=1: failed | 0 | 0 | 0 |",
        "gateway / baseline at c=64: CPU per call",
        "phases with failed requests: 0",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    // Each h2load phase: exactly the 300 requests asked for, each one an OK
    // Update at the gateway and one PATCH it sent the emulator.
    for target in ["gateway", "baseline gateway"] {
        for c in [64, 1] {
            let checked = format!(
                "checked: {target}, c={c}, round 1: h2load 300 requests, 300 succeeded, 300 2xx, 0 failed, 0 errored, 0 timed out; /metrics UpdateSecurityConfigurationTask OK +300, non-OK +0; Graph PATCHes +300 (300 answered 200)"
            );
            assert!(
                stdout.contains(&checked),
                "{checked:?} missing from:\n{stdout}"
            );
        }
    }
    // wrk made requests at both concurrencies (its count is not fixed).
    for c in [64, 1] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| 1 | {c} | direct (wrk) | ")))
            .unwrap_or_else(|| panic!("no direct row at c={c} in:\n{stdout}"));
        let requests: u64 = row.split('|').nth(4).unwrap().trim().parse().unwrap();
        assert!(requests > 0, "{row}");
    }
    println!("{stdout}");
}

#[test]
fn a_run_whose_calls_fail_exits_non_zero() {
    // A task the emulator does not hold: the emulator answers 404, the
    // gateway NOT_FOUND in the trailers of an HTTP 200.
    let out = loadgen("8", &["--task-id", "00000000-0000-4000-8000-00000000dead"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("/metrics: OK Updates +0 for 300 requests, non-OK +300"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("direct, concurrency 8"), "{stderr}");
    // h2load itself saw every request succeed: only the gateway's counts
    // tell the calls failed.
    assert!(
        stdout.contains("h2load 300 requests, 300 succeeded, 300 2xx, 0 failed"),
        "{stdout}"
    );
}

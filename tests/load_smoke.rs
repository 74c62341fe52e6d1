//! The load tool in short smoke runs: the gateway, the direct-HTTP baseline
//! and the floor all answer every call OK, over plaintext and TLS, for a
//! duration or a number of calls. (Timings are reported, not asserted:
//! figures come from release builds, see PERFORMANCE.md.)

use std::process::Command;

/// How long a phase runs: the flag and its value.
const DURATION: [&str; 2] = ["--duration", "1s"];
const CALLS: [&str; 2] = ["--calls", "300"];

#[test]
fn short_load_runs_have_no_failed_calls() {
    for (rpc, tls, length) in [
        ("update", false, DURATION),
        ("get", false, DURATION),
        ("update", true, CALLS),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_graph-grpc-gateway-load"))
            .args(["--gateway-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")])
            .args(tls.then_some("--tls"))
            .args(["--rpc", rpc, "--concurrency", "8", "--tasks", "8"])
            .args(["--floor", "--warmup", "100", "--sample-every", "250ms"])
            .args(length)
            .output()
            .expect("load tool runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{rpc}: {stdout}\n{stderr}");
        let transport = if tls {
            "gRPC over TLS"
        } else {
            "gRPC over plaintext"
        };
        for line in [
            "| direct HTTP |",
            "| floor gRPC |",
            "| gateway gRPC |",
            "floor process: CPU",
            "gateway process: CPU",
            "gateway vs floor: CPU",
            "non-OK calls: 0",
            transport,
        ] {
            assert!(
                stdout.contains(line),
                "{rpc}: {line:?} missing from:\n{stdout}"
            );
        }
        if length == CALLS {
            // Each phase made exactly the calls asked for.
            for path in ["direct HTTP", "floor gRPC", "gateway gRPC"] {
                let row = format!("| {path} | 300 | 0 |");
                assert!(stdout.contains(&row), "{row:?} missing from:\n{stdout}");
            }
        }
        println!("{stdout}");
    }
}

//! The load tool in a short smoke run: the gateway, the direct-HTTP
//! baseline and the floor all answer every call OK, over plaintext and TLS. (Timings are reported, not asserted:
//! figures come from release builds, see PERFORMANCE.md.)

use std::process::Command;

#[test]
fn a_short_load_run_has_no_failed_calls() {
    for (rpc, tls) in [("update", false), ("get", false), ("update", true)] {
        let out = Command::new(env!("CARGO_BIN_EXE_graph-grpc-gateway-load"))
            .args(["--gateway-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")])
            .args(tls.then_some("--tls"))
            .args([
                "--rpc",
                rpc,
                "--concurrency",
                "8",
                "--tasks",
                "8",
                "--floor",
            ])
            .args([
                "--duration",
                "1s",
                "--warmup",
                "100",
                "--sample-every",
                "250ms",
            ])
            .output()
            .expect("load tool runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{rpc}: {stdout}\n{stderr}");
        for line in [
            "| direct HTTP |",
            "| floor gRPC |",
            "| gateway gRPC |",
            "floor process: CPU",
            "gateway process: CPU",
            "gateway vs floor: CPU",
            "non-OK calls: 0",
            if tls {
                "gRPC over TLS"
            } else {
                "gRPC over plaintext"
            },
        ] {
            assert!(
                stdout.contains(line),
                "{rpc}: {line:?} missing from:\n{stdout}"
            );
        }
        println!("{stdout}");
    }
}

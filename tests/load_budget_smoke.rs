//! The load tool's budget scenario in a short smoke run: all three phases
//! (budget off, on, replicas sharing a real redis-server) run and report,
//! and no call with the budget on fails that its deadline allowed to run.
//! (Rates, 429s and fairness are reported, not asserted: figures come from
//! release builds, see PERFORMANCE.md.)

use std::process::Command;

#[test]
fn a_short_budget_run_reports_every_phase() {
    let out = Command::new(env!("CARGO_BIN_EXE_graph-grpc-gateway-load"))
        .args(["--gateway-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")])
        .args(["budget", "--duration", "3s", "--callers", "4"])
        .output()
        .expect("load tool runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "| budget off (429s, retries) | 1 |",
        "| budget on, 1 gateway | 1 |",
        "| budget on, replicas sharing Redis | 3 |",
        "Jain's index",
        "failed calls with the budget on (besides GRAPH_BUDGET_EXHAUSTED before the deadline): 0",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    println!("{stdout}");
}

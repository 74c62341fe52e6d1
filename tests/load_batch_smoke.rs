//! The load tool's batch scenario in a short smoke run: 40 updates as one
//! BatchUpdateSecurityConfigurationTasks call and as 40 single calls, every
//! one answered OK in both, the batch's writes in one `$batch` envelope per
//! 20 updates, the single calls one PATCH each. (Wall times and their ratio
//! are reported, not asserted: figures come from release builds, see
//! PERFORMANCE.md.)

use std::process::Command;

#[test]
fn a_short_batch_run_reports_both_modes_with_every_update_ok() {
    let out = Command::new(env!("CARGO_BIN_EXE_graph-grpc-gateway-load"))
        .args(["--gateway-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")])
        .args(["batch", "--updates", "40", "--latency", "5ms"])
        .output()
        .expect("load tool runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        // Mode, gRPC calls, updates OK, failed.
        "| one BatchUpdateSecurityConfigurationTasks call | 1 | 40 | 0 |",
        "| 40 sequential UpdateSecurityConfigurationTask calls | 40 | 40 | 0 |",
        // ceil(40 / 20) envelopes carried the writes (the emulator answers
        // each PATCH with the task: nothing to read back), nothing went alone.
        "batch: 2 envelopes carrying writes, 0 carrying reads only; items: PATCH 40; requests alone: none",
        // One PATCH per single call, no envelope.
        "singles: 0 envelopes carrying writes, 0 carrying reads only; items: none; requests alone: PATCH 40",
        "batch / singles: wall time ",
        "| every update succeeded in both modes | 0 updates failed in both phases together (0) | met |",
        "failed updates: 0",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    println!("{stdout}");
}

//! The load tool's tracing scenario in a short smoke run: the three
//! configurations (trace export off, sampled 10%, sampled 100%), every call
//! answered OK, the traced gateways' spans received by the tool's OTLP/gRPC
//! collector and none from the gateway with export off. (CPU per call and
//! its ratios are reported, not asserted: figures come from release builds,
//! see PERFORMANCE.md.)

use std::process::Command;

/// The cells of the report's row for `configuration`.
fn row<'a>(stdout: &'a str, configuration: &str) -> Vec<&'a str> {
    let prefix = format!("| {configuration} |");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row for {configuration:?} in:\n{stdout}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

fn number(cell: &str) -> u64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a count"))
}

#[test]
fn a_short_tracing_run_reports_three_configurations_with_spans_only_where_traced() {
    let out = Command::new(env!("CARGO_BIN_EXE_graph-grpc-gateway-load"))
        .args(["--gateway-bin", env!("CARGO_BIN_EXE_graph-grpc-gateway")])
        .args(["tracing", "--rounds", "2", "--calls", "100"])
        .args(["--warmup", "20", "--concurrency", "4", "--tasks", "8"])
        .output()
        .expect("load tool runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    // The configurations' table: the rows after its header, up to the
    // blank line that ends it.
    let rows = stdout
        .lines()
        .skip_while(|l| !l.starts_with("| configuration |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .count();
    assert_eq!(rows, 3, "three configuration rows in:\n{stdout}");
    for (configuration, traced) in [
        ("tracing off", false),
        ("sampled 10% (traceidratio 0.1)", true),
        ("sampled 100% (always_on)", true),
    ] {
        let cells = row(&stdout, configuration);
        // Configuration, calls, OK, failed: two rounds of 100 calls each.
        assert_eq!(
            &cells[1..4],
            ["200", "200", "0"],
            "{configuration}: {stdout}"
        );
        let received = number(cells[10]);
        if traced {
            assert!(received > 0, "{configuration}: no spans received\n{stdout}");
        } else {
            assert_eq!(received, 0, "{configuration}: spans received\n{stdout}");
        }
    }
    // 100% sampling sends a span tree for every one of its 220 calls (20 of
    // them warm-up);
    // 10% for about a tenth of them.
    let all = number(row(&stdout, "sampled 100% (always_on)")[10]);
    let tenth = number(row(&stdout, "sampled 10% (traceidratio 0.1)")[10]);
    assert!(
        all >= 220,
        "at least one span per call at 100%: {all}\n{stdout}"
    );
    assert!(
        tenth < all,
        "10% sampling sent fewer spans than 100%\n{stdout}"
    );
    for line in [
        "sampled 100% (always_on) / off: CPU per call ",
        "gateway-sampled-100: 220 calls answered in all (20 warm-up)",
        "| every call succeeded | 0 calls failed in all configurations together | met |",
        "failed calls: 0",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    println!("{stdout}");
}

//! The chart's Grafana dashboards and alert rules use only metrics the
//! gateway exports: the real binary, against an emulator process, is sent
//! calls that succeed, fail, are retried and throttled (429), and has a
//! token request fail; its `/metrics` is scraped, and every `graph_gateway_*` and
//! `process_*` name in a dashboard query or an alert (read from the chart's
//! own files) must be an exported family, with a histogram's `_bucket`,
//! `_sum` and `_count` and a counter's `_total` mapped to their family.
//! A renamed metric fails here.

mod common;

use common::metrics::Scrape;
use common::process::{emulator_gateway_and_client, Running};
use graph_grpc_gateway::emulator::seed::EXAMPLE_TASK_ID;
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const PATIENCE: Duration = Duration::from_secs(60);
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/helm/graph-grpc-gateway");

/// The metric names in a PromQL expression: `graph_gateway_*` and `process_*`.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while i < bytes.len() {
        if is_name(bytes[i]) && (i == 0 || !is_name(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && is_name(bytes[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("graph_gateway_") || word.starts_with("process_") {
                into.insert(word.to_owned());
            }
        } else {
            i += 1;
        }
    }
}

/// Every `expr` (and variable query) string anywhere in a dashboard.
fn dashboard_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition" | "query", Value::String(s)) => into.push(s.clone()),
                    _ => dashboard_exprs(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, into)),
        _ => {}
    }
}

/// The `expr:` values of a Prometheus rule file: on the key's line, or the
/// block scalar (`|`, `>`) indented under it.
fn rule_exprs(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let key = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - key.len();
        if let Some(rest) = key.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('|') || rest.starts_with('>') {
                let mut block = String::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push_str(next.trim());
                    block.push('\n');
                    i += 1;
                }
                exprs.push(block);
            } else {
                exprs.push(rest.to_owned());
            }
        }
        i += 1;
    }
    exprs
}

/// The names a Prometheus query can use for what `/metrics` exposes: each
/// sample's name, and for each `# TYPE` family (a family nothing was counted
/// in yet has no sample) the names of its series.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(family), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{}_total", family.trim_end_matches("_total")));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{family}{suffix}"));
                    }
                }
                _ => {
                    names.insert(family.to_owned());
                }
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Every metric name the chart's dashboards and alert rules use, and
/// the file each was found in.
fn chart_metric_names() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let dir = Path::new(CHART).join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the chart's dashboards directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    for path in files {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard"))
                .expect("json");
        let mut exprs = Vec::new();
        dashboard_exprs(&dashboard, &mut exprs);
        let mut names = BTreeSet::new();
        exprs.iter().for_each(|e| metric_names(e, &mut names));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        found.extend(names.into_iter().map(|n| (n, file.clone())));
    }
    let rules = Path::new(CHART).join("rules/graph-grpc-gateway.rules.yaml");
    let exprs = rule_exprs(&std::fs::read_to_string(&rules).expect("rules file"));
    assert!(exprs.len() >= 7, "alert expressions: {exprs:?}");
    let mut names = BTreeSet::new();
    exprs.iter().for_each(|e| metric_names(e, &mut names));
    found.extend(names.into_iter().map(|n| (n, "rules".to_owned())));
    found
}

struct Stack {
    _emulator: Running,
    emulator: String,
    _gateway: Running,
    client: SecurityConfigurationTaskServiceClient<Channel>,
    admin: String,
}

impl Stack {
    async fn start() -> Self {
        let (started, client) = emulator_gateway_and_client(
            &["--require-auth"],
            "dashboards-test-secret",
            Vec::new(),
            &[],
        )
        .await;
        Self {
            _emulator: started.emulator,
            emulator: started.emulator_url,
            _gateway: started.gateway,
            client,
            admin: started.admin_url,
        }
    }

    async fn post(&self, path: &str, body: Value) {
        let request = reqwest::Client::new().post(format!("{}{path}", self.emulator));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        request
            .send()
            .await
            .expect("emulator control")
            .error_for_status()
            .expect("accepted");
    }

    async fn scrape(&self) -> Scrape {
        Scrape::get(&format!("{}/metrics", self.admin)).await
    }

    /// Scrapes until `done` holds of the scrape, failing after `PATIENCE`.
    async fn scrape_until(&self, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let scrape = self.scrape().await;
            if done(&scrape) {
                return scrape;
            }
            assert!(Instant::now() < deadline, "never {what}:\n{scrape}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[test]
fn the_name_check_maps_suffixes_to_their_family() {
    let text = "# TYPE graph_gateway_a counter\n# TYPE graph_gateway_h histogram\n# TYPE graph_gateway_g gauge\ngraph_gateway_g 1\n# EOF\n";
    let names = exported_names(text);
    for name in [
        "graph_gateway_a_total",
        "graph_gateway_h_bucket",
        "graph_gateway_h_sum",
        "graph_gateway_h_count",
        "graph_gateway_g",
    ] {
        assert!(names.contains(name), "{name}: {names:?}");
    }
    for name in [
        "graph_gateway_a",
        "graph_gateway_h",
        "graph_gateway_g_total",
    ] {
        assert!(!names.contains(name), "{name}: {names:?}");
    }
    let mut used = BTreeSet::new();
    metric_names(
        "sum by (rpc) (rate(graph_gateway_x_total{pod=~\"$pod\"}[5m])) / process_cpu_seconds_total",
        &mut used,
    );
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["graph_gateway_x_total", "process_cpu_seconds_total"]
    );
    assert_eq!(
        rule_exprs(
            "  - expr: a > 1\n    for: 5m\n  - expr: |\n      b\n        / c\n    for: 1m\n"
        ),
        ["a > 1", "b\n/ c\n"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_dashboards_and_alerts_is_exported() {
    let mut stack = Stack::start().await;

    // Calls that succeed, one Graph does not know, one retried after a 503,
    // one throttled (429) then answered, and one that runs out of retries.
    for _ in 0..3 {
        stack
            .client
            .get_security_configuration_task(common::get(EXAMPLE_TASK_ID))
            .await
            .expect("read");
    }
    let missing = stack
        .client
        .get_security_configuration_task(common::get("00000000-0000-4000-8000-000000000001"))
        .await
        .expect_err("no such task");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    stack
        .post(
            "/_emulator/faults",
            json!([{"status": 503, "retry_after": "0"}, {"status": 429, "retry_after": "0"}]),
        )
        .await;
    stack
        .client
        .update_security_configuration_task(common::rename(EXAMPLE_TASK_ID, "after faults", ""))
        .await
        .expect("updated after a retry and a throttle");
    // A 500 is not retried: the call fails with it.
    stack
        .post("/_emulator/faults", json!([{"status": 500}]))
        .await;
    stack
        .client
        .get_security_configuration_task(common::get(EXAMPLE_TASK_ID))
        .await
        .expect_err("Graph fails the call");

    // A token request that fails: the emulator (which checks the bearer of
    // every Graph request) lets the gateway's token expire and answers the
    // next token request 503; calls work again once the gateway has a new
    // token.
    stack
        .post("/_emulator/token-faults", json!([{"status": 503}]))
        .await;
    stack.post("/_emulator/expire-tokens", Value::Null).await;
    let _ = stack
        .client
        .get_security_configuration_task(common::get(EXAMPLE_TASK_ID))
        .await;
    let deadline = Instant::now() + PATIENCE;
    while stack
        .client
        .get_security_configuration_task(common::get(EXAMPLE_TASK_ID))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the gateway never got a new token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let scrape = stack
        .scrape_until("counted the failed token request", |s| {
            s.value(
                "graph_gateway_token_requests_total",
                &[("result", "transient")],
            )
            .is_some_and(|v| v >= 1.0)
        })
        .await;
    // What the traffic above must have shown.
    let at_least_one = |name: &str, labels: &[(&str, &str)]| {
        let v = scrape.value(name, labels).unwrap_or_default();
        assert!(v >= 1.0, "{name}{labels:?} = {v}:\n{scrape}");
    };
    at_least_one(
        "graph_gateway_grpc_calls_total",
        &[("rpc", "GetSecurityConfigurationTask"), ("code", "OK")],
    );
    at_least_one(
        "graph_gateway_grpc_calls_total",
        &[
            ("rpc", "GetSecurityConfigurationTask"),
            ("code", "NOT_FOUND"),
        ],
    );
    at_least_one(
        "graph_gateway_graph_requests_total",
        &[("method", "GET"), ("status", "500")],
    );
    at_least_one("graph_gateway_graph_retries_total", &[("reason", "503")]);
    at_least_one("graph_gateway_graph_retries_total", &[("reason", "429")]);
    at_least_one("graph_gateway_token_requests_total", &[("result", "ok")]);
    at_least_one("graph_gateway_token_ready", &[]);
    at_least_one("graph_gateway_ready", &[]);
    at_least_one("process_resident_memory_bytes", &[]);
    at_least_one("process_open_fds", &[]);
    assert!(
        scrape.value("process_cpu_seconds_total", &[]).is_some(),
        "{scrape}"
    );

    let exported = exported_names(scrape.text());
    let used = chart_metric_names();
    assert!(
        used.len() >= 20,
        "metric names read from the chart: {used:?}"
    );
    let unknown: Vec<_> = used
        .iter()
        .filter(|(name, _)| !exported.contains(name))
        .collect();
    assert!(
        unknown.is_empty(),
        "the chart uses metrics the gateway does not export: {unknown:?}\nexported: {exported:?}"
    );
}

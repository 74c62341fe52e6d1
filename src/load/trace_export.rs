//! The `tracing` scenario: what exporting traces costs the gateway, as its
//! CPU time per `UpdateSecurityConfigurationTask` call, in three
//! configurations side by side in one run, against one emulator, under the
//! same load, with Intune's budget off (`GRAPH_BUDGET=off`) so nothing paces
//! the writes but the gateway:
//! - **off**: no `OTEL_EXPORTER_OTLP_ENDPOINT` (no trace layer installed);
//! - **sampled 10%**: `OTEL_TRACES_SAMPLER=traceidratio`, argument 0.1;
//! - **sampled 100%**: `OTEL_TRACES_SAMPLER=always_on`.
//!
//! The traced gateways export over OTLP/gRPC to a collector the tool runs
//! itself ([`super::otlp_sink`]), which counts the spans each sent (told
//! apart by `OTEL_SERVICE_NAME`). The three gateways run from the start;
//! their measured phases alternate in rounds (off, 10%, 100%, off, …) so
//! the machine's slow phases fall on all three alike, and the report gives
//! each configuration's median over its rounds. After the last round each
//! gateway's span counters are read from its `/metrics`, and each is
//! stopped (SIGTERM, no lame-duck delay), which exports what it still
//! queued; then the collector's counts are final. The report
//! ([`super::trace_export_report`]) gives calls, failures, CPU, latency,
//! spans and the ratios against the targets.

use super::otlp_sink::OtlpSink;
use super::procs::{json_field, Proc};
use super::trace_export_report::{Config, ConfigResult, TracingReport};
use super::{
    measure, measured_gateway_env, start_emulator, token, Grpc, Rpc, Shape, Workload, TENANT,
};
use anyhow::{bail, Context};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

/// `graph-grpc-gateway-load tracing`.
#[derive(Debug, Clone, clap::Args)]
pub struct TracingArgs {
    /// Rounds: each runs one measured phase per configuration.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long each measured phase runs.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Calls each measured phase makes, instead of running for `--duration`.
    #[arg(long, conflicts_with = "duration")]
    pub calls: Option<std::num::NonZeroU64>,
    /// Calls made through each gateway before its first measured phase.
    #[arg(long, default_value_t = 2000)]
    pub warmup: u64,
    /// Tasks seeded in the emulator and updated in turn.
    #[arg(long, default_value_t = 64)]
    pub tasks: usize,
    /// Exit non-zero when a target is missed, not only when a call failed.
    #[arg(long)]
    pub enforce_targets: bool,
    /// A gateway binary to run as a fourth configuration, first in each
    /// round, with no trace settings: one built before trace export, so
    /// that "off" is judged against it in the same run.
    #[arg(long)]
    pub baseline_bin: Option<std::path::PathBuf>,
}

/// How long a gateway may take to stop and export what it queued (its
/// exporter gives the queue 5 s at most).
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// One configuration's gateway and what is known of it so far.
struct Running {
    config: Config,
    gateway: Proc,
    admin_addr: String,
    grpc: Grpc,
    result: ConfigResult,
}

/// Runs the rounds and prints the report.
pub async fn run(bin: &Path, args: &TracingArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.concurrency > 0 && args.tasks > 0,
        "--concurrency and --tasks must be positive"
    );
    let (emulator, graph_base, authority) = start_emulator(bin, &[])?;
    let sink = OtlpSink::start().await?;
    let http = crate::graph::http_client(false)?;
    let graph_token = token(&http, &authority, TENANT).await?;
    let tasks = super::seed(&http, &graph_base, &graph_token, args.tasks).await?;
    let work = Arc::new(Workload::new(&tasks, &graph_base, graph_token)?);

    let mut running = Vec::new();
    let configs = args
        .baseline_bin
        .as_ref()
        .map(|_| Config::Baseline)
        .into_iter()
        .chain(Config::ALL);
    for config in configs {
        let mut env = measured_gateway_env(&graph_base, &authority, args.concurrency);
        env.extend([
            ("GATEWAY_PLAINTEXT", "true".to_owned()),
            // Stopped at the end only to export what is queued.
            ("GATEWAY_SHUTDOWN_DELAY", "0s".to_owned()),
            ("OTEL_SERVICE_NAME", config.service_name().to_owned()),
        ]);
        if let Some((sampler, arg)) = config.sampler() {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint().to_owned()));
            env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()));
            env.push(("OTEL_TRACES_SAMPLER", sampler.to_owned()));
            if let Some(arg) = arg {
                env.push(("OTEL_TRACES_SAMPLER_ARG", arg.to_owned()));
            }
        }
        let gateway_bin = match (config, &args.baseline_bin) {
            (Config::Baseline, Some(baseline)) => baseline.as_path(),
            _ => bin,
        };
        let (gateway, grpc_addr, admin_addr) = start(gateway_bin, &env)?;
        let channel = Channel::from_shared(format!("http://{grpc_addr}"))?
            .connect()
            .await
            .with_context(|| format!("connecting to {grpc_addr}"))?;
        running.push(Running {
            config,
            gateway,
            admin_addr,
            grpc: Grpc {
                channels: Arc::new(vec![channel]),
                work: work.clone(),
                rpc: Rpc::Update,
            },
            result: ConfigResult::new(config),
        });
    }

    for round in 0..args.rounds {
        for r in &mut running {
            eprintln!(
                "tracing: round {} of {}, {}",
                round + 1,
                args.rounds,
                r.config.name()
            );
            let shape = Shape {
                concurrency: args.concurrency,
                // Each gateway warms up before its first phase only.
                warmup: if round == 0 { args.warmup } else { 0 },
                duration: args.duration,
                calls: args.calls,
                sample_every: Duration::from_secs(3600),
            };
            let grpc = r.grpc.clone();
            let phase = measure(
                r.config.name(),
                &shape,
                &emulator,
                Some(&r.gateway),
                move |w, i| {
                    let g = grpc.clone();
                    async move { g.call(w, i).await }
                },
            )
            .await
            .with_context(|| format!("round {}, {}", round + 1, r.config.name()))?;
            r.result.warmup_calls += shape.warmup;
            r.result.rounds.push(phase);
        }
    }

    for r in &mut running {
        let metrics = scrape(&http, &r.admin_addr).await?;
        r.result.spans_exported = counter(&metrics, "graph_gateway_trace_spans_exported_total");
        r.result.spans_dropped = counter(&metrics, "graph_gateway_trace_spans_dropped_total");
        r.result.stopped_cleanly = r.gateway.stop(STOP_LIMIT)?;
        r.result.spans_received = sink.spans(r.config.service_name());
    }
    drop(emulator);

    let report = TracingReport {
        concurrency: args.concurrency,
        duration: args.duration,
        calls: args.calls.map(std::num::NonZeroU64::get),
        warmup: args.warmup,
        configs: running.into_iter().map(|r| r.result).collect(),
    };
    print!("{}", report.render());
    let failed = report.failed();
    if failed > 0 {
        bail!("{failed} calls failed");
    }
    let missed = report.missed_targets();
    if args.enforce_targets && !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// Starts a gateway; answers it with its gRPC and admin addresses.
pub(super) fn start(bin: &Path, env: &[(&str, String)]) -> anyhow::Result<(Proc, String, String)> {
    let gateway = Proc::spawn(
        bin,
        &[
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log",
            "warn,graph_grpc_gateway::server=info",
        ],
        env,
    )?;
    let line = gateway.wait_for("graph-grpc-gateway serving", super::START_LIMIT)?;
    let grpc = json_field(&line, "grpc_addr").context("gateway grpc_addr")?;
    let admin = json_field(&line, "admin_addr").context("gateway admin_addr")?;
    Ok((gateway, grpc.to_owned(), admin.to_owned()))
}

/// The gateway's `/metrics` text.
async fn scrape(http: &reqwest::Client, admin_addr: &str) -> anyhow::Result<String> {
    http.get(format!("http://{admin_addr}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
        .context("the gateway's /metrics")
}

/// The sum of a counter's series (every label set) in Prometheus text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::counter;

    #[test]
    fn a_counter_is_summed_over_its_labels_and_nothing_else() {
        let text = "# TYPE x counter\n\
                    graph_gateway_trace_spans_dropped_total{reason=\"queue_full\"} 7\n\
                    graph_gateway_trace_spans_dropped_total{reason=\"export_failed\"} 3\n\
                    graph_gateway_trace_spans_dropped_total_other 100\n\
                    graph_gateway_trace_spans_exported_total 42\n";
        assert_eq!(counter(text, "graph_gateway_trace_spans_dropped_total"), 10);
        assert_eq!(
            counter(text, "graph_gateway_trace_spans_exported_total"),
            42
        );
        assert_eq!(counter(text, "graph_gateway_absent_total"), 0);
    }
}

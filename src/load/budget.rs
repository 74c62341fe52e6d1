//! The `budget` scenario: Intune's write budget under callers that write as
//! fast as they can, against the emulator enforcing Intune's limits (scaled:
//! 100 writes per app per 20 s / `--scale`).
//!
//! Three phases, one after the other, each with its own emulator (so no
//! phase inherits another's window) and, for the shared phase, its own
//! redis-server:
//! - **budget off**: one gateway with `GRAPH_BUDGET=off`, which learns the
//!   limit from Graph's 429s and retries after them (the behaviour without
//!   the budget);
//! - **budget on**: one gateway pacing on `GRAPH_WRITE_BUDGET`;
//! - **shared**: `--replicas` gateways sharing one budget in Redis
//!   (`GRAPH_BUDGET_REDIS_URL`, `GATEWAY_REPLICAS`), the callers spread
//!   over them round-robin.
//!
//! Every caller has its own identity (a client certificate whose CN the
//! caller policy names, so the gateway's fair queue tells them apart), its
//! own connection and its own task, and calls Update in a closed loop with
//! a deadline on each call. A refused call that carries a `RetryInfo` is
//! sent again after the delay it names (what a well-behaved client does),
//! else at once. The report ([`super::budget_report`]) gives each phase's
//! completed writes per second against the budget's rate, the 429s that
//! reached the emulator, latency, failures and fairness.

use super::budget_report::{BudgetReport, CallerTally, GraphCounts, PhaseResult};
use super::procs::Proc;
use super::redis_server::RedisServer;
use super::tls::TlsFiles;
use super::{gateway_env, start_emulator, start_gateway, token, Workload, APP, TENANT};
use crate::budget::Rate;
use crate::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// Intune's per-app write limit per 20 s window (before scaling).
const INTUNE_WRITES: u32 = 100;
/// Intune's per-app request limit per 20 s window (before scaling).
const INTUNE_REQUESTS: u32 = 1000;
const INTUNE_WINDOW: Duration = Duration::from_secs(20);
/// Tasks are created in a tenant of their own, so seeding takes nothing
/// from the budget under test.
const SEED_TENANT: &str = "load-seed";
/// The refusal the budget makes when a call's turn would come after its
/// deadline: the one failure the targets accept.
pub const BUDGET_EXHAUSTED: &str = "GRAPH_BUDGET_EXHAUSTED";

/// `graph-grpc-gateway-load budget`.
#[derive(Debug, Clone, clap::Args)]
pub struct BudgetArgs {
    /// Callers, each with its own identity, connection and task.
    #[arg(long, default_value_t = 16)]
    pub callers: usize,
    /// How long the callers send in each phase.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Each call's deadline (`grpc-timeout`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Gateway replicas of the shared phase.
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// Divides Intune's 20 s window, in the emulator and in the gateway's
    /// budget alike (10: 100 writes per 2 s).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub scale: u32,
    /// The redis-server binary (default: PATH's, else .cache/tools/bin's).
    #[arg(long)]
    pub redis_server: Option<PathBuf>,
    /// Exit non-zero when a phase with the budget on misses a target, not
    /// only when a call failed that its deadline allowed to run.
    #[arg(long)]
    pub enforce_targets: bool,
    /// Exit 0 even when calls failed in the phases with the budget on.
    #[arg(long)]
    pub allow_errors: bool,
}

impl BudgetArgs {
    /// The budget the gateway is given, and the emulator enforces.
    pub fn write_budget(&self) -> Rate {
        Rate::new(INTUNE_WRITES, INTUNE_WINDOW / self.scale.max(1))
    }

    fn request_budget(&self) -> Rate {
        Rate::new(INTUNE_REQUESTS, INTUNE_WINDOW / self.scale.max(1))
    }
}

/// One phase's gateway configuration.
#[derive(Debug, Clone, Copy)]
pub struct PhaseSpec {
    pub name: &'static str,
    pub budget: bool,
    pub replicas: usize,
}

impl PhaseSpec {
    /// Replicas take the budget from Redis.
    pub fn shared(&self) -> bool {
        self.replicas > 1
    }
}

/// The callers' names: the policy's, and their certificates' CNs.
fn caller_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("caller-{i:02}")).collect()
}

/// A policy naming every caller by its certificate, allowed to Update, with
/// no rate limit of its own: the budget is the only limit.
fn policy(names: &[String]) -> String {
    let mut text = String::new();
    for name in names {
        text.push_str(&format!(
            "[[callers]]\nname = \"{name}\"\nidentities = [\"cn:{name}\"]\nrpcs = [\"UpdateSecurityConfigurationTask\"]\n\n"
        ));
    }
    text
}

/// Runs the three phases and prints the report.
pub async fn run(bin: &Path, args: &BudgetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.callers > 0 && args.replicas > 1,
        "--callers must be positive and --replicas at least 2"
    );
    anyhow::ensure!(
        !args.deadline.is_zero() && !args.duration.is_zero(),
        "--deadline and --duration must be positive"
    );
    let names = caller_names(args.callers);
    let files = TlsFiles::with_callers(&names)?;
    let policy = files.put("policy.toml", &policy(&names))?;
    let phases = [
        PhaseSpec {
            name: "budget off (429s, retries)",
            budget: false,
            replicas: 1,
        },
        PhaseSpec {
            name: "budget on, 1 gateway",
            budget: true,
            replicas: 1,
        },
        PhaseSpec {
            name: "budget on, replicas sharing Redis",
            budget: true,
            replicas: args.replicas,
        },
    ];
    let mut report = BudgetReport::new(args);
    for spec in phases {
        eprintln!("budget: phase {:?}", spec.name);
        let result = phase(bin, args, spec, &files, &policy)
            .await
            .with_context(|| format!("phase {:?}", spec.name))?;
        report.phases.push(result);
    }
    print!("{}", report.render());
    let failed = report.failed_with_time_left();
    if failed > 0 && !args.allow_errors {
        bail!("{failed} calls failed with the budget on that their deadline allowed to run");
    }
    let missed = report.missed_targets();
    if args.enforce_targets && !missed.is_empty() {
        bail!("targets missed: {}", missed.join("; "));
    }
    Ok(())
}

/// The processes of one phase, killed when dropped.
struct Stage {
    emulator: Proc,
    gateways: Vec<Proc>,
    _redis: Option<RedisServer>,
}

async fn phase(
    bin: &Path,
    args: &BudgetArgs,
    spec: PhaseSpec,
    files: &TlsFiles,
    policy: &Path,
) -> anyhow::Result<PhaseResult> {
    let scale = args.scale.to_string();
    let (emulator, graph_base, authority) =
        start_emulator(bin, &["--intune-limits", "--intune-limits-scale", &scale])?;
    let http = crate::graph::http_client(false)?;
    let seed_token = token(&http, &authority, SEED_TENANT).await?;
    let tasks = super::seed(&http, &graph_base, &seed_token, args.callers).await?;
    let work = Arc::new(Workload::new(&tasks, &graph_base, seed_token)?);

    let redis = spec
        .shared()
        .then(|| RedisServer::start(args.redis_server.as_deref()))
        .transpose()?;
    let mut env = gateway_env(&graph_base, &authority);
    env.extend([
        ("GATEWAY_TLS_CERT_FILE", files.cert.display().to_string()),
        ("GATEWAY_TLS_KEY_FILE", files.key.display().to_string()),
        (
            "GATEWAY_TLS_CLIENT_CA_FILE",
            files
                .client_ca
                .as_ref()
                .context("client CA")?
                .display()
                .to_string(),
        ),
        ("GATEWAY_POLICY_FILE", policy.display().to_string()),
        (
            "GRAPH_BUDGET",
            if spec.budget { "on" } else { "off" }.to_owned(),
        ),
        ("GRAPH_WRITE_BUDGET", args.write_budget().to_string()),
        ("GRAPH_REQUEST_BUDGET", args.request_budget().to_string()),
        ("GATEWAY_REPLICAS", spec.replicas.to_string()),
    ]);
    if let Some(redis) = &redis {
        env.push(("GRAPH_BUDGET_REDIS_URL", redis.url.clone()));
    }
    let mut gateways = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..spec.replicas {
        let (gateway, addr) = start_gateway(
            bin,
            "warn,graph_grpc_gateway::server=info,graph_grpc_gateway::budget=info",
            &env,
        )?;
        gateways.push(gateway);
        addrs.push(addr);
    }
    let stage = Stage {
        emulator,
        gateways,
        _redis: redis,
    };

    // One connection per caller, with its certificate, to the replicas in
    // turn; all made before the clock starts.
    let mut channels = Vec::with_capacity(args.callers);
    for (i, _) in tasks.iter().enumerate() {
        let addr = &addrs[i % addrs.len()];
        let channel = Channel::from_shared(format!("https://{addr}"))?
            .tls_config(files.caller(i)?)?
            .connect()
            .await
            .with_context(|| format!("caller {i} connecting to {addr}"))?;
        channels.push(channel);
    }
    let cpu_before = gateway_cpu(&stage.gateways)?;
    let started = Instant::now();
    let end = started + args.duration;
    let mut handles = Vec::new();
    for (i, channel) in channels.into_iter().enumerate() {
        let (work, deadline) = (work.clone(), args.deadline);
        handles.push(tokio::spawn(async move {
            caller(i, channel, &work, deadline, end).await
        }));
    }
    let mut callers = Vec::with_capacity(handles.len());
    for h in handles {
        callers.push(h.await?);
    }
    let elapsed = started.elapsed();
    let graph = graph_counts(&http, &authority).await?;
    let gateway_cpu = gateway_cpu(&stage.gateways)?.saturating_sub(cpu_before);
    drop(stage.emulator);
    Ok(PhaseResult {
        spec,
        duration: args.duration,
        elapsed,
        callers,
        graph,
        gateway_cpu,
    })
}

/// One caller's closed loop until `end`.
async fn caller(
    i: usize,
    channel: Channel,
    work: &Workload,
    deadline: Duration,
    end: Instant,
) -> CallerTally {
    let mut client = SecurityConfigurationTaskServiceClient::new(channel);
    let mut tally = CallerTally::new();
    let mut n = 0u64;
    while Instant::now() < end {
        let (task, variant) = work.pick(i, n);
        n += 1;
        let mut request = tonic::Request::new(work.updates[task][variant].clone());
        request.set_timeout(deadline);
        let sent = Instant::now();
        let result = client.update_security_configuration_task(request).await;
        let took = sent.elapsed();
        let in_window = Instant::now() <= end;
        match result {
            Ok(_) => tally.ok(took, in_window),
            Err(status) => {
                let reason = status
                    .get_details_error_info()
                    .map(|info| info.reason)
                    .unwrap_or_default();
                let budget_refusal = reason == BUDGET_EXHAUSTED && took < deadline;
                let key = if reason.is_empty() {
                    crate::metrics::code_name(status.code()).to_owned()
                } else {
                    format!("{} {reason}", crate::metrics::code_name(status.code()))
                };
                tally.failed(key, budget_refusal, took < deadline);
                let retry = status.get_details_retry_info().and_then(|r| r.retry_delay);
                if let Some(delay) = retry {
                    let left = end.saturating_duration_since(Instant::now());
                    tokio::time::sleep(delay.min(left)).await;
                }
            }
        }
    }
    tally
}

/// CPU time of all the phase's gateways together.
fn gateway_cpu(gateways: &[Proc]) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    for g in gateways {
        total += g.usage()?.cpu;
    }
    Ok(total)
}

/// What the emulator's Intune limits counted for the gateway's app.
async fn graph_counts(http: &reqwest::Client, authority: &str) -> anyhow::Result<GraphCounts> {
    let report: crate::emulator::IntuneReport = http
        .get(format!("{authority}/_emulator/intune-limits"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("the emulator's Intune report")?;
    let app = report
        .apps
        .into_iter()
        .find(|u| u.tenant == TENANT && u.app.as_deref() == Some(APP))
        .unwrap_or_default();
    Ok(GraphCounts {
        admitted_writes: app.admitted_writes,
        refused_writes: app.refused_writes,
        refused_requests: app.refused_requests,
        peak_writes: app.peak_writes,
        peak_offered_writes: app.peak_offered_writes,
    })
}

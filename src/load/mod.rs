//! The load tool (`graph-grpc-gateway-load`): drives the gateway and, as the
//! baseline, the same requests as direct HTTP against the same emulator, in
//! one run, and reports what the gateway adds: throughput, latency, CPU time
//! per call and memory, read from /proc for the gateway process alone.
//!
//! More scenarios are subcommands: `budget` (Intune's budget through one
//! and three replicas, next to the budget off: [`budget`]), `lease` (what
//! a Redis round trip per budget token costs against a lease of several:
//! [`lease`]) and `batch` (many updates in one batch call against as many
//! single calls, with latency at Graph: [`batch`]), `tracing` (the
//! gateway's CPU per call with trace export off, sampled and always on:
//! [`trace_export`]) and `loadgen` (the gateway and direct HTTP measured
//! with wrk and h2load, load generators from outside the project:
//! [`loadgen`]).

pub mod batch;
mod batch_report;
pub mod budget;
mod budget_report;
pub mod floor;
pub mod lease;
pub mod loadgen;
mod loadgen_report;
mod otlp_sink;
mod procs;
mod redis_server;
mod report;
mod tls;
pub mod trace_export;
mod trace_export_report;

use crate::graph::http_client;
use crate::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use crate::proto::v1::{
    DeviceAppManagementTaskCategory, DeviceAppManagementTaskPriority,
    DeviceAppManagementTaskStatus, EndpointSecurityConfigurationApplicablePlatform,
    EndpointSecurityConfigurationProfileType, EndpointSecurityConfigurationType,
    GetSecurityConfigurationTaskRequest, KeyValuePair, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use crate::translate;
use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use procs::{json_field, Proc, Usage};
use report::{Phase, Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Which call to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rpc {
    /// UpdateSecurityConfigurationTask (gateway) vs PATCH + JSON decode (direct).
    Update,
    /// GetSecurityConfigurationTask (gateway) vs GET + JSON decode (direct).
    Get,
}

/// Load the gateway and the direct-HTTP baseline side by side.
#[derive(Debug, Clone, Parser)]
#[command(name = "graph-grpc-gateway-load", version)]
pub struct LoadArgs {
    /// Another scenario than the default (the gateway against direct HTTP).
    #[command(subcommand)]
    pub scenario: Option<Scenario>,
    /// The gateway binary (default: `graph-grpc-gateway` next to this one).
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,
    /// The call to drive.
    #[arg(long, value_enum, default_value = "update")]
    pub rpc: Rpc,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long each measured phase runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Calls each measured phase makes; the phase runs until they are
    /// answered instead of for `--duration`.
    #[arg(long, conflicts_with = "duration")]
    pub calls: Option<std::num::NonZeroU64>,
    /// Calls made before each phase is measured (connections, caches, token).
    #[arg(long, default_value_t = 2000)]
    pub warmup: u64,
    /// Tasks seeded in the emulator and updated in turn.
    #[arg(long, default_value_t = 64)]
    pub tasks: usize,
    /// gRPC connections (HTTP/2) the workers share.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// The gateway's runtime worker threads (`GATEWAY_WORKER_THREADS`;
    /// default: the gateway's own default, one per CPU).
    #[arg(long)]
    pub gateway_threads: Option<std::num::NonZeroUsize>,
    /// The gateway's cap on Graph calls in flight (`GRAPH_MAX_IN_FLIGHT`;
    /// default: the gateway's own default, 256). Calls past it wait.
    #[arg(long)]
    pub graph_max_in_flight: Option<std::num::NonZeroUsize>,
    /// Turn the gateway's audit records off (`audit=off`), to measure what
    /// writing one record per update costs.
    #[arg(long)]
    pub no_audit: bool,
    /// Skip the direct-HTTP baseline.
    #[arg(long)]
    pub skip_direct: bool,
    /// Serve gRPC over TLS (a throwaway certificate) on the gateway and the
    /// floor, to measure what TLS costs; plaintext otherwise.
    #[arg(long)]
    pub tls: bool,
    /// Also measure the floor: a bare tonic server making the same pooled
    /// request with the same JSON translation, and nothing else (see
    /// `src/load/floor.rs`), in its own process like the gateway.
    #[arg(long)]
    pub floor: bool,
    /// How often the gateway's resident memory is sampled during its phase.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Exit 0 even when calls failed.
    #[arg(long)]
    pub allow_errors: bool,
}

/// The scenarios besides the default one.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Intune's budget: callers writing as fast as they can through one
    /// gateway with the budget off, one with it on, and replicas sharing it
    /// through Redis.
    Budget(budget::BudgetArgs),
    /// Redis round trips: one budget token per round trip against leases
    /// of several tokens.
    Lease(lease::LeaseArgs),
    /// Graph JSON batching: many updates as one batch call, against the
    /// same updates as single calls one after another, with latency added
    /// to every Graph answer.
    Batch(batch::BatchArgs),
    /// Trace export: what the gateway's CPU per Update is with tracing
    /// off, sampled at 10% and at 100%, exporting to an OTLP collector the
    /// tool runs, the three in alternating rounds.
    Tracing(trace_export::TracingArgs),
    /// A second opinion from load generators outside the project: wrk
    /// sending the gateway's PATCH straight to the emulator, h2load sending
    /// gRPC Updates through the gateway over one HTTP/2 connection, at
    /// concurrency 64 and 1.
    Loadgen(loadgen::LoadgenArgs),
}

const START_LIMIT: Duration = Duration::from_secs(60);

/// Runs the tool; the report goes to stdout. Fails when any call failed
/// (unless allowed), so a smoke run can assert a healthy path.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let bin = match &args.gateway_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary folder")?
            .join("graph-grpc-gateway"),
    };
    match &args.scenario {
        Some(Scenario::Budget(budget)) => return budget::run(&bin, budget).await,
        Some(Scenario::Lease(lease)) => return lease::run(lease).await,
        Some(Scenario::Batch(batch)) => return batch::run(&bin, batch).await,
        Some(Scenario::Tracing(tracing)) => return trace_export::run(&bin, tracing).await,
        Some(Scenario::Loadgen(loadgen)) => return loadgen::run(&bin, loadgen).await,
        None => {}
    }
    anyhow::ensure!(
        args.concurrency > 0 && args.tasks > 0 && args.connections > 0,
        "counts must be positive"
    );

    // The emulator: constant cost per request (its request log is off by
    // default; no latency).
    let (emulator, graph_base, authority) = start_emulator(&bin, &[])?;

    // The gateway, as in production but against the emulator.
    let mut env = measured_gateway_env(&graph_base, &authority, args.concurrency);
    if let Some(n) = args.graph_max_in_flight {
        env.push(("GRAPH_MAX_IN_FLIGHT", n.to_string()));
    }
    if let Some(n) = args.gateway_threads {
        env.push(("GATEWAY_WORKER_THREADS", n.to_string()));
    }
    let tls = args.tls.then(tls::TlsFiles::create).transpose()?;
    match &tls {
        Some(files) => {
            env.push(("GATEWAY_TLS_CERT_FILE", files.cert.display().to_string()));
            env.push(("GATEWAY_TLS_KEY_FILE", files.key.display().to_string()));
        }
        None => env.push(("GATEWAY_PLAINTEXT", "true".to_owned())),
    }
    let log = if args.no_audit {
        "warn,graph_grpc_gateway::server=info,audit=off"
    } else {
        "warn,graph_grpc_gateway::server=info"
    };
    let (gateway, grpc_addr) = start_gateway(&bin, log, &env)?;
    let idle = gateway.usage()?;

    let http = http_client(false)?;
    let token = token(&http, &authority, TENANT).await?;
    let tasks = seed(&http, &graph_base, &token, args.tasks).await?;
    let workload = Arc::new(Workload::new(&tasks, &graph_base, token)?);

    let mut report = Report::new(&args, idle);
    let shape = Shape::from(&args);
    if !args.skip_direct {
        let direct = Direct {
            http: http.clone(),
            work: workload.clone(),
            rpc: args.rpc,
        };
        let phase = measure("direct HTTP", &shape, &emulator, None, move |w, i| {
            let d = direct.clone();
            async move { d.call(w, i).await }
        })
        .await?;
        report.direct = Some(phase);
    }
    if args.floor {
        let mut floor_env = vec![
            (floor::ENV_GRAPH_BASE_URL, graph_base.clone()),
            (floor::ENV_AUTHORIZATION, workload.authorization.clone()),
            (
                floor::ENV_MAX_STREAMS,
                args.concurrency.max(128).to_string(),
            ),
        ];
        if let Some(files) = &tls {
            floor_env.push((floor::ENV_TLS_CERT_FILE, files.cert.display().to_string()));
            floor_env.push((floor::ENV_TLS_KEY_FILE, files.key.display().to_string()));
        }
        let floor = Proc::spawn(&std::env::current_exe()?, &[floor::COMMAND], &floor_env)?;
        let line = floor.wait_for(floor::SERVING, START_LIMIT)?;
        let addr = json_field(&line, "grpc_addr").context("floor grpc_addr")?;
        let grpc = Grpc::connect(addr, &args, tls.as_ref(), &workload).await?;
        let phase = measure(
            "floor gRPC",
            &shape,
            &emulator,
            Some(&floor),
            move |w, i| {
                let g = grpc.clone();
                async move { g.call(w, i).await }
            },
        )
        .await?;
        report.floor = Some(phase);
    }
    let grpc = Grpc::connect(&grpc_addr, &args, tls.as_ref(), &workload).await?;
    let phase = measure(
        "gateway gRPC",
        &shape,
        &emulator,
        Some(&gateway),
        move |w, i| {
            let g = grpc.clone();
            async move { g.call(w, i).await }
        },
    )
    .await?;
    report.gateway = Some(phase);
    report.gateway_end = gateway.usage()?;
    print!("{}", report.render());
    let errors = report.errors();
    if errors > 0 && !args.allow_errors {
        bail!("{errors} calls failed");
    }
    Ok(())
}

/// The requests, built once so the measured loop only sends them.
struct Workload {
    ids: Vec<String>,
    /// Per task, two alternating updates (so each call changes the task).
    updates: Vec<[UpdateSecurityConfigurationTaskRequest; 2]>,
    /// The same updates as PATCH bodies, and the task URLs, for direct HTTP.
    bodies: Vec<[Bytes; 2]>,
    urls: Vec<String>,
    authorization: String,
}

impl Workload {
    fn new(ids: &[String], graph_base: &str, token: String) -> anyhow::Result<Self> {
        let mut updates = Vec::new();
        let mut bodies = Vec::new();
        let mut urls = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let pair = [realistic_update(id, n, 0), realistic_update(id, n, 1)];
            let body = |r: &UpdateSecurityConfigurationTaskRequest| -> anyhow::Result<Bytes> {
                Ok(translate::patch_request(r)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .body
                    .into())
            };
            bodies.push([body(&pair[0])?, body(&pair[1])?]);
            updates.push(pair);
            urls.push(format!(
                "{graph_base}/deviceAppManagement/deviceAppManagementTasks/{id}"
            ));
        }
        Ok(Self {
            ids: ids.to_vec(),
            updates,
            bodies,
            urls,
            authorization: format!("Bearer {token}"),
        })
    }

    fn pick(&self, worker: usize, i: u64) -> (usize, usize) {
        let task = worker % self.ids.len();
        (task, usize::try_from(i % 2).unwrap_or(0))
    }
}

/// A full update, as a security team's tooling would send it.
fn realistic_update(id: &str, n: usize, variant: usize) -> UpdateSecurityConfigurationTaskRequest {
    let settings = (0..4)
        .map(|k| KeyValuePair {
            name: format!("./Vendor/MSFT/Policy/Config/Defender/Setting{k}"),
            value: Some(format!("{}", (k + variant) % 3)),
        })
        .collect();
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: id.to_owned(),
            display_name: Some(format!("Turn on tamper protection ({n})")),
            description: Some("Tamper protection is off on devices in the finance OU.".into()),
            due_date_time: Some(prost_types::Timestamp {
                seconds: 1_767_225_600 + i64::try_from(variant).unwrap_or(0),
                nanos: 123_456_700,
            }),
            category: DeviceAppManagementTaskCategory::AdvancedThreatProtection as i32,
            priority: DeviceAppManagementTaskPriority::High as i32,
            creator: Some("secops@contoso.com".into()),
            creator_notes: Some("Raised by Defender for Endpoint.".into()),
            assigned_to: Some("intune-admins@contoso.com".into()),
            status: if variant == 0 {
                DeviceAppManagementTaskStatus::Active
            } else {
                DeviceAppManagementTaskStatus::Pending
            } as i32,
            applicable_platform: EndpointSecurityConfigurationApplicablePlatform::Windows10AndLater
                as i32,
            endpoint_security_policy: EndpointSecurityConfigurationType::Antivirus as i32,
            endpoint_security_policy_profile:
                EndpointSecurityConfigurationProfileType::WindowsSecurity as i32,
            insights: Some(format!("{} devices affected", 10 + variant)),
            managed_device_count: Some(i32::try_from(10 + variant).unwrap_or(10)),
            intended_settings: settings,
            created_date_time: None,
        }),
        update_mask: None,
        ..Default::default()
    }
}

#[derive(Clone)]
struct Direct {
    http: reqwest::Client,
    work: Arc<Workload>,
    rpc: Rpc,
}

impl Direct {
    async fn call(&self, worker: usize, i: u64) -> Result<(), String> {
        let (task, variant) = self.work.pick(worker, i);
        let url = &self.work.urls[task];
        let req = match self.rpc {
            Rpc::Update => self
                .http
                .patch(url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(self.work.bodies[task][variant].clone()),
            Rpc::Get => self.http.get(url),
        };
        let resp = req
            .header(http::header::AUTHORIZATION, &self.work.authorization)
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|_| "connect".to_owned())?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|_| "body".to_owned())?;
        if status != 200 {
            return Err(status.to_string());
        }
        // Parity with the gateway's client, which gets a decoded message.
        translate::task_from_graph(&body)
            .map(drop)
            .map_err(|_| "decode".to_owned())
    }
}

#[derive(Clone)]
struct Grpc {
    channels: Arc<Vec<Channel>>,
    work: Arc<Workload>,
    rpc: Rpc,
}

impl Grpc {
    async fn connect(
        addr: &str,
        args: &LoadArgs,
        tls: Option<&tls::TlsFiles>,
        work: &Arc<Workload>,
    ) -> anyhow::Result<Self> {
        let mut channels = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            let endpoint = match tls {
                Some(files) => {
                    Channel::from_shared(format!("https://{addr}"))?.tls_config(files.client())?
                }
                None => Channel::from_shared(format!("http://{addr}"))?,
            };
            channels.push(endpoint.connect().await?);
        }
        Ok(Self {
            channels: Arc::new(channels),
            work: work.clone(),
            rpc: args.rpc,
        })
    }

    async fn call(&self, worker: usize, i: u64) -> Result<(), String> {
        let (task, variant) = self.work.pick(worker, i);
        let channel = self.channels[worker % self.channels.len()].clone();
        let mut client = SecurityConfigurationTaskServiceClient::new(channel);
        let result = match self.rpc {
            Rpc::Update => client
                .update_security_configuration_task(self.work.updates[task][variant].clone())
                .await
                .map(drop),
            Rpc::Get => client
                .get_security_configuration_task(GetSecurityConfigurationTaskRequest {
                    id: self.work.ids[task].clone(),
                })
                .await
                .map(drop),
        };
        result.map_err(|s| crate::metrics::code_name(s.code()).to_owned())
    }
}

/// How a measured phase drives its calls: the [`LoadArgs`] that shape it,
/// apart so other scenarios can measure phases too.
#[derive(Debug, Clone)]
struct Shape {
    concurrency: usize,
    warmup: u64,
    duration: Duration,
    calls: Option<std::num::NonZeroU64>,
    sample_every: Duration,
}

impl From<&LoadArgs> for Shape {
    fn from(args: &LoadArgs) -> Self {
        Self {
            concurrency: args.concurrency,
            warmup: args.warmup,
            duration: args.duration,
            calls: args.calls,
            sample_every: args.sample_every,
        }
    }
}

/// When a measured phase ends: at a time, or after a number of calls.
#[derive(Clone)]
enum End {
    At(Instant),
    After { started: Arc<AtomicU64>, calls: u64 },
}

impl End {
    fn new(args: &Shape, started: Instant) -> Self {
        match args.calls {
            Some(n) => Self::After {
                started: Arc::new(AtomicU64::new(0)),
                calls: n.get(),
            },
            None => Self::At(started + args.duration),
        }
    }

    /// Whether a worker makes another call (and, by calls, takes it).
    fn another(&self) -> bool {
        match self {
            Self::At(until) => Instant::now() < *until,
            Self::After { started, calls } => started.fetch_add(1, Ordering::Relaxed) < *calls,
        }
    }
}

/// Warms up, then runs `op` on `concurrency` workers for the duration (or the calls),
/// reading the measured process's /proc usage around it.
async fn measure<F, Fut>(
    name: &'static str,
    args: &Shape,
    emulator: &Proc,
    measured: Option<&Proc>,
    op: F,
) -> anyhow::Result<Phase>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    // Warm-up: same workers, not recorded.
    let warm = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for w in 0..args.concurrency {
        let (op, warm, limit) = (op.clone(), warm.clone(), args.warmup);
        handles.push(tokio::spawn(async move {
            while warm.fetch_add(1, Ordering::Relaxed) < limit {
                let _ = op(w, 0).await;
            }
        }));
    }
    for h in handles {
        h.await?;
    }

    let emulator_before = emulator.usage()?;
    let measured_before = measured.map(Proc::usage).transpose()?;
    let started = Instant::now();
    let end = End::new(args, started);
    let running = Arc::new(AtomicUsize::new(args.concurrency));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let mut handles = Vec::new();
    for w in 0..args.concurrency {
        let (op, end, running, all_done) =
            (op.clone(), end.clone(), running.clone(), all_done.clone());
        handles.push(tokio::spawn(async move {
            let mut hist =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            let mut i = 0u64;
            while end.another() {
                let t = Instant::now();
                let result = op(w, i).await;
                let micros = u64::try_from(t.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = hist.record(micros.min(60_000_000));
                *statuses
                    .entry(result.err().unwrap_or_else(|| "OK".into()))
                    .or_default() += 1;
                i += 1;
            }
            if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                all_done.notify_one();
            }
            (hist, statuses)
        }));
    }
    // Resident memory of the measured process while it is under load,
    // until the last worker is done.
    let mut samples = Vec::new();
    if let Some(gw) = measured {
        let mut tick = tokio::time::interval(args.sample_every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => samples.push(gw.usage()?.rss_kib),
                () = all_done.notified() => break,
            }
        }
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for h in handles {
        let (part, counts) = h.await?;
        hist.add(part)?;
        for (k, v) in counts {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    let cpu = |before: Usage, after: Usage| after.cpu.saturating_sub(before.cpu);
    Ok(Phase {
        name,
        elapsed,
        hist,
        statuses,
        emulator_cpu: cpu(emulator_before, emulator.usage()?),
        process_cpu: match (measured, measured_before) {
            (Some(gw), Some(before)) => Some(cpu(before, gw.usage()?)),
            _ => None,
        },
        rss_samples_kib: samples,
    })
}

/// The tenant and app (client id) the gateway's Graph token is for.
const TENANT: &str = "load";
const APP: &str = "load";

/// Starts the emulator with `extra` arguments; returns it, its Graph base
/// URL (`…/beta`) and its token authority.
fn start_emulator(bin: &Path, extra: &[&str]) -> anyhow::Result<(Proc, String, String)> {
    let mut args = vec![
        "emulator",
        "--addr",
        "127.0.0.1:0",
        "--log",
        "warn,graph_grpc_gateway=info",
    ];
    args.extend_from_slice(extra);
    let emulator = Proc::spawn(bin, &args, &[])?;
    let line = emulator.wait_for("Graph emulator serving", START_LIMIT)?;
    let graph_base = json_field(&line, "base_url")
        .context("emulator base_url")?
        .to_owned();
    let authority = graph_base.trim_end_matches("/beta").to_owned();
    Ok((emulator, graph_base, authority))
}

/// The gateway's environment against the emulator: a client-secret token
/// for [`TENANT`] and [`APP`].
fn gateway_env(graph_base: &str, authority: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_CLIENT_ID", APP.to_owned()),
        ("AZURE_CLIENT_SECRET", "load".to_owned()),
        ("AZURE_AUTHORITY_HOST", authority.to_owned()),
        ("GRAPH_BASE_URL", graph_base.to_owned()),
    ]
}

/// The gateway's environment for measuring what its calls cost against the
/// emulator, with `concurrency` calls in flight: [`gateway_env`], no caller
/// policy (said out loud), Intune's budget off (it would make every write
/// past the first hundred wait its turn: the `budget` scenario measures
/// that), every call in flight at once on one connection, and calls past the
/// Graph cap waiting their turn rather than refused, as a burst would.
fn measured_gateway_env(
    graph_base: &str,
    authority: &str,
    concurrency: usize,
) -> Vec<(&'static str, String)> {
    let mut env = gateway_env(graph_base, authority);
    env.extend([
        ("GATEWAY_ALLOW_UNAUTHENTICATED", "true".to_owned()),
        ("GRAPH_BUDGET", "off".to_owned()),
        (
            "GATEWAY_MAX_CONCURRENT_STREAMS",
            concurrency.max(128).to_string(),
        ),
        ("GRAPH_MAX_QUEUED", concurrency.max(1024).to_string()),
    ]);
    env
}

/// Starts a gateway (`serve` on loopback ports) and returns it with its
/// gRPC address.
fn start_gateway(bin: &Path, log: &str, env: &[(&str, String)]) -> anyhow::Result<(Proc, String)> {
    let gateway = Proc::spawn(
        bin,
        &[
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log",
            log,
        ],
        env,
    )?;
    let line = gateway.wait_for("graph-grpc-gateway serving", START_LIMIT)?;
    let grpc_addr = json_field(&line, "grpc_addr")
        .context("gateway grpc_addr")?
        .to_owned();
    Ok((gateway, grpc_addr))
}

/// A Graph token from the emulator for `tenant` (client id [`APP`]).
async fn token(http: &reqwest::Client, authority: &str, tenant: &str) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Token {
        access_token: String,
    }
    let t: Token = http
        .post(format!("{authority}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("client_secret", "load"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(t.access_token)
}

/// Creations in flight at once while seeding: an emulator with added
/// latency answers each only after it.
const SEED_IN_FLIGHT: usize = 16;

/// Creates `n` securityConfigurationTasks through Graph's create route,
/// up to [`SEED_IN_FLIGHT`] at once; answers their ids in order (`load task k` at k).
async fn seed(
    http: &reqwest::Client,
    graph_base: &str,
    token: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: String,
    }
    let url = format!("{graph_base}/deviceAppManagement/deviceAppManagementTasks");
    let create = |k: usize| {
        let request = http.post(&url).bearer_auth(token).json(&serde_json::json!({
            "@odata.type": translate::ODATA_TYPE,
            "displayName": format!("load task {k}"),
            "dueDateTime": "2026-12-31T00:00:00Z",
            "category": "advancedThreatProtection",
            "status": "pending",
        }));
        async move {
            let created: Created = request
                .send()
                .await?
                .error_for_status()
                .context("seeding a task")?
                .json()
                .await?;
            anyhow::Ok(created.id)
        }
    };
    stream::iter(0..n)
        .map(create)
        .buffered(SEED_IN_FLIGHT)
        .try_collect()
        .await
}

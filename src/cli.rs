//! The command line: flags with environment fallbacks.

use crate::graph::auth::Cloud;
use crate::secret::Secret;
use crate::settings;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "graph-grpc-gateway",
    version,
    about = "gRPC gateway for Intune securityConfigurationTasks on Microsoft Graph"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API (and the admin HTTP endpoints).
    Serve(Box<ServeArgs>),
    /// Run the built-in Graph emulator alone, for trying the gateway or
    /// testing against it.
    Emulator(EmulatorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable lines.
    Pretty,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "GATEWAY_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Log filter, in `tracing` env-filter syntax (e.g. `info,graph_grpc_gateway=debug`).
    #[arg(long, env = "GATEWAY_LOG", default_value = "info")]
    pub log: String,
}

/// Trace export over OTLP, by OpenTelemetry's own environment names
/// (see `telemetry::otel`), and what the gateway's spans record
/// (`GATEWAY_TRACE_URL_FULL`). Off unless an endpoint is set.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// OTLP collector endpoint, e.g. `http://otel-collector:4317` (gRPC)
    /// or `http://otel-collector:4318` (HTTP, `/v1/traces` is added).
    /// Unset: no traces are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport: `grpc` or `http/protobuf`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "grpc")]
    pub otlp_protocol: String,
    /// The `service.name` resource attribute.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "graph-grpc-gateway")]
    pub service_name: String,
    /// More resource attributes: `key=value,key=value`, values
    /// percent-encoded (the OpenTelemetry convention).
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES", default_value = "")]
    pub resource_attributes: String,
    /// `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
    /// `parentbased_always_off` or `parentbased_traceidratio`.
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER",
        default_value = "parentbased_always_on"
    )]
    pub traces_sampler: String,
    /// The ratio of a `*traceidratio` sampler, 0 to 1 (default 1).
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG")]
    pub traces_sampler_arg: Option<String>,
    /// The gateway's own: also record each Graph attempt's full URL
    /// (`url.full`: scheme, host, path and query, so task ids and a list's
    /// `$filter` values) on its span. Off: only `url.template`.
    #[arg(long, env = "GATEWAY_TRACE_URL_FULL")]
    pub trace_url_full: bool,
}

/// The async runtime the process runs on.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Runtime worker threads (default: the CPUs the process may use, which
    /// follows a container's CPU limit). Fewer threads than busy cores means
    /// fewer cross-thread wake-ups per call; see PERFORMANCE.md.
    #[arg(long, env = settings::GATEWAY_WORKER_THREADS.env)]
    pub worker_threads: Option<std::num::NonZeroUsize>,
}

impl RuntimeArgs {
    /// A multi-threaded runtime with the configured worker count.
    /// Refuses a worker count outside its range (see [`settings`]).
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        if let Some(n) = self.checked_workers()? {
            builder.worker_threads(n.get());
        }
        builder.build()
    }

    /// The configured worker count, if one is set and within its range.
    fn checked_workers(&self) -> std::io::Result<Option<std::num::NonZeroUsize>> {
        if let Some(n) = self.worker_threads {
            if let Some(problem) = settings::GATEWAY_WORKER_THREADS.problem(n.get()) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    problem,
                ));
            }
        }
        Ok(self.worker_threads)
    }
}

/// How `serve` spreads calls over its worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Threading {
    /// One single-threaded runtime per worker, each serving the connections
    /// it accepted on its own `SO_REUSEPORT` listener: a call is served on
    /// one thread from its first byte to its answer, with no cross-thread
    /// wake-ups. A connection's calls share one core.
    PerCore,
    /// One work-stealing runtime for everything: a connection's calls are
    /// spread over every worker, at the cost of wake-ups between them.
    Shared,
}

/// `serve`'s threads.
#[derive(Debug, Clone, Args)]
pub struct ServeRuntimeArgs {
    #[command(flatten)]
    pub threads: RuntimeArgs,
    /// `per-core` (the default) or `shared`; see PERFORMANCE.md.
    #[arg(
        long,
        env = "GATEWAY_THREADING",
        value_enum,
        default_value = "per-core"
    )]
    pub threading: Threading,
}

/// The runtime `serve` starts on, and the gRPC workers it runs besides it.
pub struct ServeRuntime {
    pub runtime: tokio::runtime::Runtime,
    /// Per-core workers other than the runtime's own thread (0 when shared).
    pub extra_workers: usize,
}

impl ServeRuntimeArgs {
    /// Per core: a single-threaded runtime for the main thread (admin,
    /// background work and the first gRPC worker), and the count of gRPC
    /// workers to start beside it. Shared: the multi-threaded runtime.
    pub fn build(&self) -> std::io::Result<ServeRuntime> {
        match self.threading {
            Threading::Shared => Ok(ServeRuntime {
                runtime: self.threads.build()?,
                extra_workers: 0,
            }),
            Threading::PerCore => {
                let workers = match self.threads.checked_workers()? {
                    Some(n) => n.get(),
                    None => std::thread::available_parallelism().map_or(1, |n| n.get()),
                };
                Ok(ServeRuntime {
                    runtime: tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?,
                    extra_workers: workers - 1,
                })
            }
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Serve against the built-in Graph emulator (in-process, in-memory, on
    /// an ephemeral loopback port) instead of Microsoft Graph. For trying the
    /// gateway; never for production.
    #[arg(long)]
    pub emulator: bool,

    /// gRPC listen address.
    #[arg(long, env = "GATEWAY_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,

    /// Admin HTTP listen address (/healthz, /readyz, /metrics).
    #[arg(long, env = "GATEWAY_ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: SocketAddr,

    /// Microsoft cloud: picks the Entra ID authority, the Graph base URL and
    /// the token scope together.
    #[arg(long, env = "GRAPH_CLOUD", value_enum, default_value = "global")]
    pub cloud: Cloud,

    /// Graph API base URL, overriding the cloud's. `http://` only for
    /// loopback hosts.
    #[arg(long, env = "GRAPH_BASE_URL")]
    pub graph_base_url: Option<String>,

    /// Microsoft Entra ID authority host, overriding the cloud's.
    #[arg(long, env = "AZURE_AUTHORITY_HOST")]
    pub authority_host: Option<String>,

    /// Entra ID tenant (directory) id.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,

    /// Application (client) id of the gateway's app registration.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,

    /// Client secret of the app registration. Read from the environment
    /// only: a flag would show in the process list.
    #[arg(skip = std::env::var("AZURE_CLIENT_SECRET").ok().map(Secret::new))]
    pub client_secret: Option<Secret>,

    /// File holding the client secret (e.g. a mounted Kubernetes secret),
    /// read for every token request so rotation needs no restart.
    #[arg(long, env = "AZURE_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,

    /// PEM file with the app's RSA private key (PKCS#8 or PKCS#1,
    /// unencrypted) and its certificate.
    #[arg(long, env = "AZURE_CLIENT_CERTIFICATE_PATH")]
    pub client_certificate_path: Option<PathBuf>,

    /// Federated token file (workload identity), read for every token request.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,

    /// Longest time for one call's Graph work, retries included (the
    /// caller's deadline, if shorter, wins).
    #[arg(long, env = settings::GRAPH_TIMEOUT.env, default_value = settings::GRAPH_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub graph_timeout: Duration,

    #[command(flatten)]
    pub resilience: ResilienceArgs,

    #[command(flatten)]
    pub inbound: InboundArgs,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = settings::GATEWAY_MAX_MESSAGE_BYTES.env, default_value = settings::GATEWAY_MAX_MESSAGE_BYTES.default)]
    pub max_message_bytes: usize,

    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish.
    #[arg(long, env = settings::GATEWAY_DRAIN_TIMEOUT.env, default_value = settings::GATEWAY_DRAIN_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub trace: TraceArgs,

    #[command(flatten)]
    pub runtime: ServeRuntimeArgs,

    /// On SIGTERM/SIGINT, how long the gateway reports NOT_SERVING (gRPC
    /// health, /readyz) while still accepting and serving new connections,
    /// before the drain begins: time for Kubernetes to stop routing to the
    /// pod (0s to 5m).
    #[arg(long, env = settings::GATEWAY_SHUTDOWN_DELAY.env, default_value = settings::GATEWAY_SHUTDOWN_DELAY.default, value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// How long the answer to a call with a `request_id` is remembered, so
    /// a retry with the same id gets it again instead of a second write
    /// (1s to 1d).
    #[arg(long, env = settings::GATEWAY_IDEMPOTENCY_WINDOW.env, default_value = settings::GATEWAY_IDEMPOTENCY_WINDOW.default, value_parser = humantime::parse_duration)]
    pub idempotency_window: Duration,

    /// Answers to calls with a `request_id` remembered at most; the oldest
    /// goes first (1 to 10,000,000; about 900 bytes each).
    #[arg(long, env = settings::GATEWAY_IDEMPOTENCY_MAX_ENTRIES.env, default_value = settings::GATEWAY_IDEMPOTENCY_MAX_ENTRIES.default)]
    pub idempotency_max_entries: usize,
}

/// Who may reach the gRPC port, and how.
#[derive(Debug, Clone, Args)]
pub struct InboundArgs {
    /// PEM certificate chain served on the gRPC port (TLS); re-read when it changes.
    #[arg(long, env = "GATEWAY_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key for the certificate; re-read with it.
    #[arg(long, env = "GATEWAY_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA bundle for client certificates (mutual TLS); re-read when it changes.
    #[arg(long, env = "GATEWAY_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// With a client CA: whether every client must present a certificate
    /// (`optional` lets callers identify with a bearer JWT instead).
    #[arg(
        long,
        env = "GATEWAY_TLS_CLIENT_AUTH",
        value_enum,
        default_value = "required"
    )]
    pub tls_client_auth: crate::security::tls::ClientAuth,

    /// How often the TLS files are checked for a rotated certificate.
    #[arg(long, env = settings::GATEWAY_TLS_RELOAD_INTERVAL.env, default_value = settings::GATEWAY_TLS_RELOAD_INTERVAL.default, value_parser = humantime::parse_duration)]
    pub tls_reload_interval: Duration,

    /// Serve gRPC without TLS: for a mesh or proxy that terminates TLS in
    /// front of the gateway. Must be chosen explicitly outside --emulator.
    #[arg(long, env = "GATEWAY_PLAINTEXT")]
    pub plaintext: bool,

    /// The caller policy (TOML): callers, their identities, allowed RPCs,
    /// rate limits, the JWT issuer. See README "Security".
    #[arg(long, env = "GATEWAY_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,

    /// Serve without a caller policy: every caller may call every RPC. Must
    /// be chosen explicitly outside --emulator.
    #[arg(long, env = "GATEWAY_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// Open gRPC connections at most; past it, new ones wait to be accepted.
    #[arg(long, env = settings::GATEWAY_MAX_CONNECTIONS.env, default_value = settings::GATEWAY_MAX_CONNECTIONS.default)]
    pub max_connections: usize,

    /// Concurrent calls (HTTP/2 streams) per gRPC connection.
    #[arg(long, env = settings::GATEWAY_MAX_CONCURRENT_STREAMS.env, default_value = settings::GATEWAY_MAX_CONCURRENT_STREAMS.default)]
    pub max_concurrent_streams: u32,

    /// From accept, how long a connection has to finish its TLS handshake,
    /// send the HTTP/2 preface and start its first call; one that has not is
    /// closed and its slot freed (100ms to 5m).
    #[arg(long, env = settings::GATEWAY_HANDSHAKE_TIMEOUT.env, default_value = settings::GATEWAY_HANDSHAKE_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,

    /// Interval of the HTTP/2 PINGs sent on every gRPC connection (1s to 2h).
    #[arg(long, env = settings::GATEWAY_KEEPALIVE_INTERVAL.env, default_value = settings::GATEWAY_KEEPALIVE_INTERVAL.default, value_parser = humantime::parse_duration)]
    pub keepalive_interval: Duration,

    /// How long a PING may go unanswered before the connection is closed (1s to 10m).
    #[arg(long, env = settings::GATEWAY_KEEPALIVE_TIMEOUT.env, default_value = settings::GATEWAY_KEEPALIVE_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub keepalive_timeout: Duration,

    /// A connection with no call open for this long is closed (1s to 1d).
    #[arg(long, env = settings::GATEWAY_IDLE_TIMEOUT.env, default_value = settings::GATEWAY_IDLE_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,

    /// A connection this old is sent GOAWAY, so clients reconnect and
    /// spread over new pods (1s to 1d).
    #[arg(long, env = settings::GATEWAY_MAX_CONNECTION_AGE.env, default_value = settings::GATEWAY_MAX_CONNECTION_AGE.default, value_parser = humantime::parse_duration)]
    pub max_connection_age: Duration,

    /// After the GOAWAY of the maximum age, how long its calls may still run
    /// before the connection is closed (1s to 1h).
    #[arg(long, env = settings::GATEWAY_MAX_CONNECTION_AGE_GRACE.env, default_value = settings::GATEWAY_MAX_CONNECTION_AGE_GRACE.default, value_parser = humantime::parse_duration)]
    pub max_connection_age_grace: Duration,

    /// Calls open at once across all gRPC connections; past it a call is
    /// refused at once with RESOURCE_EXHAUSTED (1 to 1,000,000).
    #[arg(long, env = settings::GATEWAY_MAX_CONCURRENT_CALLS.env, default_value = settings::GATEWAY_MAX_CONCURRENT_CALLS.default)]
    pub max_concurrent_calls: usize,
}

/// How the gateway treats a struggling Graph.
#[derive(Debug, Clone, Args)]
pub struct ResilienceArgs {
    /// Retries of a throttled (429), unavailable (503/504) or unreachable
    /// Graph request, for idempotent methods; at most 10.
    #[arg(long, env = settings::GRAPH_MAX_RETRIES.env, default_value = settings::GRAPH_MAX_RETRIES.default)]
    pub graph_max_retries: u32,

    /// First retry delay when Graph sends no Retry-After; doubles per retry, plus up to 1 s jitter.
    #[arg(long, env = settings::GRAPH_RETRY_BASE_DELAY.env, default_value = settings::GRAPH_RETRY_BASE_DELAY.default, value_parser = humantime::parse_duration)]
    pub graph_retry_base_delay: Duration,

    /// Retries allowed as a percentage of recent calls, so an outage is not multiplied.
    #[arg(long, env = settings::GRAPH_RETRY_BUDGET_PERCENT.env, default_value = settings::GRAPH_RETRY_BUDGET_PERCENT.default)]
    pub graph_retry_budget_percent: f32,

    /// Longest wait for one attempt.
    #[arg(long, env = settings::GRAPH_ATTEMPT_TIMEOUT.env, default_value = settings::GRAPH_ATTEMPT_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub graph_attempt_timeout: Duration,

    /// Graph calls in flight at once; more wait for a turn (GRAPH_MAX_QUEUED).
    #[arg(long, env = settings::GRAPH_MAX_IN_FLIGHT.env, default_value = settings::GRAPH_MAX_IN_FLIGHT.default)]
    pub graph_max_in_flight: usize,

    /// Calls that may wait for a Graph call slot; past it a call is refused
    /// at once with RESOURCE_EXHAUSTED (0: never wait).
    #[arg(long, env = settings::GRAPH_MAX_QUEUED.env, default_value = settings::GRAPH_MAX_QUEUED.default)]
    pub graph_max_queued: usize,

    /// Longest delay Graph may ask for with Retry-After that is kept (the
    /// shared throttle pause, a retry's wait, callers' RetryInfo); longer
    /// ones are cut to it. 1s to 1h.
    #[arg(long, env = settings::GRAPH_MAX_RETRY_AFTER.env, default_value = settings::GRAPH_MAX_RETRY_AFTER.default, value_parser = humantime::parse_duration)]
    pub graph_max_retry_after: Duration,

    /// Largest Graph answer body read, in bytes after decompression; a
    /// larger one is refused with INTERNAL (GRAPH_ANSWER_TOO_LARGE). 1024 to 1073741824.
    #[arg(long, env = settings::GRAPH_MAX_ANSWER_BYTES.env, default_value = settings::GRAPH_MAX_ANSWER_BYTES.default)]
    pub graph_max_answer_bytes: u64,

    /// Largest answer body read from Entra ID's token endpoint, in bytes
    /// after decompression; a larger one is a failed token request. 1024 to 16777216.
    #[arg(long, env = settings::AZURE_TOKEN_MAX_ANSWER_BYTES.env, default_value = settings::AZURE_TOKEN_MAX_ANSWER_BYTES.default)]
    pub azure_token_max_answer_bytes: u64,

    /// Pace Graph requests inside Intune's budget (`on`), or send them as
    /// they come and learn the limit from 429s (`off`). Default: on against
    /// Graph, off against the built-in emulator (which meters nothing).
    #[arg(long, env = "GRAPH_BUDGET", value_enum)]
    pub graph_budget: Option<Toggle>,

    /// Writes (POST, PATCH, DELETE) per window this app may send Graph:
    /// Intune's per-app limit. 1/100ms to 1000000/1h.
    #[arg(long, env = settings::GRAPH_WRITE_BUDGET.env, default_value = settings::GRAPH_WRITE_BUDGET.default, value_parser = parse_rate)]
    pub graph_write_budget: crate::budget::Rate,

    /// Requests of any method per window this app may send Graph: Intune's
    /// per-app limit. 1/100ms to 1000000/1h.
    #[arg(long, env = settings::GRAPH_REQUEST_BUDGET.env, default_value = settings::GRAPH_REQUEST_BUDGET.default, value_parser = parse_rate)]
    pub graph_request_budget: crate::budget::Rate,

    /// Share the budget and the `request_id` memory with every replica
    /// through Redis (`redis://` or `rediss://`); without it each replica
    /// paces and remembers alone. Its value is never printed or logged.
    #[arg(long, env = "GRAPH_BUDGET_REDIS_URL", hide_env_values = true)]
    pub graph_budget_redis_url: Option<String>,

    /// A file holding the Redis password (overrides one in the URL).
    #[arg(long, env = "GRAPH_BUDGET_REDIS_PASSWORD_FILE")]
    pub graph_budget_redis_password_file: Option<std::path::PathBuf>,

    /// Longest wait for Redis per budget token or `request_id` look-up; past
    /// it the replica uses its local share and its own memory. 1ms to 10s.
    #[arg(long, env = settings::GRAPH_BUDGET_REDIS_TIMEOUT.env, default_value = settings::GRAPH_BUDGET_REDIS_TIMEOUT.default, value_parser = humantime::parse_duration)]
    pub graph_budget_redis_timeout: Duration,

    /// Percent of each budget this replica spends alone while Redis does
    /// not answer. Default: 100 / GATEWAY_REPLICAS. 0.1 to 100.
    #[arg(long, env = settings::GRAPH_BUDGET_LOCAL_SHARE.env)]
    pub graph_budget_local_share: Option<f64>,

    /// How many replicas share the app's budget (the chart sets it from the
    /// replica count). 1 to 1000.
    #[arg(long, env = settings::GATEWAY_REPLICAS.env, default_value = settings::GATEWAY_REPLICAS.default)]
    pub gateway_replicas: u64,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

fn parse_rate(text: &str) -> Result<crate::budget::Rate, String> {
    crate::budget::Rate::parse(text)
        .ok_or_else(|| format!("{text:?} is not a budget such as 100/20s"))
}

#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Listen address.
    #[arg(long, env = "EMULATOR_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,

    /// Require a bearer token from the emulator's own token endpoint on Graph routes.
    #[arg(long, env = "EMULATOR_REQUIRE_AUTH")]
    pub require_auth: bool,

    /// Lifetime of the access tokens it issues.
    #[arg(long, env = settings::EMULATOR_TOKEN_LIFETIME.env, default_value = settings::EMULATOR_TOKEN_LIFETIME.default, value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,

    /// Share of Graph requests failed at random with 429, 500, 502, 503 or 504 (0 to 100).
    #[arg(long, env = settings::EMULATOR_CHAOS_PERCENT.env, default_value = settings::EMULATOR_CHAOS_PERCENT.default)]
    pub chaos_percent: f64,

    /// Seed of the random faults: the same seed and request order give the same faults.
    #[arg(long, env = "EMULATOR_CHAOS_SEED", default_value_t = 0)]
    pub chaos_seed: u64,

    /// `Retry-After` sent with the random 429 and 503 answers (seconds or an HTTP date).
    #[arg(long, env = "EMULATOR_CHAOS_RETRY_AFTER")]
    pub chaos_retry_after: Option<String>,

    /// Seed of the order a `$batch` answer lists its items in: the same seed
    /// and the same batches give the same orders.
    #[arg(long, env = "EMULATOR_BATCH_ORDER_SEED", default_value_t = 0)]
    pub batch_order_seed: u64,

    /// Latency added to every Graph answer (each item of a `$batch` too; its
    /// items run in parallel).
    #[arg(long, env = settings::EMULATOR_LATENCY.env, default_value = settings::EMULATOR_LATENCY.default, value_parser = humantime::parse_duration)]
    pub latency: Duration,

    /// Enforce Intune's service limits as Graph does: per app (token client id)
    /// per tenant 100 writes and 1000 requests, per tenant 200 writes and 2000
    /// requests, per 20 s; past them, 429 with a fractional Retry-After.
    #[arg(long, env = "EMULATOR_INTUNE_LIMITS")]
    pub intune_limits: bool,

    /// Divides the Intune limits' 20 s window (10: 100 writes per app per 2 s),
    /// with --intune-limits. 1 to 1000.
    #[arg(long, env = settings::EMULATOR_INTUNE_LIMITS_SCALE.env, default_value = settings::EMULATOR_INTUNE_LIMITS_SCALE.default)]
    pub intune_limits_scale: u64,

    /// Keep a log of Graph requests for `GET /_emulator/requests?log=true`
    /// (at most 8 MiB, oldest dropped first, `Authorization` redacted). Off by
    /// default: each request then costs the same however long it runs.
    #[arg(long, env = "EMULATOR_REQUEST_LOG")]
    pub request_log: bool,

    /// Per-tenant request budget, as REQUESTS/PERIOD (e.g. `100/10s`); past it, 429 with Retry-After.
    #[arg(long, env = "EMULATOR_TENANT_BUDGET", value_parser = parse_budget)]
    pub tenant_budget: Option<(u32, Duration)>,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// `100/10s` -> (100, 10 s).
fn parse_budget(value: &str) -> Result<(u32, Duration), String> {
    let (requests, per) = value
        .split_once('/')
        .ok_or_else(|| format!("expected REQUESTS/PERIOD such as 100/10s, got {value:?}"))?;
    let requests = requests
        .trim()
        .parse()
        .map_err(|e| format!("requests in {value:?}: {e}"))?;
    let per =
        humantime::parse_duration(per.trim()).map_err(|e| format!("period in {value:?}: {e}"))?;
    Ok((requests, per))
}

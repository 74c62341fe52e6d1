//! The command line: flags with environment fallbacks.

use crate::graph::auth::Cloud;
use crate::secret::Secret;
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

/// The async runtime the process runs on.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Runtime worker threads (default: the CPUs the process may use, which
    /// follows a container's CPU limit). Fewer threads than busy cores means
    /// fewer cross-thread wake-ups per call; see PERFORMANCE.md.
    #[arg(long, env = "GATEWAY_WORKER_THREADS")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
}

impl RuntimeArgs {
    /// A multi-threaded runtime with the configured worker count.
    pub fn build(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        if let Some(n) = self.worker_threads {
            builder.worker_threads(n.get());
        }
        builder.build()
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
    #[arg(long, env = "GRAPH_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub graph_timeout: Duration,

    #[command(flatten)]
    pub resilience: ResilienceArgs,

    #[command(flatten)]
    pub inbound: InboundArgs,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish.
    #[arg(long, env = "GATEWAY_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
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
    #[arg(long, env = "GATEWAY_TLS_RELOAD_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
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
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Concurrent calls (HTTP/2 streams) per gRPC connection.
    #[arg(long, env = "GATEWAY_MAX_CONCURRENT_STREAMS", default_value_t = 128)]
    pub max_concurrent_streams: u32,
}

/// How the gateway treats a struggling Graph.
#[derive(Debug, Clone, Args)]
pub struct ResilienceArgs {
    /// Retries of a throttled (429), unavailable (503/504) or unreachable
    /// Graph request, for idempotent methods; at most 10.
    #[arg(long, env = "GRAPH_MAX_RETRIES", default_value_t = 3)]
    pub graph_max_retries: u32,

    /// First retry delay when Graph sends no Retry-After; doubles per retry, plus up to 1 s jitter.
    #[arg(long, env = "GRAPH_RETRY_BASE_DELAY", default_value = "3s", value_parser = humantime::parse_duration)]
    pub graph_retry_base_delay: Duration,

    /// Retries allowed as a percentage of recent calls, so an outage is not multiplied.
    #[arg(long, env = "GRAPH_RETRY_BUDGET_PERCENT", default_value_t = 20.0)]
    pub graph_retry_budget_percent: f32,

    /// Longest wait for one attempt.
    #[arg(long, env = "GRAPH_ATTEMPT_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub graph_attempt_timeout: Duration,

    /// Graph calls in flight at once; more wait for a turn (GRAPH_MAX_QUEUED).
    #[arg(long, env = "GRAPH_MAX_IN_FLIGHT", default_value_t = 256)]
    pub graph_max_in_flight: usize,

    /// Calls that may wait for a Graph call slot; past it a call is refused
    /// at once with RESOURCE_EXHAUSTED (0: never wait).
    #[arg(long, env = "GRAPH_MAX_QUEUED", default_value_t = 1024)]
    pub graph_max_queued: usize,
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
    #[arg(long, env = "EMULATOR_TOKEN_LIFETIME", default_value = "3599s", value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,

    /// Share of Graph requests failed at random with 429, 500, 502, 503 or 504 (0 to 100).
    #[arg(long, env = "EMULATOR_CHAOS_PERCENT", default_value_t = 0.0)]
    pub chaos_percent: f64,

    /// Seed of the random faults: the same seed and request order give the same faults.
    #[arg(long, env = "EMULATOR_CHAOS_SEED", default_value_t = 0)]
    pub chaos_seed: u64,

    /// `Retry-After` sent with the random 429 and 503 answers (seconds or an HTTP date).
    #[arg(long, env = "EMULATOR_CHAOS_RETRY_AFTER")]
    pub chaos_retry_after: Option<String>,

    /// Latency added to every Graph answer.
    #[arg(long, env = "EMULATOR_LATENCY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,

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

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
// Parsed once at start: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve the gRPC API (and the admin HTTP endpoints).
    Serve(ServeArgs),
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

    /// Longest wait for one Graph request (the caller's deadline, if shorter, wins).
    #[arg(long, env = "GRAPH_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub graph_timeout: Duration,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "GATEWAY_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish.
    #[arg(long, env = "GATEWAY_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EmulatorArgs {
    /// Listen address.
    #[arg(long, env = "EMULATOR_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub log: LogArgs,
}

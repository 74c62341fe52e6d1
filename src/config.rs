//! The gateway's configuration: one typed struct, validated once at start.
//!
//! Settings follow the Azure SDK environment names (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`,
//! `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST`), plus
//! `AZURE_CLIENT_SECRET_FILE` and `GRAPH_CLOUD`. Running against Graph
//! without credentials is refused at start, naming what is missing: the
//! gateway never falls back to the emulator on its own.

use crate::cli::{EmulatorArgs, InboundArgs, LogArgs, ResilienceArgs, ServeArgs};
pub use crate::graph::auth::{Cloud, Credential, CredentialKind};
use crate::graph::{Admission, RetrySettings, StackSettings};
use crate::listener::Lifetimes;
use crate::security::policy::Policy;
use crate::security::tls::TlsSettings;
use crate::settings;
use reqwest::Url;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The variables that select a credential kind; exactly one must be set.
pub const CREDENTIAL_VARIABLES: [&str; 4] = [
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET_FILE",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
];

/// The validated configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub graph: GraphTarget,
    /// One call's Graph budget, retries included.
    pub graph_timeout: Duration,
    /// Retries, attempt timeout, in-flight cap.
    pub graph_stack: StackSettings,
    pub max_message_bytes: usize,
    pub drain_timeout: Duration,
    pub inbound: Inbound,
    pub log: LogArgs,
    /// On SIGTERM/SIGINT, how long NOT_SERVING is reported while new
    /// connections are still served, before the drain.
    pub shutdown_delay: Duration,
    /// How long, and how many, answers to calls with a `request_id` are kept.
    pub idempotency: Retention,
}

/// What the `request_id` store keeps (see [`crate::idempotency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long an answer is remembered, from when it was given.
    pub window: Duration,
    /// Answers held at most; the oldest goes first.
    pub max_entries: usize,
}

impl Default for Retention {
    /// The defaults of `GATEWAY_IDEMPOTENCY_WINDOW` and
    /// `GATEWAY_IDEMPOTENCY_MAX_ENTRIES`.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10 * 60),
            max_entries: 100_000,
        }
    }
}

/// How callers reach the gRPC port and who among them may call what.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub transport: Transport,
    pub callers: Callers,
    pub max_connections: usize,
    pub max_concurrent_streams: u32,
    /// First-call deadline, keepalive, idle timeout, maximum age.
    pub lifetimes: Lifetimes,
    /// Calls open at once across all connections.
    pub max_concurrent_calls: usize,
}

impl Inbound {
    /// Plaintext, anyone may call: the emulator demo, and tests.
    pub fn open() -> Self {
        Self {
            transport: Transport::Plaintext,
            callers: Callers::Anyone,
            max_connections: 1024,
            max_concurrent_streams: 128,
            lifetimes: Lifetimes::default(),
            max_concurrent_calls: 4096,
        }
    }
}

/// The gRPC port's transport.
#[derive(Debug, Clone)]
pub enum Transport {
    /// No TLS: a mesh or proxy in front terminates it.
    Plaintext,
    Tls(TlsSettings),
}

/// Who may call.
#[derive(Debug, Clone)]
pub enum Callers {
    /// Every caller, every RPC (no policy).
    Anyone,
    /// The callers the policy names, for the RPCs it allows them.
    Policy(Arc<Policy>),
}

/// Which Graph the gateway talks to.
#[derive(Debug, Clone)]
pub enum GraphTarget {
    /// The built-in emulator, started in-process on a loopback port.
    Emulator,
    /// A real Graph endpoint, with credentials.
    Graph {
        base_url: Url,
        credential: Box<Credential>,
    },
}

/// Why the configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Validates the command line and environment.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        settings::GRAPH_TIMEOUT.check(args.graph_timeout, &mut problems);
        settings::GATEWAY_MAX_MESSAGE_BYTES.check(args.max_message_bytes, &mut problems);
        settings::GATEWAY_DRAIN_TIMEOUT.check(args.drain_timeout, &mut problems);
        let mut graph_stack = stack_settings(&args.resilience, &mut problems);
        graph_stack.trace_url_full = args.trace.trace_url_full;
        if args.emulator && args.resilience.graph_budget.is_none() {
            graph_stack.budget = None;
        }
        let inbound = inbound(&args.inbound, args.emulator, &mut problems);
        settings::GATEWAY_SHUTDOWN_DELAY.check(args.shutdown_delay, &mut problems);
        settings::GATEWAY_IDEMPOTENCY_WINDOW.check(args.idempotency_window, &mut problems);
        settings::GATEWAY_IDEMPOTENCY_MAX_ENTRIES
            .check(args.idempotency_max_entries, &mut problems);
        let graph = if args.emulator {
            // Read with the budget off too: the request_id memory shares it.
            let key = crate::budget::redis::BudgetKey {
                tenant: "emulator".to_owned(),
                app: "emulator".to_owned(),
            };
            graph_stack.budget_store = budget_store(&args.resilience, key, &mut problems);
            if args.graph_base_url.is_some() {
                problems.push(
                    "--emulator runs its own Graph; unset GRAPH_BASE_URL (or --graph-base-url) to use it".to_owned(),
                );
            }
            Some(GraphTarget::Emulator)
        } else {
            let target = graph_target(&args, &mut problems);
            if let Some(GraphTarget::Graph { credential, .. }) = &target {
                let key = crate::budget::redis::BudgetKey {
                    tenant: credential.tenant_id.clone(),
                    app: credential.client_id.clone(),
                };
                graph_stack.budget_store = budget_store(&args.resilience, key, &mut problems);
            }
            target
        };
        match (graph, inbound) {
            (Some(graph), Some(inbound)) if problems.is_empty() => Ok(Config {
                grpc_addr: args.grpc_addr,
                admin_addr: args.admin_addr,
                graph,
                graph_timeout: args.graph_timeout,
                graph_stack,
                max_message_bytes: args.max_message_bytes,
                drain_timeout: args.drain_timeout,
                inbound,
                log: args.log,
                shutdown_delay: args.shutdown_delay,
                idempotency: Retention {
                    window: args.idempotency_window,
                    max_entries: args.idempotency_max_entries,
                },
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// Checks the `emulator` command's settings, as [`Config::from_args`] does `serve`'s.
pub fn check_emulator(args: &EmulatorArgs) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    settings::EMULATOR_TOKEN_LIFETIME.check(args.token_lifetime, &mut problems);
    settings::EMULATOR_CHAOS_PERCENT.check(args.chaos_percent, &mut problems);
    settings::EMULATOR_LATENCY.check(args.latency, &mut problems);
    settings::EMULATOR_INTUNE_LIMITS_SCALE.check(args.intune_limits_scale, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems))
    }
}

/// TLS or an explicit plaintext, a policy or an explicit open door: outside
/// the emulator demo, neither is ever assumed.
fn inbound(args: &InboundArgs, emulator: bool, problems: &mut Vec<String>) -> Option<Inbound> {
    let before = problems.len();
    let transport = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert_file), Some(key_file)) => {
            if args.plaintext {
                problems.push(
                    "GATEWAY_PLAINTEXT and GATEWAY_TLS_CERT_FILE contradict each other: choose one"
                        .to_owned(),
                );
            }
            Transport::Tls(TlsSettings {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
                client_ca_file: args.tls_client_ca_file.clone(),
                client_auth: args.tls_client_auth,
                reload_interval: args.tls_reload_interval,
            })
        }
        (None, None) => {
            if args.tls_client_ca_file.is_some() {
                problems.push("GATEWAY_TLS_CLIENT_CA_FILE needs GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE (mutual TLS is TLS)".to_owned());
            }
            if !args.plaintext && !emulator {
                problems.push("the gRPC port needs TLS (GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE) or an explicit GATEWAY_PLAINTEXT=true (when a mesh or proxy terminates TLS)".to_owned());
            }
            Transport::Plaintext
        }
        _ => {
            problems.push(
                "GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE go together: set both".to_owned(),
            );
            Transport::Plaintext
        }
    };
    let callers = match &args.policy_file {
        Some(path) => {
            if args.allow_unauthenticated {
                problems.push("GATEWAY_POLICY_FILE and GATEWAY_ALLOW_UNAUTHENTICATED contradict each other: choose one".to_owned());
            }
            match Policy::load(path) {
                Ok(policy) => {
                    let mutual_tls =
                        matches!(&transport, Transport::Tls(t) if t.client_ca_file.is_some());
                    if policy.names_certificates() && !mutual_tls {
                        problems.push("the policy names callers by certificate (cn:, dns:, uri:, email:) but no GATEWAY_TLS_CLIENT_CA_FILE is set, so no certificate could vouch for them".to_owned());
                    }
                    Callers::Policy(Arc::new(policy))
                }
                Err(e) => {
                    problems.push(e.to_string());
                    Callers::Anyone
                }
            }
        }
        None => {
            if !args.allow_unauthenticated && !emulator {
                problems.push("no caller policy: set GATEWAY_POLICY_FILE, or GATEWAY_ALLOW_UNAUTHENTICATED=true to let every caller call every RPC".to_owned());
            }
            Callers::Anyone
        }
    };
    settings::GATEWAY_TLS_RELOAD_INTERVAL.check(args.tls_reload_interval, problems);
    settings::GATEWAY_MAX_CONNECTIONS.check(args.max_connections, problems);
    settings::GATEWAY_MAX_CONCURRENT_STREAMS.check(args.max_concurrent_streams, problems);
    let lifetimes = lifetimes(args, problems);
    settings::GATEWAY_MAX_CONCURRENT_CALLS.check(args.max_concurrent_calls, problems);
    (problems.len() == before).then_some(Inbound {
        transport,
        callers,
        max_connections: args.max_connections,
        max_concurrent_streams: args.max_concurrent_streams,
        lifetimes,
        max_concurrent_calls: args.max_concurrent_calls,
    })
}

/// The gRPC connections' deadlines, each within its documented range.
fn lifetimes(args: &InboundArgs, problems: &mut Vec<String>) -> Lifetimes {
    settings::GATEWAY_HANDSHAKE_TIMEOUT.check(args.handshake_timeout, problems);
    settings::GATEWAY_KEEPALIVE_INTERVAL.check(args.keepalive_interval, problems);
    settings::GATEWAY_KEEPALIVE_TIMEOUT.check(args.keepalive_timeout, problems);
    settings::GATEWAY_IDLE_TIMEOUT.check(args.idle_timeout, problems);
    settings::GATEWAY_MAX_CONNECTION_AGE.check(args.max_connection_age, problems);
    settings::GATEWAY_MAX_CONNECTION_AGE_GRACE.check(args.max_connection_age_grace, problems);
    Lifetimes {
        handshake_timeout: args.handshake_timeout,
        keepalive_interval: args.keepalive_interval,
        keepalive_timeout: args.keepalive_timeout,
        idle_timeout: args.idle_timeout,
        max_age: args.max_connection_age,
        max_age_grace: args.max_connection_age_grace,
    }
}

fn stack_settings(args: &ResilienceArgs, problems: &mut Vec<String>) -> StackSettings {
    settings::GRAPH_MAX_RETRIES.check(args.graph_max_retries, problems);
    settings::GRAPH_RETRY_BASE_DELAY.check(args.graph_retry_base_delay, problems);
    settings::GRAPH_RETRY_BUDGET_PERCENT.check(args.graph_retry_budget_percent, problems);
    settings::GRAPH_ATTEMPT_TIMEOUT.check(args.graph_attempt_timeout, problems);
    settings::GRAPH_MAX_IN_FLIGHT.check(args.graph_max_in_flight, problems);
    settings::GRAPH_MAX_QUEUED.check(args.graph_max_queued, problems);
    settings::GRAPH_MAX_RETRY_AFTER.check(args.graph_max_retry_after, problems);
    settings::GRAPH_MAX_ANSWER_BYTES.check(args.graph_max_answer_bytes, problems);
    settings::AZURE_TOKEN_MAX_ANSWER_BYTES.check(args.azure_token_max_answer_bytes, problems);
    StackSettings {
        retry: RetrySettings {
            max_retries: args.graph_max_retries,
            base_delay: args.graph_retry_base_delay,
            budget_percent: args.graph_retry_budget_percent,
            ..RetrySettings::default()
        },
        attempt_timeout: args.graph_attempt_timeout,
        admission: Admission {
            max_in_flight: args.graph_max_in_flight,
            max_queued: args.graph_max_queued,
        },
        max_retry_after: args.graph_max_retry_after,
        max_answer_bytes: args.graph_max_answer_bytes,
        token_max_answer_bytes: args.azure_token_max_answer_bytes,
        budget: budget_settings(args, problems),
        budget_store: None,
        trace_url_full: false,
    }
}

/// Redis for the budget (when it is on) and the `request_id` memory, if
/// configured: the password read from its file now (a missing file is a start-up problem, named without its content).
fn budget_store(
    args: &ResilienceArgs,
    key: crate::budget::redis::BudgetKey,
    problems: &mut Vec<String>,
) -> Option<crate::graph::stack::SharedBudget> {
    settings::GRAPH_BUDGET_REDIS_TIMEOUT.check(args.graph_budget_redis_timeout, problems);
    let url = args
        .graph_budget_redis_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())?;
    let password = match &args.graph_budget_redis_password_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) => {
                problems.push(format!(
                    "GRAPH_BUDGET_REDIS_PASSWORD_FILE {}: {}",
                    path.display(),
                    e.kind()
                ));
                None
            }
        },
        None => None,
    };
    let redis = crate::budget::redis::RedisSettings {
        url: url.to_owned(),
        password,
        timeout: args.graph_budget_redis_timeout,
    };
    if let Err(why) = redis.check() {
        problems.push(format!("GRAPH_BUDGET_REDIS_URL: {why}"));
    }
    Some(crate::graph::stack::SharedBudget { redis, key })
}

/// The Graph budget, unless turned off. Against the built-in emulator it
/// is off unless turned on: the emulator meters nothing to pace against.
fn budget_settings(
    args: &ResilienceArgs,
    problems: &mut Vec<String>,
) -> Option<crate::budget::BudgetSettings> {
    settings::GRAPH_WRITE_BUDGET.check(args.graph_write_budget, problems);
    settings::GRAPH_REQUEST_BUDGET.check(args.graph_request_budget, problems);
    settings::GATEWAY_REPLICAS.check(args.gateway_replicas, problems);
    if let Some(share) = args.graph_budget_local_share {
        settings::GRAPH_BUDGET_LOCAL_SHARE.check(share, problems);
    }
    #[allow(clippy::cast_precision_loss)] // at most 1000
    let local_share_percent = args
        .graph_budget_local_share
        .unwrap_or(100.0 / args.gateway_replicas.max(1) as f64);
    (args.graph_budget != Some(crate::cli::Toggle::Off)).then_some(crate::budget::BudgetSettings {
        requests: args.graph_request_budget,
        writes: args.graph_write_budget,
        local_share_percent,
    })
}

fn graph_target(args: &ServeArgs, problems: &mut Vec<String>) -> Option<GraphTarget> {
    let present = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let tenant_id = present(&args.tenant_id);
    let client_id = present(&args.client_id);
    let path = |p: &Option<std::path::PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
    let kinds: Vec<CredentialKind> = [
        args.client_secret
            .clone()
            .filter(|s| !s.is_empty())
            .map(CredentialKind::ClientSecret),
        path(&args.client_secret_file).map(CredentialKind::ClientSecretFile),
        path(&args.client_certificate_path).map(CredentialKind::Certificate),
        path(&args.federated_token_file).map(CredentialKind::FederatedTokenFile),
    ]
    .into_iter()
    .flatten()
    .collect();
    let one_of = format!("one of {}", CREDENTIAL_VARIABLES.join(", "));
    let missing: Vec<&str> = [
        ("AZURE_TENANT_ID", tenant_id.is_none()),
        ("AZURE_CLIENT_ID", client_id.is_none()),
        (one_of.as_str(), kinds.is_empty()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "Graph credentials missing: {} (or run `serve --emulator` to try the gateway against the built-in Graph emulator)",
            missing.join("; ")
        ));
    }
    if kinds.len() > 1 {
        let set: Vec<&str> = kinds.iter().map(CredentialKind::variable).collect();
        problems.push(format!(
            "more than one credential is set ({}): set exactly one of {}",
            set.join(", "),
            CREDENTIAL_VARIABLES.join(", ")
        ));
    }
    if let Some(t) = &tenant_id {
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            problems.push("AZURE_TENANT_ID must be a tenant GUID or domain name".to_owned());
        }
    }
    let cloud = args.cloud;
    let base_url = endpoint(
        "GRAPH_BASE_URL",
        args.graph_base_url
            .as_deref()
            .unwrap_or(&cloud.graph_base_url()),
        problems,
    );
    let authority_host = endpoint(
        "AZURE_AUTHORITY_HOST",
        args.authority_host
            .as_deref()
            .unwrap_or(cloud.authority_host()),
        problems,
    );
    // Overrides may point anywhere (an emulator, a proxy), but not at
    // another cloud's Graph or authority: its tokens would not work here.
    if let Some(other) = base_url
        .as_ref()
        .and_then(Url::host_str)
        .and_then(Cloud::of_graph_host)
        .filter(|other| *other != cloud)
    {
        problems.push(format!(
            "GRAPH_BASE_URL is the {other} cloud's Graph but GRAPH_CLOUD is {cloud}: set GRAPH_CLOUD={other}"
        ));
    }
    if let Some(host) = authority_host.as_ref().and_then(Url::host_str) {
        let clouds = Cloud::of_authority_host(host);
        if !clouds.is_empty() && !clouds.contains(&cloud) {
            let names: Vec<&str> = clouds.iter().map(|c| c.name()).collect();
            problems.push(format!(
                "AZURE_AUTHORITY_HOST {host} is the authority of GRAPH_CLOUD {} but GRAPH_CLOUD is {cloud}",
                names.join(" or ")
            ));
        }
    }
    let kind = match <[CredentialKind; 1]>::try_from(kinds) {
        Ok([kind]) => Some(kind),
        Err(_) => None,
    };
    // Fail at start, not at the first call: read the file now.
    if let Some(kind) = &kind {
        if let Err(why) = kind.check() {
            problems.push(format!("{} {why}", kind.variable()));
        }
    }
    let credential = Credential {
        authority_host: authority_host?,
        tenant_id: tenant_id?,
        client_id: client_id?,
        scope: cloud.scope(),
        kind: kind?,
    };
    Some(GraphTarget::Graph {
        credential: Box::new(credential),
        base_url: base_url?,
    })
}

/// An endpoint URL: `https://`, or `http://` for a loopback host only.
fn endpoint(name: &str, value: &str, problems: &mut Vec<String>) -> Option<Url> {
    let url = match Url::parse(value) {
        Ok(url) => url,
        Err(e) => {
            problems.push(format!("{name} is not a URL ({e}): {value}"));
            return None;
        }
    };
    let ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => crate::graph::is_loopback(&url),
        _ => false,
    };
    if !ok {
        problems.push(format!(
            "{name} must be https:// (http:// only for a loopback host): {value}"
        ));
        return None;
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        problems.push(format!(
            "{name} must not carry credentials, a query or a fragment"
        ));
        return None;
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::secret::Secret;
    use clap::Parser;
    use std::path::PathBuf;

    fn serve(args: &[&str]) -> ServeArgs {
        let argv = ["graph-grpc-gateway", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Serve(mut s) => {
                // Independent of the test process's environment.
                s.cloud = Cloud::Global;
                s.graph_base_url = None;
                s.authority_host = None;
                s.tenant_id = None;
                s.client_id = None;
                s.client_secret = None;
                s.client_secret_file = None;
                s.client_certificate_path = None;
                s.federated_token_file = None;
                // Other tests' subject: the inbound side is tested below.
                s.inbound.plaintext = true;
                s.inbound.allow_unauthenticated = true;
                *s
            }
            Command::Emulator(_) => unreachable!("serve was parsed"),
        }
    }

    /// A file in a fresh temporary folder, removed with the value.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("gw-config-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("value");
            std::fs::write(&path, contents).expect("write");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn attempt_spans_record_the_full_url_only_when_asked() {
        let c = Config::from_args(serve(&["--emulator"])).expect("valid");
        assert!(!c.graph_stack.trace_url_full, "off by default");
        let c = Config::from_args(serve(&["--emulator", "--trace-url-full"])).expect("valid");
        assert!(c.graph_stack.trace_url_full);
    }

    #[test]
    fn emulator_needs_no_credentials() {
        let c = Config::from_args(serve(&["--emulator"])).expect("valid");
        assert!(matches!(c.graph, GraphTarget::Emulator));
    }

    #[test]
    fn missing_credentials_are_named() {
        let e = Config::from_args(serve(&[])).expect_err("no credentials");
        let text = e.to_string();
        for name in [
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_CLIENT_SECRET_FILE",
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "AZURE_FEDERATED_TOKEN_FILE",
            "--emulator",
        ] {
            assert!(text.contains(name), "{text}");
        }
        let mut args = serve(&[]);
        args.tenant_id = Some("contoso.onmicrosoft.com".into());
        args.client_id = Some("app".into());
        let text = Config::from_args(args).expect_err("no secret").to_string();
        assert!(
            text.contains("one of AZURE_CLIENT_SECRET, AZURE_CLIENT_SECRET_FILE")
                && !text.contains("AZURE_TENANT_ID"),
            "{text}"
        );
    }

    fn with_credentials(base: Option<&str>) -> ServeArgs {
        let mut args = serve(&[]);
        args.tenant_id = Some("00000000-0000-0000-0000-000000000001".into());
        args.client_id = Some("app".into());
        args.client_secret = Some(Secret::new("s3cret-value"));
        args.graph_base_url = base.map(str::to_owned);
        args
    }

    fn target(args: ServeArgs) -> (Url, Credential) {
        match Config::from_args(args).expect("valid").graph {
            GraphTarget::Graph {
                base_url,
                credential,
            } => (base_url, *credential),
            GraphTarget::Emulator => panic!("expected Graph"),
        }
    }

    #[test]
    fn credentials_give_a_graph_target_with_its_cloud_scope() {
        let (base_url, credential) = target(with_credentials(None));
        assert_eq!(base_url.as_str(), "https://graph.microsoft.com/beta");
        assert_eq!(credential.scope, "https://graph.microsoft.com/.default");
        assert_eq!(
            credential.token_url(),
            "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token"
        );
        assert!(matches!(credential.kind, CredentialKind::ClientSecret(_)));
        assert!(!format!("{credential:?}").contains("s3cret-value"));
    }

    #[test]
    fn the_cloud_picks_authority_graph_and_scope() {
        for (cloud, authority, base, scope) in [
            (
                Cloud::Global,
                "https://login.microsoftonline.com/",
                "https://graph.microsoft.com/beta",
                "https://graph.microsoft.com/.default",
            ),
            (
                Cloud::UsGov,
                "https://login.microsoftonline.us/",
                "https://graph.microsoft.us/beta",
                "https://graph.microsoft.us/.default",
            ),
            (
                Cloud::UsGovDod,
                "https://login.microsoftonline.us/",
                "https://dod-graph.microsoft.us/beta",
                "https://dod-graph.microsoft.us/.default",
            ),
            (
                Cloud::China,
                "https://login.chinacloudapi.cn/",
                "https://microsoftgraph.chinacloudapi.cn/beta",
                "https://microsoftgraph.chinacloudapi.cn/.default",
            ),
        ] {
            let mut args = with_credentials(None);
            args.cloud = cloud;
            let (base_url, credential) = target(args);
            assert_eq!(credential.authority_host.as_str(), authority, "{cloud}");
            assert_eq!(base_url.as_str(), base, "{cloud}");
            assert_eq!(credential.scope, scope, "{cloud}");
        }
    }

    #[test]
    fn overrides_keep_the_clouds_scope() {
        let mut args = with_credentials(Some("http://127.0.0.1:9/beta"));
        args.cloud = Cloud::China;
        args.authority_host = Some("http://127.0.0.1:9".into());
        let (base_url, credential) = target(args);
        assert_eq!(base_url.as_str(), "http://127.0.0.1:9/beta");
        assert_eq!(
            credential.token_url(),
            "http://127.0.0.1:9/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token"
        );
        assert_eq!(
            credential.scope,
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
        // The AKS webhook's value, with its trailing slash.
        let mut args = with_credentials(None);
        args.authority_host = Some("https://login.microsoftonline.com/".into());
        let (_, credential) = target(args);
        assert_eq!(
            credential.token_url(),
            "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token"
        );
    }

    #[test]
    fn overrides_naming_another_cloud_are_refused() {
        let text = Config::from_args(with_credentials(Some("https://graph.microsoft.us/beta")))
            .expect_err("cross-cloud")
            .to_string();
        assert!(text.contains("GRAPH_CLOUD=usgov"), "{text}");
        let mut args = with_credentials(None);
        args.authority_host = Some("https://login.microsoftonline.us".into());
        let text = Config::from_args(args)
            .expect_err("cross-cloud")
            .to_string();
        assert!(
            text.contains("AZURE_AUTHORITY_HOST") && text.contains("usgov or usgovdod"),
            "{text}"
        );
        let mut args = with_credentials(None);
        args.cloud = Cloud::UsGovDod;
        args.authority_host = Some("https://login.microsoftonline.us".into());
        assert!(Config::from_args(args).is_ok());
    }

    #[test]
    fn the_cloud_flag_parses_its_four_names() {
        for (name, cloud) in [
            ("global", Cloud::Global),
            ("usgov", Cloud::UsGov),
            ("usgovdod", Cloud::UsGovDod),
            ("china", Cloud::China),
        ] {
            let argv = ["graph-grpc-gateway", "serve", "--cloud", name];
            let Command::Serve(s) = Cli::try_parse_from(argv).expect("parses").command else {
                unreachable!()
            };
            assert_eq!(s.cloud, cloud);
        }
        assert!(Cli::try_parse_from(["graph-grpc-gateway", "serve", "--cloud", "mars"]).is_err());
    }

    #[test]
    fn each_credential_kind_is_chosen_by_its_variable() {
        let secret = TempFile::new("from-file\n");
        let token = TempFile::new("eyJ.federated.token");
        let mut args = with_credentials(None);
        args.client_secret = None;
        args.client_secret_file = Some(secret.0.clone());
        assert!(
            matches!(target(args).1.kind, CredentialKind::ClientSecretFile(p) if p == secret.0)
        );
        let mut args = with_credentials(None);
        args.client_secret = None;
        args.federated_token_file = Some(token.0.clone());
        assert!(
            matches!(target(args).1.kind, CredentialKind::FederatedTokenFile(p) if p == token.0)
        );
    }

    #[test]
    fn two_credential_kinds_are_ambiguous() {
        let token = TempFile::new("eyJ.federated.token");
        let mut args = with_credentials(None);
        args.federated_token_file = Some(token.0.clone());
        let text = Config::from_args(args).expect_err("two kinds").to_string();
        assert!(
            text.contains(
                "more than one credential is set (AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN_FILE)"
            ),
            "{text}"
        );
        assert!(!text.contains("s3cret-value"), "{text}");
    }

    #[test]
    fn credential_files_are_read_at_start() {
        let missing = std::env::temp_dir().join(format!("gw-missing-{}", uuid::Uuid::new_v4()));
        let empty = TempFile::new(" \n");
        let not_pem = TempFile::new("not a certificate");
        type Set = fn(&mut ServeArgs, PathBuf);
        let cases: [(&str, Set, &PathBuf, &str); 5] = [
            (
                "AZURE_CLIENT_SECRET_FILE",
                |a, p| a.client_secret_file = Some(p),
                &missing,
                "cannot be read (no such file)",
            ),
            (
                "AZURE_CLIENT_CERTIFICATE_PATH",
                |a, p| a.client_certificate_path = Some(p),
                &missing,
                "cannot be read (no such file)",
            ),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                |a, p| a.federated_token_file = Some(p),
                &missing,
                "cannot be read (no such file)",
            ),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                |a, p| a.federated_token_file = Some(p),
                &empty.0,
                "is empty",
            ),
            (
                "AZURE_CLIENT_CERTIFICATE_PATH",
                |a, p| a.client_certificate_path = Some(p),
                &not_pem.0,
                "no PEM private key",
            ),
        ];
        for (var, set, path, why) in cases {
            let mut args = with_credentials(None);
            args.client_secret = None;
            set(&mut args, path.clone());
            let text = Config::from_args(args).expect_err(var).to_string();
            assert!(
                text.contains(&format!("{var} {}: {why}", path.display())),
                "{var}: {text}"
            );
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:9/beta",
            "http://localhost:9/beta",
            "http://[::1]:9/beta",
        ] {
            assert!(
                Config::from_args(with_credentials(Some(ok))).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://graph.microsoft.com/beta",
            "http://10.0.0.1/beta",
            "ftp://x/beta",
            "not a url",
            "https://u:p@graph.microsoft.com/beta",
            "https://graph.microsoft.com/beta?x=1",
        ] {
            let e = Config::from_args(with_credentials(Some(bad))).expect_err(bad);
            assert!(e.to_string().contains("GRAPH_BASE_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn emulator_and_base_url_conflict() {
        let mut args = serve(&["--emulator"]);
        args.graph_base_url = Some("https://graph.microsoft.com/beta".into());
        assert!(Config::from_args(args).is_err());
    }

    #[test]
    fn slot_counts_are_bounded_both_ways() {
        let problems_for = |value: &str| {
            let mut problems = Vec::new();
            let s = serve(&["--emulator", "--graph-max-in-flight", value]);
            let settings = stack_settings(&s.resilience, &mut problems);
            (settings.admission, problems)
        };
        let (admission, problems) = problems_for("1000000");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(admission.max_in_flight, 1_000_000);
        assert_eq!(admission.max_queued, 1024, "the default queue");
        for refused in ["0", "1000001", "18446744073709551615"] {
            let (_, problems) = problems_for(refused);
            assert_eq!(
                problems,
                ["GRAPH_MAX_IN_FLIGHT must be 1 to 1000000"],
                "{refused}"
            );
            let e = inbound_of(
                &[
                    "--plaintext",
                    "--allow-unauthenticated",
                    "--max-connections",
                    refused,
                ],
                false,
            )
            .expect_err(refused);
            assert_eq!(e, ["GATEWAY_MAX_CONNECTIONS must be 1 to 1000000"]);
        }
        inbound_of(
            &[
                "--plaintext",
                "--allow-unauthenticated",
                "--max-connections",
                "1000000",
            ],
            false,
        )
        .expect("the largest count");
    }

    #[test]
    fn the_request_id_store_has_defaults_and_ranges() {
        let c = Config::from_args(serve(&["--emulator"])).expect("valid");
        assert_eq!(c.idempotency, Retention::default());
        assert_eq!(c.idempotency.window, Duration::from_secs(600));
        assert_eq!(c.idempotency.max_entries, 100_000);
        let c = Config::from_args(serve(&[
            "--emulator",
            "--idempotency-window",
            "1d",
            "--idempotency-max-entries",
            "1",
        ]))
        .expect("the extremes are in range");
        assert_eq!(
            c.idempotency,
            Retention {
                window: Duration::from_secs(24 * 60 * 60),
                max_entries: 1,
            }
        );
        for (flag, value, problem) in [
            (
                "--idempotency-window",
                "999ms",
                "GATEWAY_IDEMPOTENCY_WINDOW must be 1s to 1d",
            ),
            (
                "--idempotency-window",
                "25h",
                "GATEWAY_IDEMPOTENCY_WINDOW must be 1s to 1d",
            ),
            (
                "--idempotency-max-entries",
                "0",
                "GATEWAY_IDEMPOTENCY_MAX_ENTRIES must be 1 to 10000000",
            ),
            (
                "--idempotency-max-entries",
                "10000001",
                "GATEWAY_IDEMPOTENCY_MAX_ENTRIES must be 1 to 10000000",
            ),
        ] {
            let e = Config::from_args(serve(&["--emulator", flag, value])).expect_err(value);
            assert_eq!(e.0, [problem], "{flag} {value}");
        }
    }

    #[test]
    fn answer_limits_have_defaults_and_ranges() {
        let settings_for = |args: &[&str]| {
            let mut problems = Vec::new();
            let mut argv = vec!["--emulator"];
            argv.extend_from_slice(args);
            let s = serve(&argv);
            (stack_settings(&s.resilience, &mut problems), problems)
        };
        let (settings, problems) = settings_for(&[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.max_retry_after, Duration::from_secs(180));
        assert_eq!(settings.max_answer_bytes, 16 * 1024 * 1024);
        assert_eq!(settings.token_max_answer_bytes, 64 * 1024);
        let (settings, problems) = settings_for(&[
            "--graph-max-retry-after",
            "1h",
            "--graph-max-answer-bytes",
            "1024",
            "--azure-token-max-answer-bytes",
            "16777216",
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.max_retry_after, Duration::from_secs(3600));
        for (flag, value, problem) in [
            (
                "--graph-max-retry-after",
                "999ms",
                "GRAPH_MAX_RETRY_AFTER must be 1s to 1h",
            ),
            (
                "--graph-max-retry-after",
                "3601s",
                "GRAPH_MAX_RETRY_AFTER must be 1s to 1h",
            ),
            (
                "--graph-max-answer-bytes",
                "1023",
                "GRAPH_MAX_ANSWER_BYTES must be 1024 to 1073741824",
            ),
            (
                "--graph-max-answer-bytes",
                "1073741825",
                "GRAPH_MAX_ANSWER_BYTES must be 1024 to 1073741824",
            ),
            (
                "--azure-token-max-answer-bytes",
                "0",
                "AZURE_TOKEN_MAX_ANSWER_BYTES must be 1024 to 16777216",
            ),
            (
                "--azure-token-max-answer-bytes",
                "16777217",
                "AZURE_TOKEN_MAX_ANSWER_BYTES must be 1024 to 16777216",
            ),
        ] {
            let (_, problems) = settings_for(&[flag, value]);
            assert_eq!(problems, [problem], "{flag} {value}");
        }
    }

    #[test]
    fn connection_lifetimes_have_defaults_and_ranges() {
        let open = ["--plaintext", "--allow-unauthenticated"];
        let defaults = inbound_of(&open, false).expect("defaults");
        assert_eq!(defaults.lifetimes, Lifetimes::default());
        assert_eq!(defaults.max_concurrent_calls, 4096);
        let c = Config::from_args(serve(&["--emulator"])).expect("valid");
        assert_eq!(c.shutdown_delay, Duration::from_secs(5));
        for (flag, refused, accepted, problem) in [
            (
                "--handshake-timeout",
                "99ms",
                "5m",
                "GATEWAY_HANDSHAKE_TIMEOUT must be 100ms to 5m",
            ),
            (
                "--keepalive-interval",
                "0s",
                "2h",
                "GATEWAY_KEEPALIVE_INTERVAL must be 1s to 2h",
            ),
            (
                "--keepalive-timeout",
                "11m",
                "1s",
                "GATEWAY_KEEPALIVE_TIMEOUT must be 1s to 10m",
            ),
            (
                "--idle-timeout",
                "25h",
                "24h",
                "GATEWAY_IDLE_TIMEOUT must be 1s to 1d",
            ),
            (
                "--max-connection-age",
                "25h",
                "1d",
                "GATEWAY_MAX_CONNECTION_AGE must be 1s to 1d",
            ),
            (
                "--max-connection-age-grace",
                "500ms",
                "1h",
                "GATEWAY_MAX_CONNECTION_AGE_GRACE must be 1s to 1h",
            ),
            (
                "--max-concurrent-calls",
                "0",
                "1000000",
                "GATEWAY_MAX_CONCURRENT_CALLS must be 1 to 1000000",
            ),
            (
                "--max-concurrent-calls",
                "1000001",
                "1",
                "GATEWAY_MAX_CONCURRENT_CALLS must be 1 to 1000000",
            ),
        ] {
            let e = inbound_of(&[open[0], open[1], flag, refused], false).expect_err(refused);
            assert_eq!(e, [problem], "{flag} {refused}");
            inbound_of(&[open[0], open[1], flag, accepted], false).expect(accepted);
        }
        let e = Config::from_args(serve(&["--emulator", "--shutdown-delay", "301s"]))
            .expect_err("too long");
        assert_eq!(e.0, ["GATEWAY_SHUTDOWN_DELAY must be 0s to 5m"]);
        let c = Config::from_args(serve(&["--emulator", "--shutdown-delay", "0s"])).expect("none");
        assert_eq!(c.shutdown_delay, Duration::ZERO);
    }

    #[test]
    fn durations_and_counts_outside_their_ranges_are_refused_naming_name_and_range() {
        const HUGE: &str = "18446744073709551615s";
        for (flags, expected) in [
            (
                &["--graph-timeout", HUGE][..],
                "GRAPH_TIMEOUT must be 1ms to 1d",
            ),
            (
                &["--graph-timeout", "0s"],
                "GRAPH_TIMEOUT must be 1ms to 1d",
            ),
            (
                &["--graph-timeout", "1day 1ms"],
                "GRAPH_TIMEOUT must be 1ms to 1d",
            ),
            (
                &["--graph-attempt-timeout", HUGE],
                "GRAPH_ATTEMPT_TIMEOUT must be 1ms to 1d",
            ),
            (
                &["--graph-attempt-timeout", "0s"],
                "GRAPH_ATTEMPT_TIMEOUT must be 1ms to 1d",
            ),
            (
                &["--graph-retry-base-delay", HUGE],
                "GRAPH_RETRY_BASE_DELAY must be 0s to 1d",
            ),
            (
                &["--drain-timeout", HUGE],
                "GATEWAY_DRAIN_TIMEOUT must be 0s to 1d",
            ),
            (
                &["--tls-reload-interval", HUGE],
                "GATEWAY_TLS_RELOAD_INTERVAL must be 100ms to 1d",
            ),
            (
                &["--tls-reload-interval", "99ms"],
                "GATEWAY_TLS_RELOAD_INTERVAL must be 100ms to 1d",
            ),
            (
                &["--graph-max-retries", "11"],
                "GRAPH_MAX_RETRIES must be 0 to 10",
            ),
            (
                &["--graph-retry-budget-percent", "NaN"],
                "GRAPH_RETRY_BUDGET_PERCENT must be 0 to 1000",
            ),
            (
                &["--graph-retry-budget-percent", "1000.5"],
                "GRAPH_RETRY_BUDGET_PERCENT must be 0 to 1000",
            ),
            (
                &["--graph-max-queued", "18446744073709551615"],
                "GRAPH_MAX_QUEUED must be 0 to 1000000",
            ),
            (
                &["--max-concurrent-streams", "0"],
                "GATEWAY_MAX_CONCURRENT_STREAMS must be 1 to 2147483647",
            ),
            (
                &["--max-concurrent-streams", "4294967295"],
                "GATEWAY_MAX_CONCURRENT_STREAMS must be 1 to 2147483647",
            ),
            (
                &["--max-message-bytes", "1023"],
                "GATEWAY_MAX_MESSAGE_BYTES must be 1024 to 67108864",
            ),
            (
                &["--max-message-bytes", "18446744073709551615"],
                "GATEWAY_MAX_MESSAGE_BYTES must be 1024 to 67108864",
            ),
        ] {
            let mut args = vec!["--emulator"];
            args.extend_from_slice(flags);
            let e = Config::from_args(serve(&args)).expect_err(expected);
            assert_eq!(e.0, [expected], "{flags:?}");
        }
    }

    #[test]
    fn the_ends_of_every_range_are_accepted() {
        let c = Config::from_args(serve(&[
            "--emulator",
            "--graph-timeout",
            "1d",
            "--graph-attempt-timeout",
            "24h",
            "--graph-retry-base-delay",
            "1d",
            "--graph-max-retries",
            "10",
            "--drain-timeout",
            "1d",
            "--tls-reload-interval",
            "1d",
            "--graph-max-queued",
            "1000000",
            "--max-concurrent-streams",
            "2147483647",
            "--max-message-bytes",
            "67108864",
            "--graph-retry-budget-percent",
            "1000",
        ]))
        .expect("the largest values");
        assert_eq!(c.graph_timeout, Duration::from_secs(86_400));
        assert_eq!(c.graph_stack.retry.base_delay, Duration::from_secs(86_400));
        let c = Config::from_args(serve(&[
            "--emulator",
            "--graph-timeout",
            "1ms",
            "--graph-attempt-timeout",
            "1ms",
            "--graph-retry-base-delay",
            "0s",
            "--graph-max-retries",
            "0",
            "--drain-timeout",
            "0s",
            "--tls-reload-interval",
            "100ms",
            "--graph-max-queued",
            "0",
            "--max-concurrent-streams",
            "1",
            "--max-message-bytes",
            "1024",
            "--graph-retry-budget-percent",
            "0",
        ]))
        .expect("the smallest values");
        assert_eq!(c.graph_timeout, Duration::from_millis(1));
    }

    #[test]
    fn the_emulator_commands_settings_are_bounded_too() {
        let emulator = |args: &[&str]| {
            let argv = ["graph-grpc-gateway", "emulator"].iter().chain(args);
            match Cli::try_parse_from(argv).expect("parses").command {
                Command::Emulator(e) => check_emulator(&e),
                Command::Serve(_) => unreachable!("emulator was parsed"),
            }
        };
        emulator(&[]).expect("the defaults");
        emulator(&[
            "--token-lifetime",
            "0s",
            "--latency",
            "1d",
            "--chaos-percent",
            "100",
            "--intune-limits-scale",
            "1000",
        ])
        .expect("the ends");
        for (args, expected) in [
            (
                &["--token-lifetime", "18446744073709551615s"][..],
                "EMULATOR_TOKEN_LIFETIME must be 0s to 1d",
            ),
            (
                &["--latency", "18446744073709551615s"],
                "EMULATOR_LATENCY must be 0s to 1d",
            ),
            (
                &["--chaos-percent", "100.5"],
                "EMULATOR_CHAOS_PERCENT must be 0 to 100",
            ),
            (
                &["--intune-limits-scale", "0"],
                "EMULATOR_INTUNE_LIMITS_SCALE must be 1 to 1000",
            ),
            (
                &["--intune-limits-scale", "1001"],
                "EMULATOR_INTUNE_LIMITS_SCALE must be 1 to 1000",
            ),
        ] {
            assert_eq!(emulator(args).expect_err(expected).0, [expected]);
        }
    }

    fn inbound_of(args: &[&str], emulator: bool) -> Result<Inbound, Vec<String>> {
        let mut s = serve(args);
        // Only what the arguments say.
        s.inbound.plaintext = args.contains(&"--plaintext");
        s.inbound.allow_unauthenticated = args.contains(&"--allow-unauthenticated");
        let mut problems = Vec::new();
        match inbound(&s.inbound, emulator, &mut problems) {
            Some(i) if problems.is_empty() => Ok(i),
            _ => Err(problems),
        }
    }

    #[test]
    fn graph_mode_needs_an_explicit_transport_and_caller_choice() {
        let e = inbound_of(&[], false).expect_err("neither");
        assert!(
            e.iter().any(|p| p.contains("GATEWAY_PLAINTEXT=true")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|p| p.contains("GATEWAY_ALLOW_UNAUTHENTICATED=true")),
            "{e:?}"
        );
        let open =
            inbound_of(&["--plaintext", "--allow-unauthenticated"], false).expect("explicit");
        assert!(matches!(open.transport, Transport::Plaintext));
        assert!(matches!(open.callers, Callers::Anyone));
        // The emulator demo assumes both.
        assert!(inbound_of(&[], true).is_ok());
    }

    #[test]
    fn tls_settings_must_make_sense() {
        let cert = TempFile::new("cert");
        let key = TempFile::new("key");
        let (c, k) = (
            cert.0.to_str().expect("utf-8"),
            key.0.to_str().expect("utf-8"),
        );
        let tls = inbound_of(
            &[
                "--tls-cert-file",
                c,
                "--tls-key-file",
                k,
                "--allow-unauthenticated",
            ],
            false,
        )
        .expect("tls");
        assert!(matches!(tls.transport, Transport::Tls(_)));
        let e = inbound_of(&["--tls-cert-file", c, "--allow-unauthenticated"], false)
            .expect_err("no key");
        assert!(e.iter().any(|p| p.contains("go together")), "{e:?}");
        let e = inbound_of(
            &[
                "--tls-cert-file",
                c,
                "--tls-key-file",
                k,
                "--plaintext",
                "--allow-unauthenticated",
            ],
            false,
        )
        .expect_err("both");
        assert!(e.iter().any(|p| p.contains("contradict")), "{e:?}");
        let e = inbound_of(
            &[
                "--plaintext",
                "--tls-client-ca-file",
                c,
                "--allow-unauthenticated",
            ],
            false,
        )
        .expect_err("mtls without tls");
        assert!(e.iter().any(|p| p.contains("mutual TLS is TLS")), "{e:?}");
    }

    #[test]
    fn a_policy_naming_one_identity_for_two_callers_stops_the_start() {
        let policy = TempFile::new(
            "[[callers]]\nname = \"reader\"\nidentities = [\"dns:Shared.Example\"]\nrpcs = [\"ListSecurityConfigurationTasks\"]\n\n\
             [[callers]]\nname = \"writer\"\nidentities = [\"dns:shared.example\"]\nrpcs = [\"*\"]\n",
        );
        let mut args = serve(&["--emulator"]);
        args.inbound.allow_unauthenticated = false;
        args.inbound.policy_file = Some(policy.0.clone());
        let text = Config::from_args(args)
            .expect_err("one identity, two callers")
            .to_string();
        assert!(
            text.contains(&format!("policy file {}", policy.0.display()))
                && text.contains(
                    "identity dns:shared.example names two callers, \"reader\" (callers[0]) and \"writer\" (callers[1])"
                ),
            "{text}"
        );
    }

    #[test]
    fn the_policy_file_is_read_and_checked_at_start() {
        let policy = TempFile::new(
            "[[callers]]\nname = \"dash\"\nidentities = [\"cn:dash\"]\nrpcs = [\"*\"]\n",
        );
        let p = policy.0.to_str().expect("utf-8");
        let e = inbound_of(&["--plaintext", "--policy-file", p], false).expect_err("no CA");
        assert!(
            e.iter()
                .any(|x| x.contains("no GATEWAY_TLS_CLIENT_CA_FILE")),
            "{e:?}"
        );
        let e = inbound_of(
            &["--plaintext", "--policy-file", p, "--allow-unauthenticated"],
            false,
        )
        .expect_err("both");
        assert!(e.iter().any(|x| x.contains("contradict")), "{e:?}");
        let broken = TempFile::new("[[callers]]\nname = 1\n");
        let b = broken.0.to_str().expect("utf-8");
        let e = inbound_of(&["--plaintext", "--policy-file", b], false).expect_err("broken");
        assert!(e.iter().any(|x| x.contains("policy file")), "{e:?}");
        let e = inbound_of(
            &["--plaintext", "--policy-file", "/nonexistent/policy.toml"],
            false,
        )
        .expect_err("missing");
        assert!(
            e.iter().any(|x| x.contains("reading the policy file")),
            "{e:?}"
        );
    }
}

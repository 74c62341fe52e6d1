//! The gateway's configuration: one typed struct, validated once at start.
//!
//! Settings follow the Azure SDK environment names (`AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_AUTHORITY_HOST`). Running
//! against Graph without credentials is refused at start, naming what is
//! missing: the gateway never falls back to the emulator on its own.

use crate::cli::{LogArgs, ResilienceArgs, ServeArgs};
use crate::graph::{RetrySettings, StackSettings};
use crate::secret::Secret;
use reqwest::Url;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Microsoft Graph beta, global cloud.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.microsoft.com/beta";
/// Microsoft Entra ID, global cloud.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

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
    pub log: LogArgs,
}

/// Which Graph the gateway talks to.
#[derive(Debug, Clone)]
pub enum GraphTarget {
    /// The built-in emulator, started in-process on a loopback port.
    Emulator,
    /// A real Graph endpoint, with credentials.
    Graph {
        base_url: Url,
        credential: Box<ClientSecretCredential>,
    },
}

/// An app registration's client-secret credential.
#[derive(Debug, Clone)]
pub struct ClientSecretCredential {
    pub authority_host: Url,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `https://{graph host}/.default`: tokens are per cloud.
    pub scope: String,
}

impl ClientSecretCredential {
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }
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
        if args.max_message_bytes < 1024 {
            problems.push("GATEWAY_MAX_MESSAGE_BYTES must be at least 1024".to_owned());
        }
        if args.graph_timeout.is_zero() {
            problems.push("GRAPH_TIMEOUT must be more than 0".to_owned());
        }
        let graph_stack = stack_settings(&args.resilience, &mut problems);
        let graph = if args.emulator {
            if args.graph_base_url.is_some() {
                problems.push(
                    "--emulator runs its own Graph; unset GRAPH_BASE_URL (or --graph-base-url) to use it".to_owned(),
                );
            }
            Some(GraphTarget::Emulator)
        } else {
            graph_target(&args, &mut problems)
        };
        match graph {
            Some(graph) if problems.is_empty() => Ok(Config {
                grpc_addr: args.grpc_addr,
                admin_addr: args.admin_addr,
                graph,
                graph_timeout: args.graph_timeout,
                graph_stack,
                max_message_bytes: args.max_message_bytes,
                drain_timeout: args.drain_timeout,
                log: args.log,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

fn stack_settings(args: &ResilienceArgs, problems: &mut Vec<String>) -> StackSettings {
    if args.graph_max_retries > 10 {
        problems.push("GRAPH_MAX_RETRIES must be at most 10".to_owned());
    }
    if !(0.0..=1000.0).contains(&args.graph_retry_budget_percent) {
        problems.push("GRAPH_RETRY_BUDGET_PERCENT must be within 0..=1000".to_owned());
    }
    if args.graph_attempt_timeout.is_zero() {
        problems.push("GRAPH_ATTEMPT_TIMEOUT must be more than 0".to_owned());
    }
    if args.graph_max_in_flight == 0 {
        problems.push("GRAPH_MAX_IN_FLIGHT must be at least 1".to_owned());
    }
    StackSettings {
        retry: RetrySettings {
            max_retries: args.graph_max_retries,
            base_delay: args.graph_retry_base_delay,
            budget_percent: args.graph_retry_budget_percent,
            ..RetrySettings::default()
        },
        attempt_timeout: args.graph_attempt_timeout,
        max_in_flight: args.graph_max_in_flight,
    }
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
    let client_secret = args.client_secret.clone().filter(|s| !s.is_empty());
    let missing: Vec<&str> = [
        ("AZURE_TENANT_ID", tenant_id.is_none()),
        ("AZURE_CLIENT_ID", client_id.is_none()),
        ("AZURE_CLIENT_SECRET", client_secret.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "Graph credentials missing: {} (or run `serve --emulator` to try the gateway against the built-in Graph emulator)",
            missing.join(", ")
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
    let base_url = endpoint(
        "GRAPH_BASE_URL",
        args.graph_base_url
            .as_deref()
            .unwrap_or(DEFAULT_GRAPH_BASE_URL),
        problems,
    );
    let authority_host = endpoint(
        "AZURE_AUTHORITY_HOST",
        args.authority_host
            .as_deref()
            .unwrap_or(DEFAULT_AUTHORITY_HOST),
        problems,
    );
    let base_url = base_url?;
    let scope = match (base_url.scheme(), base_url.host_str()) {
        ("https", Some(host)) => format!("https://{host}/.default"),
        _ => "https://graph.microsoft.com/.default".to_owned(),
    };
    Some(GraphTarget::Graph {
        credential: Box::new(ClientSecretCredential {
            authority_host: authority_host?,
            tenant_id: tenant_id?,
            client_id: client_id?,
            client_secret: client_secret?,
            scope,
        }),
        base_url,
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
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback,
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
    use clap::Parser;

    fn serve(args: &[&str]) -> ServeArgs {
        let argv = ["graph-grpc-gateway", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Serve(mut s) => {
                // Independent of the test process's environment.
                s.graph_base_url = None;
                s.authority_host = None;
                s.tenant_id = None;
                s.client_id = None;
                s.client_secret = None;
                *s
            }
            Command::Emulator(_) => unreachable!("serve was parsed"),
        }
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
            "--emulator",
        ] {
            assert!(text.contains(name), "{text}");
        }
        let mut args = serve(&[]);
        args.tenant_id = Some("contoso.onmicrosoft.com".into());
        args.client_id = Some("app".into());
        let text = Config::from_args(args).expect_err("no secret").to_string();
        assert!(
            text.contains("AZURE_CLIENT_SECRET") && !text.contains("AZURE_TENANT_ID"),
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

    #[test]
    fn credentials_give_a_graph_target_with_its_cloud_scope() {
        let c = Config::from_args(with_credentials(None)).expect("valid");
        let GraphTarget::Graph {
            base_url,
            credential,
        } = c.graph
        else {
            panic!("expected Graph")
        };
        assert_eq!(base_url.as_str(), "https://graph.microsoft.com/beta");
        assert_eq!(credential.scope, "https://graph.microsoft.com/.default");
        assert_eq!(
            credential.token_url(),
            "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/oauth2/v2.0/token"
        );
        let c = Config::from_args(with_credentials(Some("https://graph.microsoft.us/beta")))
            .expect("valid");
        let GraphTarget::Graph { credential, .. } = c.graph else {
            panic!("expected Graph")
        };
        assert_eq!(credential.scope, "https://graph.microsoft.us/.default");
        assert!(!format!("{credential:?}").contains("s3cret-value"));
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
}

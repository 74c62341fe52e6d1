//! Wires the parts together and runs them: gRPC (service, health,
//! reflection v1 and v1alpha), admin HTTP, and the in-process emulator when
//! asked for.

use crate::admin::{self, Readiness};
use crate::config::{Callers, Config, GraphTarget, Inbound, Transport};
use crate::config::{Cloud, Credential, CredentialKind};
use crate::emulator::{Emulator, EmulatorOptions, RunningEmulator};
use crate::graph::{self, GraphClient, TokenCache};
use crate::idempotency::{Idempotency, SharedStore};
use crate::listener;
use crate::metrics::Metrics;
use crate::proto::v1::security_configuration_task_service_server::SecurityConfigurationTaskServiceServer;
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::secret::Secret;
use crate::security::access::{Access, AccessLayer};
use crate::security::jwt::JwtVerifier;
use crate::security::tls::TlsReloader;
use crate::service::TaskService;
use anyhow::Context;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use url::Url;

mod workers;

const SERVICE_NAME: &str = crate::methods::SERVICE;

/// A started gateway.
pub struct Gateway {
    /// Where gRPC is served.
    pub grpc_addr: SocketAddr,
    /// Where the admin HTTP endpoints are served.
    pub admin_addr: SocketAddr,
    /// The in-process emulator, with `serve --emulator`.
    pub emulator: Option<RunningEmulator>,
    /// Shared with the admin server; tests read it.
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    drain_timeout: Duration,
    /// Updates in progress, stopped (each writing its audit record) when the
    /// drain ends before they do.
    updates: crate::service::Updates,
    shutdown_delay: Duration,
    ready: Arc<Readiness>,
    health: HealthReporter,
    /// Held while readiness is read and reported, so a report of the old
    /// state cannot land after the shutdown's NOT_SERVING.
    health_turn: Arc<tokio::sync::Mutex<()>>,
    grpc: JoinHandle<Result<(), String>>,
    /// The per-core workers beside the main runtime's server.
    workers: workers::Workers,
    admin: JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// Binds the listeners and starts serving, on the current runtime alone.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        Self::start_with_workers(config, 0).await
    }

    /// Binds the listeners and starts serving: on the current runtime and,
    /// per core, on `extra_workers` more threads with listeners of their
    /// own on the same port ([`workers`]).
    pub async fn start_with_workers(config: Config, extra_workers: usize) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let use_proxy = !matches!(config.graph, GraphTarget::Emulator);
        let http = graph::http_client(use_proxy).context("building the HTTP client")?;
        let (emulator, base_url, credential) = match &config.graph {
            GraphTarget::Emulator => {
                let running = emulator_with_tokens().await?;
                tracing::warn!(base_url = %running.base_url, "serving against the built-in Graph emulator: not for production");
                let credential = emulator_credential(&running)?;
                let base_url = Url::parse(&running.base_url)?;
                (Some(running), base_url, credential)
            }
            GraphTarget::Graph {
                base_url,
                credential,
            } => (None, base_url.clone(), (**credential).clone()),
        };
        let tokens = TokenCache::with_answer_limit(
            http.clone(),
            credential,
            Arc::new(graph::auth::SystemClock),
            config.graph_stack.token_max_answer_bytes,
        );
        // Graph calls: a client (and connection pool) per thread, so each
        // per-core worker sends on connections its own runtime drives; the
        // TLS configuration (the root store read once) is shared.
        let graph_http =
            graph::GraphHttpConfig::new(use_proxy).context("building the Graph HTTP client")?;
        let graph_http = graph::Clients::per_thread(move || {
            Ok::<_, std::convert::Infallible>(graph_http.client())
        })
        .unwrap_or_else(|never| match never {});
        let graph_client = GraphClient::new(
            graph_http,
            &base_url,
            Some(Arc::new(tokens.clone())),
            config.graph_timeout,
            &config.graph_stack,
            metrics.clone(),
        );
        {
            let metrics = Arc::downgrade(&metrics);
            tokens.on_request(move |result| {
                if let Some(metrics) = metrics.upgrade() {
                    metrics.token_request(result);
                }
            });
        }
        // Ready once a token is in hand: try for one before serving, briefly.
        match tokio::time::timeout(WARM_UP_WAIT, tokens.warm_up()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no access token yet; not ready until one is obtained")
            }
            Err(_) => tracing::warn!(
                "no access token yet (still waiting); not ready until one is obtained"
            ),
        }
        let ready = Arc::new(Readiness::new(tokens.clone()));
        {
            let ready = Arc::downgrade(&ready);
            let weak_metrics = Arc::downgrade(&metrics);
            metrics.on_render(move || match (ready.upgrade(), weak_metrics.upgrade()) {
                (Some(ready), Some(metrics)) => {
                    metrics.set_readiness(ready.token_ready(), ready.get());
                    true
                }
                _ => false,
            });
        }
        let graph_client = Arc::new(graph_client);
        {
            let graph = Arc::downgrade(&graph_client);
            ready.with_budget_mode(move || {
                graph.upgrade()?.budget().map(crate::budget::Budget::mode)
            });
        }
        if config.graph_stack.trace_url_full {
            tracing::warn!(
                traces_exported = crate::telemetry::otel::on(),
                "Graph attempt spans record url.full (GATEWAY_TRACE_URL_FULL): traces hold task ids and list filters"
            );
        }
        let idempotency = idempotency(&config, &metrics);
        let service = TaskService::new(graph_client, metrics.clone()).with_idempotency(idempotency);
        let updates = service.updates();
        let access = access(&config.inbound, &http, &metrics).await;
        let tls = match &config.inbound.transport {
            Transport::Tls(settings) => {
                let reloader = TlsReloader::load(settings.clone())
                    .context("loading the gRPC port's TLS certificate")?;
                let mutual = if settings.client_ca_file.is_some() {
                    "mutual TLS"
                } else {
                    "TLS"
                };
                tracing::info!(cert_file = %settings.cert_file.display(), client_auth = ?settings.client_auth, "gRPC port serves {mutual}");
                Some(Arc::new(reloader))
            }
            Transport::Plaintext => {
                tracing::warn!("gRPC port serves plaintext (GATEWAY_PLAINTEXT): only behind a mesh or proxy that terminates TLS");
                None
            }
        };

        let grpc_listener = workers::bind(config.grpc_addr, extra_workers > 0)
            .with_context(|| format!("binding gRPC address {}", config.grpc_addr))?;
        let admin_listener = TcpListener::bind(config.admin_addr)
            .await
            .with_context(|| format!("binding admin address {}", config.admin_addr))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;

        let (health, health_service) = tonic_health::server::health_reporter();
        ready.set_started(true);
        let serving = ready.get();
        report_health(&health, serving).await;
        // grpcurl 1.8 speaks only v1alpha; newer clients v1. The health
        // service's descriptor is registered too, or clients cannot call it,
        // and google.rpc's error details, so clients can print them.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .context("building reflection v1alpha")?;
        let tasks = SecurityConfigurationTaskServiceServer::new(service)
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes);

        let (stop, stopped) = watch::channel(false);
        let grpc_stop = {
            let mut stopped = stopped.clone();
            let health = health.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
                report_health(&health, false).await;
            }
        };
        if let Some(tls) = &tls {
            let mut stopped = stopped.clone();
            tokio::spawn(tls.clone().watch(metrics.clone(), async move {
                let _ = stopped.wait_for(|s| *s).await;
            }));
        }
        let report = listener::Report::spawn(metrics.clone());
        let lifetimes = config.inbound.lifetimes;
        let slots = listener::ConnectionSlots::new(config.inbound.max_connections);
        let calls = listener::CallLayer::new(config.inbound.max_concurrent_calls, report.clone());
        let inbound = config.inbound.clone();
        // One gRPC server per listener (the main thread's, and each
        // worker's), all over the same services, caps and policy.
        let serve = move |listener: TcpListener, shutdown: BoxFuture<'static, ()>| {
            let incoming = listener::incoming(
                listener,
                tls.clone(),
                slots.clone(),
                lifetimes,
                report.clone(),
            );
            let router = tonic::transport::Server::builder()
                .max_concurrent_streams(inbound.max_concurrent_streams)
                .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
                .http2_keepalive_interval(Some(lifetimes.keepalive_interval))
                .http2_keepalive_timeout(Some(lifetimes.keepalive_timeout))
                // GOAWAY at the age; the grace after it is the listener's
                // (tonic's own grace would skip the GOAWAY).
                .max_connection_age(lifetimes.max_age)
                .layer(calls.clone())
                .layer(AccessLayer(access.clone()))
                .add_service(health_service.clone())
                .add_service(reflection_v1.clone())
                .add_service(reflection_v1alpha.clone())
                .add_service(tasks.clone());
            async move {
                router
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
                    .map_err(|e| format!("gRPC server: {e}"))
            }
        };
        let workers = {
            let serve = serve.clone();
            let stopped = stopped.clone();
            workers::Workers::start(extra_workers, grpc_addr, move |listener| {
                let mut stopped = stopped.clone();
                serve(
                    listener,
                    Box::pin(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    }),
                )
            })?
        };
        let grpc = tokio::spawn(serve(grpc_listener, Box::pin(grpc_stop)));
        let admin_stop = {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let admin_app = admin::router(metrics.clone(), ready.clone());
        let admin = tokio::spawn(admin::serve(admin_listener, admin_app, admin_stop));
        let health_turn = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(watch_readiness(
            ready.clone(),
            serving,
            tokens,
            health.clone(),
            stopped,
            health_turn.clone(),
        ));
        tracing::info!(%grpc_addr, %admin_addr, grpc_threads = workers.len() + 1, "graph-grpc-gateway serving");
        Ok(Self {
            grpc_addr,
            admin_addr,
            emulator,
            metrics,
            stop,
            drain_timeout: config.drain_timeout,
            updates,
            shutdown_delay: config.shutdown_delay,
            ready,
            health,
            health_turn,
            grpc,
            workers,
            admin,
        })
    }

    /// Reports NOT_SERVING (gRPC health and `/readyz`) at once, keeps
    /// accepting and serving for the shutdown delay (the lame-duck period,
    /// while load balancers stop routing here), then stops accepting, sends
    /// GOAWAY, and lets in-flight calls finish within the drain timeout;
    /// calls still running then are abandoned.
    pub async fn shutdown(self) -> anyhow::Result<Drain> {
        self.ready.set_started(false);
        {
            let _turn = self.health_turn.lock().await;
            report_health(&self.health, false).await;
        }
        if !self.shutdown_delay.is_zero() {
            tracing::info!(shutdown_delay = ?self.shutdown_delay, "lame duck: health says NOT_SERVING and /readyz 503; new connections are still served until the shutdown delay ends");
            tokio::time::sleep(self.shutdown_delay).await;
        }
        tracing::info!(drain_timeout = ?self.drain_timeout, "draining: no new connections; in-flight calls may finish");
        let _ = self.stop.send(true);
        let (mut grpc, mut admin, mut workers) = (self.grpc, self.admin, self.workers);
        let drained = tokio::time::timeout(self.drain_timeout, async {
            (
                (&mut grpc).await,
                workers.finished().await,
                (&mut admin).await,
            )
        })
        .await;
        if let Some(emulator) = self.emulator {
            emulator.shutdown().await;
        }
        match drained {
            Ok((grpc, workers, admin)) => {
                grpc.context("gRPC server task")?
                    .map_err(anyhow::Error::msg)?;
                workers.map_err(anyhow::Error::msg)?;
                admin
                    .context("admin server task")?
                    .context("admin server")?;
                tracing::info!("drained; stopped");
                Ok(Drain::Complete)
            }
            Err(_) => {
                let unrecorded = self.updates.abandon(ABANDON_WAIT).await;
                if unrecorded > 0 {
                    tracing::warn!(
                        unrecorded,
                        "updates abandoned at the drain timeout without an audit record"
                    );
                }
                grpc.abort();
                workers.abort();
                admin.abort();
                tracing::warn!(drain_timeout = ?self.drain_timeout, "calls still in flight after the drain timeout were abandoned; stopped");
                Ok(Drain::Abandoned)
            }
        }
    }
}

/// How long the end of the drain waits for abandoned updates to write their
/// audit records.
const ABANDON_WAIT: Duration = Duration::from_secs(1);

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every in-flight call finished.
    Complete,
    /// The drain timeout passed with calls still running.
    Abandoned,
}

/// The `request_id` memory, shared through the budget's Redis when
/// `GRAPH_BUDGET_REDIS_URL` is set (the same settings and password file; its
/// own connection).
fn idempotency(config: &Config, metrics: &Metrics) -> Idempotency {
    let local = Idempotency::counted(
        config.idempotency.window,
        config.idempotency.max_entries,
        metrics.idempotency_entries(),
    );
    let Some(shared) = &config.graph_stack.budget_store else {
        return local;
    };
    match crate::budget::redis::RedisStore::new(&shared.redis, &shared.key) {
        Ok(redis) => {
            tracing::info!("the request_id memory is shared with the other replicas through Redis (GRAPH_BUDGET_REDIS_URL)");
            local.sharing(SharedStore::new(
                redis,
                &shared.key,
                config.idempotency.window,
                metrics.idempotency_store(),
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "the shared request_id memory cannot be used; this replica remembers alone");
            local
        }
    }
}

/// The largest block of request metadata (HTTP/2 header list) accepted.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// The access layer for the configured callers. With a JWT issuer, its keys
/// are fetched once at start; failing that, they are fetched on first use.
async fn access(inbound: &Inbound, http: &reqwest::Client, metrics: &Arc<Metrics>) -> Arc<Access> {
    match &inbound.callers {
        Callers::Anyone => {
            tracing::warn!(
                "no caller policy (GATEWAY_ALLOW_UNAUTHENTICATED): every caller may call every RPC"
            );
            Arc::new(Access::new(None, None, metrics.clone()))
        }
        Callers::Policy(policy) => {
            let jwt = policy
                .jwt
                .clone()
                .map(|settings| JwtVerifier::new(settings, http.clone()));
            if let Some(jwt) = &jwt {
                match tokio::time::timeout(WARM_UP_WAIT, jwt.warm_up()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "JWT signing keys not fetched yet; bearer tokens fail until they are"),
                    Err(_) => tracing::warn!("JWT signing keys not fetched yet (still waiting); bearer tokens fail until they are"),
                }
            }
            tracing::info!(
                callers = policy.callers().count(),
                jwt = jwt.is_some(),
                "caller policy loaded"
            );
            Arc::new(Access::new(Some(policy.clone()), jwt, metrics.clone()))
        }
    }
}

/// How long start-up waits for a first access token before serving anyway
/// (not ready) and trying again in the background.
const WARM_UP_WAIT: Duration = Duration::from_secs(10);
/// How often readiness is re-read for gRPC health.
const READINESS_EVERY: Duration = Duration::from_secs(1);

/// The emulator, requiring bearer tokens from its own token endpoint, so the
/// demo exercises the same token path as Graph.
async fn emulator_with_tokens() -> anyhow::Result<RunningEmulator> {
    let emulator = Emulator::with_options(EmulatorOptions::default().with_require_auth(true));
    emulator
        .spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("starting the built-in Graph emulator")
}

/// Demo credentials the emulator accepts; they are not secrets.
fn emulator_credential(running: &RunningEmulator) -> anyhow::Result<Credential> {
    Ok(Credential {
        authority_host: format!("http://{}", running.addr).parse()?,
        tenant_id: "emulator".into(),
        client_id: "graph-grpc-gateway".into(),
        scope: Cloud::Global.scope(),
        kind: CredentialKind::ClientSecret(Secret::new("emulator")),
    })
}

/// Sets gRPC health for the service and for the server as a whole.
async fn report_health(health: &HealthReporter, serving: bool) {
    let status = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    health.set_service_status(SERVICE_NAME, status).await;
}

/// Keeps gRPC health in step with readiness (a token in hand), and keeps
/// trying for a token while there is none, until shutdown.
async fn watch_readiness(
    ready: Arc<Readiness>,
    reported: bool,
    tokens: TokenCache,
    health: HealthReporter,
    mut stopped: watch::Receiver<bool>,
    turn: Arc<tokio::sync::Mutex<()>>,
) {
    let mut reported = Some(reported);
    let mut tick = tokio::time::interval(READINESS_EVERY);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            _ = tick.tick() => {}
        }
        let guard = turn.lock().await;
        let now = ready.get();
        if reported != Some(now) {
            tracing::info!(ready = now, "readiness changed");
            report_health(&health, now).await;
            reported = Some(now);
        }
        drop(guard);
        if !now {
            // The cache paces failed attempts itself.
            let _ = tokens.warm_up().await;
        }
    }
    ready.set_started(false);
}

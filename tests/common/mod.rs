//! Shared test setup: a gateway on loopback against the in-process emulator,
//! and a real tonic client connected to it.
#![allow(dead_code)]

use graph_grpc_gateway::cli::{LogArgs, LogFormat};
use graph_grpc_gateway::config::{Config, GraphTarget, Inbound, Retention};
use graph_grpc_gateway::emulator::{Emulator, Fault, FaultBody};
use graph_grpc_gateway::graph::{Admission, RetrySettings, StackSettings, DEFAULT_MAX_RETRY_AFTER};
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use graph_grpc_gateway::proto::v1::{
    GetSecurityConfigurationTaskRequest, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use graph_grpc_gateway::server::Gateway;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;

pub type Client = SecurityConfigurationTaskServiceClient<Channel>;

/// A Get of `id`.
pub fn get(id: &str) -> GetSecurityConfigurationTaskRequest {
    GetSecurityConfigurationTaskRequest { id: id.into() }
}

/// An Update that renames `id` to `name` (mask `display_name`), under
/// `request_id` (empty: none).
pub fn rename(id: &str, name: &str, request_id: &str) -> UpdateSecurityConfigurationTaskRequest {
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: id.into(),
            display_name: Some(name.into()),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
        request_id: request_id.into(),
        ..Default::default()
    }
}

/// The `ErrorInfo` reason of a failed call (empty without one).
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// The fields a `BadRequest` detail names, in its order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// The `idempotent-replay` response metadata, when set.
pub fn replayed(md: &tonic::metadata::MetadataMap) -> Option<&str> {
    md.get("idempotent-replay").and_then(|v| v.to_str().ok())
}

/// A new AIP-155 `request_id`.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `n` new securityConfigurationTasks in the emulator (copies of the
/// example task, status `pending`), named `task {i}` by their place.
pub fn seed_tasks(h: &Harness, n: usize) -> Vec<String> {
    let template = graph_grpc_gateway::emulator::seed::tasks()
        .into_iter()
        .find(|t| t["id"] == graph_grpc_gateway::emulator::seed::EXAMPLE_TASK_ID)
        .expect("the example task");
    (0..n)
        .map(|i| {
            let mut task = template.clone();
            task["id"] = serde_json::json!(uuid::Uuid::new_v4().to_string());
            task["displayName"] = serde_json::json!(format!("task {i}"));
            task["status"] = serde_json::json!("pending");
            h.emulator().insert(task)
        })
        .collect()
}

/// An emulator answer with `status` and Graph's error body.
pub fn fault(status: u16) -> Fault {
    Fault {
        status,
        code: None,
        message: None,
        retry_after: None,
        body: FaultBody::GraphError,
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn config(graph: GraphTarget) -> Config {
    Config {
        grpc_addr: loopback(),
        admin_addr: loopback(),
        graph,
        graph_timeout: Duration::from_secs(10),
        graph_stack: fast_retries(),
        max_message_bytes: 4 * 1024 * 1024,
        drain_timeout: Duration::from_secs(5),
        inbound: Inbound::open(),
        log: LogArgs {
            log_format: LogFormat::Pretty,
            log: "warn".into(),
        },
        // In-process tests stop at once; the lame-duck period has its own tests.
        shutdown_delay: Duration::ZERO,
        idempotency: Retention::default(),
    }
}

/// The production retry policy with test-sized delays.
pub fn fast_retries() -> StackSettings {
    StackSettings {
        retry: RetrySettings {
            base_delay: Duration::from_millis(5),
            max_jitter: Duration::from_millis(5),
            ..RetrySettings::default()
        },
        attempt_timeout: Duration::from_secs(5),
        admission: Admission {
            max_in_flight: 256,
            max_queued: 1024,
        },
        max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        max_answer_bytes: 16 * 1024 * 1024,
        token_max_answer_bytes: 64 * 1024,
        budget: None,
        budget_store: None,
        trace_url_full: false,
    }
}

/// A gateway that never retries, so each injected answer is the one returned.
pub async fn without_retries() -> Harness {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack.retry.max_retries = 0;
    Harness::with_config(cfg).await
}

pub struct Harness {
    pub gateway: Gateway,
    pub client: Client,
}

impl Harness {
    /// `serve --emulator` on ephemeral loopback ports.
    pub async fn start() -> Self {
        Self::with_config(config(GraphTarget::Emulator)).await
    }

    /// With the emulator, its request log is turned on (it is off by
    /// default) before any call, since the tests read it.
    pub async fn with_config(config: Config) -> Self {
        let gateway = Gateway::start(config).await.expect("gateway starts");
        if let Some(running) = &gateway.emulator {
            let emulator = &running.emulator;
            emulator.set_options(emulator.options().with_record_requests(true));
        }
        let client = connect(gateway.grpc_addr).await;
        Self { gateway, client }
    }

    pub fn emulator(&self) -> &Emulator {
        &self
            .gateway
            .emulator
            .as_ref()
            .expect("started with the emulator")
            .emulator
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin_addr)
    }
}

pub async fn connect(addr: SocketAddr) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    SecurityConfigurationTaskServiceClient::new(channel)
}

pub mod audit_log;
pub mod fake_cloud;
pub mod issuer;
pub mod logs;
pub mod metrics;
pub mod otlp;
pub mod pki;
pub mod process;
pub mod redis;
pub mod temp;

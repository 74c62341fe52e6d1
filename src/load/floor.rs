//! The floor: the least a gRPC-to-Graph gateway can do per call, served as
//! its own process so the load tool can measure it the way it measures the
//! gateway.
//!
//! It serves the same proto with tonic's defaults, and each Update is one
//! pooled HTTP request made through the same HTTP client configuration as the
//! gateway's, with the same JSON translation both ways: a unary call served,
//! one request made, plus JSON. It has none of what makes the gateway
//! dependable (validation details, retries, timeouts, throttling, tokens,
//! caller checks, metrics, audit records, logs); the gap between the two is
//! what those cost.

use crate::graph::http_client;
use crate::proto::v1::security_configuration_task_service_server::{
    SecurityConfigurationTaskService, SecurityConfigurationTaskServiceServer,
};
use crate::proto::v1::{
    GetSecurityConfigurationTaskRequest, ListSecurityConfigurationTasksRequest,
    ListSecurityConfigurationTasksResponse, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use crate::translate::{self, IdSegment};
use anyhow::Context;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use tonic::{Request, Response, Status};
use url::Url;

/// The first argument that makes the load tool's binary serve the floor.
pub const COMMAND: &str = "floor-server";
/// Where Graph is (`…/beta`).
pub const ENV_GRAPH_BASE_URL: &str = "FLOOR_GRAPH_BASE_URL";
/// The `Authorization` header value to send.
pub const ENV_AUTHORIZATION: &str = "FLOOR_AUTHORIZATION";
/// HTTP/2 streams allowed per connection.
pub const ENV_MAX_STREAMS: &str = "FLOOR_MAX_CONCURRENT_STREAMS";
/// When both are set, the floor serves TLS with this certificate and key.
pub const ENV_TLS_CERT_FILE: &str = "FLOOR_TLS_CERT_FILE";
pub const ENV_TLS_KEY_FILE: &str = "FLOOR_TLS_KEY_FILE";
/// The line printed once serving, with `grpc_addr`.
pub const SERVING: &str = "floor serving";

struct Floor {
    http: reqwest::Client,
    collection: Url,
    authorization: HeaderValue,
}

impl Floor {
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<SecurityConfigurationTask, Status> {
        let resp = req
            .header(AUTHORIZATION, self.authorization.clone())
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .send()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(Status::unknown(resp.status().to_string()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        translate::task_from_graph(&body)
            .map(|d| d.task)
            .map_err(|e| Status::internal(e.to_string()))
    }

    fn url(&self, id: &IdSegment) -> Url {
        let mut url = self.collection.clone();
        let path = format!("{}/{}", url.path(), id.as_str());
        url.set_path(&path);
        url
    }
}

#[tonic::async_trait]
impl SecurityConfigurationTaskService for Floor {
    async fn update_security_configuration_task(
        &self,
        request: Request<UpdateSecurityConfigurationTaskRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        let patch = translate::patch_request(request.get_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let req = self
            .http
            .patch(self.url(&patch.id))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(patch.body);
        self.send(req).await.map(Response::new)
    }

    async fn get_security_configuration_task(
        &self,
        request: Request<GetSecurityConfigurationTaskRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        let id = IdSegment::new(&request.get_ref().id).map_err(Status::invalid_argument)?;
        self.send(self.http.get(self.url(&id)))
            .await
            .map(Response::new)
    }

    async fn list_security_configuration_tasks(
        &self,
        _: Request<ListSecurityConfigurationTasksRequest>,
    ) -> Result<Response<ListSecurityConfigurationTasksResponse>, Status> {
        Err(Status::unimplemented("the floor serves Update and Get"))
    }
}

/// Serves the floor on a loopback port until killed; configured from the
/// environment by the load tool that starts it.
pub async fn serve() -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let base: Url = var(ENV_GRAPH_BASE_URL)?.parse()?;
    let collection = Url::parse(&format!(
        "{}/deviceAppManagement/deviceAppManagementTasks",
        base.as_str().trim_end_matches('/')
    ))?;
    let max_streams: u32 = var(ENV_MAX_STREAMS)?.parse()?;
    let floor = Floor {
        http: http_client(false)?,
        collection,
        authorization: HeaderValue::from_str(&var(ENV_AUTHORIZATION)?)?,
    };
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse()?)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    eprintln!("{{\"message\":\"{SERVING}\",\"grpc_addr\":\"{addr}\"}}");
    let mut server = tonic::transport::Server::builder();
    if let (Ok(cert), Ok(key)) = (var(ENV_TLS_CERT_FILE), var(ENV_TLS_KEY_FILE)) {
        let identity =
            tonic::transport::Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    server
        .max_concurrent_streams(max_streams)
        .add_service(SecurityConfigurationTaskServiceServer::new(floor))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

//! The gRPC service: validate, translate, call Graph, map back.

mod call;

use crate::audit;
use crate::graph::{CallContext, GraphClient, GraphError, GraphResponse};
use crate::metrics::Metrics;
use crate::proto::v1::security_configuration_task_service_server::SecurityConfigurationTaskService;
use crate::proto::v1::{
    GetSecurityConfigurationTaskRequest, ListSecurityConfigurationTasksRequest,
    ListSecurityConfigurationTasksResponse, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use crate::security::access::Admitted;
use crate::security::identity::PeerInfo;
use crate::status::CallError;
use crate::translate::{self, IdSegment, InvalidRequest, UnknownEnumValue};
use call::{Call, Outcome};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Extra Graph pages read to fill a List answer that other task types left
/// empty, before answering with an empty page and a token.
const MAX_EXTRA_PAGES: usize = 4;

/// Serves `graphgateway.v1.SecurityConfigurationTaskService`.
pub struct TaskService {
    graph: Arc<GraphClient>,
    metrics: Arc<Metrics>,
}

impl TaskService {
    pub fn new(graph: Arc<GraphClient>, metrics: Arc<Metrics>) -> Self {
        Self { graph, metrics }
    }

    async fn run<T, F>(&self, mut call: Call, work: F) -> Result<Response<T>, Status>
    where
        F: std::future::Future<Output = Outcome<T>>,
    {
        let outcome = match call.check_metadata() {
            Ok(()) => work.instrument(call.span()).await,
            Err(e) => Err(e),
        };
        call.finish(&self.metrics, outcome)
    }

    fn count_unknown(&self, unknown: &[UnknownEnumValue]) {
        for u in unknown {
            self.metrics.unknown_enum_value(u.graph_type);
            tracing::debug!(graph_type = u.graph_type, value = %u.value, "unknown enum member read as UNSPECIFIED");
        }
    }

    fn read_task(&self, resp: &GraphResponse) -> Result<SecurityConfigurationTask, CallError> {
        let decoded =
            translate::task_from_graph(&resp.body).map_err(|error| CallError::Answer {
                error,
                request_id: resp.request_id.clone(),
            })?;
        self.count_unknown(&decoded.unknown_enum_values);
        Ok(decoded.task)
    }

    async fn get(
        &self,
        ctx: &CallContext,
        req: &GetSecurityConfigurationTaskRequest,
    ) -> Outcome<SecurityConfigurationTask> {
        let id = IdSegment::new(&req.id).map_err(|why| InvalidRequest::single("id", why))?;
        let resp = self.graph.get_task(&id, ctx).await?;
        Ok((self.read_task(&resp)?, resp.request_id))
    }

    async fn update(
        &self,
        ctx: &CallContext,
        req: &UpdateSecurityConfigurationTaskRequest,
        fields: &mut String,
    ) -> Outcome<SecurityConfigurationTask> {
        let patch = translate::patch_request(req)?;
        *fields = patch
            .fields
            .iter()
            .map(|f| f.proto_name())
            .collect::<Vec<_>>()
            .join(",");
        let resp = match self.graph.patch_task(&patch.id, patch.body, ctx).await {
            Ok(resp) => resp,
            // Graph answered success but the body broke off: the change was
            // taken, so read the task back rather than report a failure.
            Err(GraphError::Body(why)) => {
                tracing::info!(%why, "Graph took the PATCH but its answer broke off; reading the task back");
                let current = self.graph.get_task(&patch.id, ctx).await?;
                return Ok((self.read_task(&current)?, current.request_id));
            }
            Err(e) => return Err(e.into()),
        };
        let request_id = resp.request_id.clone();
        // Graph may take the change and answer 204 No Content: the task as
        // Graph now holds it is then read back. (A 200 whose body is not the
        // task is not trusted to mean Graph took it: that is an error.)
        let task = if resp.status == 204 || resp.body.is_empty() {
            let current = self.graph.get_task(&patch.id, ctx).await?;
            self.read_task(&current)?
        } else {
            self.read_task(&resp)?
        };
        Ok((task, request_id))
    }

    async fn list(
        &self,
        ctx: &CallContext,
        req: &ListSecurityConfigurationTasksRequest,
    ) -> Outcome<ListSecurityConfigurationTasksResponse> {
        let mut query = translate::list_query(req)?;
        let mut extra_pages = 0;
        loop {
            let resp = self.graph.list_tasks(&query, ctx).await?;
            let page =
                translate::page_from_graph(&resp.body).map_err(|error| CallError::Answer {
                    error,
                    request_id: resp.request_id.clone(),
                })?;
            self.count_unknown(&page.unknown_enum_values);
            let next_page_token = match page.next_link.as_deref() {
                Some(link) => translate::next_page_token(link, &req.filter)
                    .map_err(|error| CallError::Answer {
                        error,
                        request_id: resp.request_id.clone(),
                    })?
                    .unwrap_or_default(),
                None => String::new(),
            };
            if page.tasks.is_empty() && !next_page_token.is_empty() && extra_pages < MAX_EXTRA_PAGES
            {
                extra_pages += 1;
                let next = ListSecurityConfigurationTasksRequest {
                    page_token: next_page_token,
                    ..req.clone()
                };
                query = translate::list_query(&next)?;
                continue;
            }
            let answer = ListSecurityConfigurationTasksResponse {
                security_configuration_tasks: page.tasks,
                next_page_token,
            };
            return Ok((answer, resp.request_id));
        }
    }
}

#[tonic::async_trait]
impl SecurityConfigurationTaskService for TaskService {
    async fn get_security_configuration_task(
        &self,
        request: Request<GetSecurityConfigurationTaskRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        let call = Call::start("GetSecurityConfigurationTask", &request);
        let ctx = call.ctx.clone();
        self.run(call, self.get(&ctx, request.get_ref())).await
    }

    async fn list_security_configuration_tasks(
        &self,
        request: Request<ListSecurityConfigurationTasksRequest>,
    ) -> Result<Response<ListSecurityConfigurationTasksResponse>, Status> {
        let call = Call::start("ListSecurityConfigurationTasks", &request);
        let ctx = call.ctx.clone();
        self.run(call, self.list(&ctx, request.get_ref())).await
    }

    async fn update_security_configuration_task(
        &self,
        request: Request<UpdateSecurityConfigurationTaskRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        const RPC: &str = "UpdateSecurityConfigurationTask";
        let call = Call::start(RPC, &request);
        let ctx = call.ctx.clone();
        let mut fields = String::new();
        let answer = self
            .run(call, self.update(&ctx, request.get_ref(), &mut fields))
            .await;
        let (code, metadata) = match &answer {
            Ok(resp) => (tonic::Code::Ok, resp.metadata()),
            Err(status) => (status.code(), status.metadata()),
        };
        let admitted = request.extensions().get::<Admitted>();
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.remote)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let task_id = request
            .get_ref()
            .security_configuration_task
            .as_ref()
            .map_or("", |t| t.id.as_str());
        audit::update(&audit::UpdateRecord {
            rpc: RPC,
            caller: admitted.map_or("anonymous", |a| &a.caller),
            via: admitted.map_or("none", |a| a.via),
            peer: &peer,
            // Ids longer than any valid one were refused; the record keeps a bounded prefix.
            task_id: truncate(task_id, translate::MAX_ID_BYTES),
            fields: &fields,
            code,
            graph_request_id: metadata
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
            client_request_id: &ctx.client_request_id,
        });
        answer
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

//! The gRPC service: validate, translate, call Graph, map back.

mod abandon;
mod batch_get;
mod batch_set_status;
mod batch_update;
mod batch_write;
mod call;
mod create;
mod delete;
mod idempotent;
mod mutation;
mod record;
mod set_status;
mod update;
mod write;

use crate::config::Retention;
use crate::graph::{CallContext, GraphClient, GraphResponse};
use crate::idempotency::Idempotency;
use crate::methods::Method;
use crate::metrics::Metrics;
use crate::proto::v1::security_configuration_task_service_server::SecurityConfigurationTaskService;
use crate::proto::v1::{
    BatchGetSecurityConfigurationTasksRequest, BatchGetSecurityConfigurationTasksResponse,
    BatchSetSecurityConfigurationTaskStatusRequest,
    BatchSetSecurityConfigurationTaskStatusResponse, BatchUpdateSecurityConfigurationTasksRequest,
    BatchUpdateSecurityConfigurationTasksResponse, CreateSecurityConfigurationTaskRequest,
    DeleteSecurityConfigurationTaskRequest, GetSecurityConfigurationTaskRequest,
    ListSecurityConfigurationTasksRequest, ListSecurityConfigurationTasksResponse,
    SecurityConfigurationTask, SetSecurityConfigurationTaskStatusRequest,
    UpdateSecurityConfigurationTaskRequest,
};
use crate::status::CallError;
use crate::translate::{self, IdSegment, InvalidRequest, UnknownEnumValue};
pub use abandon::Updates;
pub use call::{record_code, server_span, ServerSpan};
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
    updates: Updates,
    /// The answers to calls with a `request_id`, for their retries.
    idempotency: Idempotency,
}

impl TaskService {
    pub fn new(graph: Arc<GraphClient>, metrics: Arc<Metrics>) -> Self {
        Self {
            graph,
            updates: Updates::default(),
            idempotency: Idempotency::counted(
                Retention::default().window,
                Retention::default().max_entries,
                metrics.idempotency_entries(),
            ),
            metrics,
        }
    }

    /// Serves with this store of answers to calls with a `request_id`.
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = idempotency;
        self
    }

    /// The updates in progress, for the end of the drain to stop.
    pub fn updates(&self) -> Updates {
        self.updates.clone()
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

    /// Reads the answer to a request for the task `asked`; `applied`: the
    /// answer is Graph's success to a write.
    fn read_task(
        &self,
        resp: &GraphResponse,
        asked: &str,
        applied: bool,
    ) -> Result<SecurityConfigurationTask, CallError> {
        let decoded =
            translate::task_answer(&resp.body, asked).map_err(|error| CallError::Answer {
                error,
                request_id: resp.request_id.clone(),
                applied,
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
        Ok((self.read_task(&resp, &req.id, false)?, resp.request_id))
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
                    applied: false,
                })?;
            self.count_unknown(&page.unknown_enum_values);
            let next_page_token = match page.next_link.as_deref() {
                Some(link) => translate::next_page_token(link, &req.filter)
                    .map_err(|error| CallError::Answer {
                        error,
                        request_id: resp.request_id.clone(),
                        applied: false,
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
        let call = Call::start(Method::Get.name(), &request);
        let ctx = call.ctx.clone();
        self.run(call, self.get(&ctx, request.get_ref())).await
    }

    async fn batch_get_security_configuration_tasks(
        &self,
        request: Request<BatchGetSecurityConfigurationTasksRequest>,
    ) -> Result<Response<BatchGetSecurityConfigurationTasksResponse>, Status> {
        let call = Call::start(Method::BatchGet.name(), &request);
        let ctx = call.ctx.clone();
        self.run(call, self.batch_get(&ctx, request.get_ref()))
            .await
    }

    async fn list_security_configuration_tasks(
        &self,
        request: Request<ListSecurityConfigurationTasksRequest>,
    ) -> Result<Response<ListSecurityConfigurationTasksResponse>, Status> {
        let call = Call::start(Method::List.name(), &request);
        let ctx = call.ctx.clone();
        self.run(call, self.list(&ctx, request.get_ref())).await
    }

    async fn update_security_configuration_task(
        &self,
        request: Request<UpdateSecurityConfigurationTaskRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        self.mutate(request, |s, ctx, req, p| Box::pin(s.update(ctx, req, p)))
            .await
    }

    async fn create_security_configuration_task(
        &self,
        request: Request<CreateSecurityConfigurationTaskRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        self.mutate(request, |s, ctx, req, p| Box::pin(s.create(ctx, req, p)))
            .await
    }

    async fn delete_security_configuration_task(
        &self,
        request: Request<DeleteSecurityConfigurationTaskRequest>,
    ) -> Result<Response<()>, Status> {
        self.mutate(request, |s, ctx, req, p| Box::pin(s.delete(ctx, req, p)))
            .await
    }

    async fn set_security_configuration_task_status(
        &self,
        request: Request<SetSecurityConfigurationTaskStatusRequest>,
    ) -> Result<Response<SecurityConfigurationTask>, Status> {
        self.mutate(request, |s, ctx, req, p| {
            Box::pin(s.set_status(ctx, req, p))
        })
        .await
    }

    async fn batch_update_security_configuration_tasks(
        &self,
        request: Request<BatchUpdateSecurityConfigurationTasksRequest>,
    ) -> Result<Response<BatchUpdateSecurityConfigurationTasksResponse>, Status> {
        self.mutate(request, |s, ctx, req, p| {
            Box::pin(s.batch_update(ctx, req, p))
        })
        .await
    }

    async fn batch_set_security_configuration_task_status(
        &self,
        request: Request<BatchSetSecurityConfigurationTaskStatusRequest>,
    ) -> Result<Response<BatchSetSecurityConfigurationTaskStatusResponse>, Status> {
        self.mutate(request, |s, ctx, req, p| {
            Box::pin(s.batch_set_status(ctx, req, p))
        })
        .await
    }
}

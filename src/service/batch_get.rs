//! A batch read (AIP-231): up to 1,000 tasks in one call, read with Graph
//! JSON batching, in the order asked. Atomic: the first item that fails, in
//! the request's order, fails the call with the status a Get of it alone
//! would have had (`NOT_FOUND`, `FAILED_PRECONDITION` for another task
//! type, ...), naming it as `ids[3]`. Throttled reads are sent again inside
//! the batch (see `graph::batching`).

use super::call::Outcome;
use super::write::read_item;
use super::TaskService;
use crate::graph::batch::Item;
use crate::graph::CallContext;
use crate::proto::v1::{
    BatchGetSecurityConfigurationTasksRequest, BatchGetSecurityConfigurationTasksResponse,
};
use crate::status::CallError;
use crate::translate;

impl TaskService {
    pub(super) async fn batch_get(
        &self,
        ctx: &CallContext,
        req: &BatchGetSecurityConfigurationTasksRequest,
    ) -> Outcome<BatchGetSecurityConfigurationTasksResponse> {
        let ids = translate::batch_ids(&req.ids)?;
        let items: Vec<Item> = ids.iter().map(read_item).collect();
        let answers = self.graph.batch(&items, ctx).await;
        let mut tasks = Vec::with_capacity(answers.len());
        let mut request_id = None;
        for (index, (answer, asked)) in answers.into_iter().zip(&req.ids).enumerate() {
            let item = |error: CallError| CallError::Item {
                field: "ids",
                index,
                id: asked.clone(),
                error: Box::new(error),
            };
            let resp = answer.result.map_err(|e| item(e.into()))?;
            tasks.push(self.read_task(&resp, asked, false).map_err(item)?);
            request_id = request_id.or(resp.request_id);
        }
        Ok((
            BatchGetSecurityConfigurationTasksResponse {
                security_configuration_tasks: tasks,
            },
            request_id,
        ))
    }
}

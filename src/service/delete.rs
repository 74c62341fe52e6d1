//! Deleting a task: `DELETE` on the task, after a read that checks its type.

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::graph::CallContext;
use crate::proto::v1::DeleteSecurityConfigurationTaskRequest;
use crate::status::CallError;
use crate::translate::InvalidRequest;

impl TaskService {
    pub(super) async fn delete(
        &self,
        _ctx: &CallContext,
        _req: &DeleteSecurityConfigurationTaskRequest,
        _progress: &mut Progress,
    ) -> Outcome<()> {
        Err(CallError::Invalid(InvalidRequest::single(
            "id",
            "DeleteSecurityConfigurationTask is not served yet",
        )))
    }
}

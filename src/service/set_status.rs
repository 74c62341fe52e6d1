//! Setting a task's status: Graph's `updateStatus` action.

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::graph::CallContext;
use crate::proto::v1::{SecurityConfigurationTask, SetSecurityConfigurationTaskStatusRequest};
use crate::status::CallError;
use crate::translate::InvalidRequest;

impl TaskService {
    pub(super) async fn set_status(
        &self,
        _ctx: &CallContext,
        _req: &SetSecurityConfigurationTaskStatusRequest,
        _progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        Err(CallError::Invalid(InvalidRequest::single(
            "status",
            "SetSecurityConfigurationTaskStatus is not served yet",
        )))
    }
}

//! Creating a task: `POST` on the collection.

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::graph::CallContext;
use crate::proto::v1::{CreateSecurityConfigurationTaskRequest, SecurityConfigurationTask};
use crate::status::CallError;
use crate::translate::InvalidRequest;

impl TaskService {
    pub(super) async fn create(
        &self,
        _ctx: &CallContext,
        _req: &CreateSecurityConfigurationTaskRequest,
        _progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        Err(CallError::Invalid(InvalidRequest::single(
            "security_configuration_task",
            "CreateSecurityConfigurationTask is not served yet",
        )))
    }
}

//! One path for every mutating call (Create, Update, Delete, SetStatus):
//! the call's bookkeeping (ids, deadline, metrics, log line), its one audit
//! record (armed before any work, written even if the call is dropped), and
//! stopping when the drain ends. A handler only does its operation's work
//! and says what it learnt in [`Progress`].

use super::abandon::Running;
use super::call::{Call, Outcome};
use super::record::{Audit, Progress};
use super::TaskService;
use crate::graph::CallContext;
use crate::methods::Method;
use crate::proto::v1::{
    CreateSecurityConfigurationTaskRequest, DeleteSecurityConfigurationTaskRequest,
    SetSecurityConfigurationTaskStatusRequest, UpdateSecurityConfigurationTaskRequest,
};
use std::future::Future;
use std::pin::Pin;
use tonic::{Request, Response, Status};

/// What the shared path needs to know of a mutating request.
pub trait MutatingRequest: prost::Message + Default + Send + Sync + 'static {
    /// The RPC it is the request of.
    const METHOD: Method;
    /// The task it names; empty when it names none (Create).
    fn task_id(&self) -> &str;
    /// The caller's AIP-155 `request_id`; empty when not given.
    fn request_id(&self) -> &str;
    /// AIP-163: check everything, change nothing.
    fn validate_only(&self) -> bool;
}

impl MutatingRequest for UpdateSecurityConfigurationTaskRequest {
    const METHOD: Method = Method::Update;
    fn task_id(&self) -> &str {
        self.security_configuration_task
            .as_ref()
            .map_or("", |t| t.id.as_str())
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn validate_only(&self) -> bool {
        self.validate_only
    }
}

impl MutatingRequest for CreateSecurityConfigurationTaskRequest {
    const METHOD: Method = Method::Create;
    fn task_id(&self) -> &str {
        ""
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn validate_only(&self) -> bool {
        self.validate_only
    }
}

impl MutatingRequest for DeleteSecurityConfigurationTaskRequest {
    const METHOD: Method = Method::Delete;
    fn task_id(&self) -> &str {
        &self.id
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn validate_only(&self) -> bool {
        self.validate_only
    }
}

impl MutatingRequest for SetSecurityConfigurationTaskStatusRequest {
    const METHOD: Method = Method::SetStatus;
    fn task_id(&self) -> &str {
        &self.id
    }
    fn request_id(&self) -> &str {
        &self.request_id
    }
    fn validate_only(&self) -> bool {
        self.validate_only
    }
}

/// A handler's work, borrowing the service, the call and its record.
pub type Work<'a, T> = Pin<Box<dyn Future<Output = Outcome<T>> + Send + 'a>>;

impl TaskService {
    /// Runs one mutating call: `work` is the operation's handler.
    pub(super) async fn mutate<R, T, F>(
        &self,
        request: Request<R>,
        work: F,
    ) -> Result<Response<T>, Status>
    where
        R: MutatingRequest,
        F: for<'a> FnOnce(&'a TaskService, &'a CallContext, &'a R, &'a mut Progress) -> Work<'a, T>,
    {
        let call = Call::start(R::METHOD.name(), &request);
        let ctx = call.ctx.clone();
        // Armed before any work: if the call is dropped from here on, the
        // record is still written.
        let mut record = Audit::start(&request, &ctx);
        let mut running: Running = self.updates.start();
        let answer = tokio::select! {
            answer = self.run(call, work(self, &ctx, request.get_ref(), &mut record.progress)) => answer,
            () = running.abandoned() => {
                // The record says CANCELLED, with what is known of the outcome.
                drop(record);
                return Err(Status::cancelled(
                    "the gateway stopped before the call finished; read the task to know whether it was changed",
                ));
            }
        };
        record.finish(&answer);
        answer
    }
}

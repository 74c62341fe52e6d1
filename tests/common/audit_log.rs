//! Audit records captured in-process: a tracing layer that keeps every
//! event of the `audit` target as field name -> text. Installed as the
//! thread's default, so a test on tokio's current-thread runtime (where the
//! gateway's tasks run on the test's own thread) sees every record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One audit record's fields.
pub type AuditRecord = HashMap<String, String>;

/// The records written so far, shared with the layer.
#[derive(Clone, Default)]
pub struct AuditLog(Arc<Mutex<Vec<AuditRecord>>>);

impl AuditLog {
    /// Starts capturing on this thread until the guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let log = Self::default();
        let subscriber = tracing_subscriber::registry().with(Capture(log.clone()));
        (log.clone(), tracing::subscriber::set_default(subscriber))
    }

    /// Every record so far, in order.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.0.lock().expect("audit log").clone()
    }

    /// The records of `rpc`, in order.
    pub fn of(&self, rpc: &str) -> Vec<AuditRecord> {
        self.records()
            .into_iter()
            .filter(|r| r.get("rpc").map(String::as_str) == Some(rpc))
            .collect()
    }
}

struct Capture(AuditLog);

struct Fields<'a>(&'a mut AuditRecord);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "audit" {
            return;
        }
        let mut record = AuditRecord::new();
        event.record(&mut Fields(&mut record));
        self.0 .0.lock().expect("audit log").push(record);
    }
}

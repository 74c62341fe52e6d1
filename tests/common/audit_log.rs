//! Audit records captured in-process, as field name -> text, read from the
//! log lines [`super::logs::Logs`] captures on the test's thread (the
//! tests' runtimes are single threaded, so the gateway's tasks log there).

use super::logs::{Capturing, Logs};
use serde_json::Value;
use std::collections::HashMap;

/// One audit record's fields, each as text (`true`, `3`, `applied`).
pub type AuditRecord = HashMap<String, String>;

/// The records written so far on this thread.
#[derive(Clone)]
pub struct AuditLog(Logs);

impl AuditLog {
    /// Starts capturing on this thread until the guard is dropped.
    pub fn capture() -> (Self, Capturing) {
        let (logs, guard) = Logs::capture();
        (Self(logs), guard)
    }

    /// Every record so far, in order.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.0
            .audits()
            .into_iter()
            .map(|v| match v {
                Value::Object(fields) => fields
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => (k, s),
                        other => (k, other.to_string()),
                    })
                    .collect(),
                _ => AuditRecord::new(),
            })
            .collect()
    }

    /// The records of `rpc`, in order.
    pub fn of(&self, rpc: &str) -> Vec<AuditRecord> {
        self.records()
            .into_iter()
            .filter(|r| r.get("rpc").map(String::as_str) == Some(rpc))
            .collect()
    }
}

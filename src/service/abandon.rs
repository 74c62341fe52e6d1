//! Updates still running when the drain ends. The server stops waiting for
//! them, but their streams' tasks are not the server's to cancel, and a
//! record written as the process exits would be lost. So the end of the
//! drain tells each update to stop, and waits (briefly) for their records.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Shared by the service and the server's shutdown.
#[derive(Clone)]
pub struct Updates(Arc<Inner>);

struct Inner {
    stop: watch::Sender<bool>,
    running: AtomicUsize,
    finished: Notify,
}

impl Default for Updates {
    fn default() -> Self {
        Self(Arc::new(Inner {
            stop: watch::channel(false).0,
            running: AtomicUsize::new(0),
            finished: Notify::new(),
        }))
    }
}

/// One update in progress; counted until dropped.
pub struct Running {
    updates: Updates,
    stop: watch::Receiver<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.updates.0.running.fetch_sub(1, Ordering::AcqRel);
        self.updates.0.finished.notify_waiters();
    }
}

impl Running {
    /// Completes when the drain has ended and the update must stop.
    pub async fn abandoned(&mut self) {
        // The sender lives as long as `updates`, which this holds.
        let _ = self.stop.wait_for(|stop| *stop).await;
    }
}

impl Updates {
    /// Counts an update until the returned guard is dropped.
    pub fn start(&self) -> Running {
        self.0.running.fetch_add(1, Ordering::AcqRel);
        Running {
            updates: self.clone(),
            stop: self.0.stop.subscribe(),
        }
    }

    /// Tells every running update to stop and waits up to `limit` for them
    /// to have written their records; returns how many were still running.
    pub async fn abandon(&self, limit: Duration) -> usize {
        self.0.stop.send_replace(true);
        let _ = tokio::time::timeout(limit, async {
            loop {
                let finished = self.0.finished.notified();
                tokio::pin!(finished);
                finished.as_mut().enable();
                if self.0.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                finished.await;
            }
        })
        .await;
        self.0.running.load(Ordering::Acquire)
    }
}

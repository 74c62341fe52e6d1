//! The span queue: a span is encoded as it ends (on the thread that ends
//! it) into a bounded queue of batches in memory, and one thread, with a
//! small runtime of its own, exports the batches.
//!
//! A span's end costs its encoding, a lock and a copy of its bytes: the
//! export thread is woken only when the queue gets its first span or a
//! batch fills, not once per span (a wake-up per span, through a channel,
//! cost more CPU per call than the span itself), and a batch's buffer goes
//! back to the queue once exported, so a busy queue allocates nothing. A
//! slow or dead collector fills the queue; spans that find it full are
//! dropped and counted, and no call waits for the collector.

use super::collector::Collector;
use super::otel::{TraceSettings, SPANS};
use super::otlp::{encode_span_field, Record};
use std::cell::RefCell;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Spans held for export at most; more are dropped.
pub const QUEUE_SPANS: usize = 2048;
/// Spans sent in one export at most.
const BATCH_SPANS: usize = 512;
/// How long a span waits for others to share its export.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// How long one export may take before its spans count as failed.
pub(super) const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Encoded spans (`ScopeSpans.spans` fields, one after another), sent in
/// one export.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    spans: usize,
}

/// What the calls hand the export thread.
#[derive(Debug, Default)]
struct Pending {
    /// Of [`BATCH_SPANS`] spans at most; the last one is being filled.
    batches: Vec<Batch>,
    /// Spans in `batches`.
    spans: usize,
    /// Buffers of exported batches, for the next ones.
    spare: Vec<Vec<u8>>,
    /// When the oldest queued span came.
    since: Option<Instant>,
    /// Callers waiting for everything queued to be exported.
    flushes: Vec<mpsc::Sender<()>>,
    /// The processor is gone: export what is left and stop.
    closed: bool,
}

impl Pending {
    /// Queues one encoded span; answers whether the export thread must
    /// be woken (the queue's first span, or a full batch).
    fn push(&mut self, span: &[u8]) -> bool {
        if !matches!(self.batches.last(), Some(last) if last.spans < BATCH_SPANS) {
            let bytes = self.spare.pop().unwrap_or_default();
            self.batches.push(Batch { bytes, spans: 0 });
        }
        let Some(batch) = self.batches.last_mut() else {
            return false;
        };
        batch.bytes.extend_from_slice(span);
        batch.spans += 1;
        self.spans += 1;
        self.since.get_or_insert_with(Instant::now);
        self.spans == 1 || batch.spans == BATCH_SPANS
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain data behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queue the trace layer hands ended spans to.
#[derive(Debug)]
pub struct Queue {
    shared: Arc<Shared>,
}

impl Queue {
    /// The queue, and its export thread started.
    pub fn start(settings: TraceSettings) -> Arc<Self> {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("trace-export".into())
            .spawn(move || export_loop(&settings, &theirs));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the trace exporter; spans will be dropped");
            shared.lock().closed = true;
        }
        Arc::new(Self { shared })
    }

    /// Waits until what is queued now was exported (or failed), for
    /// `timeout` at most.
    pub fn flush(&self, timeout: Duration) -> Result<(), Duration> {
        let (ack, done) = mpsc::channel();
        {
            let mut pending = self.shared.lock();
            if pending.closed {
                return Ok(());
            }
            pending.flushes.push(ack);
        }
        self.shared.wake.notify_one();
        done.recv_timeout(timeout).map_err(|_| timeout)
    }

    /// Exports what is queued, within `timeout`, and stops the thread.
    pub fn shutdown(&self, timeout: Duration) {
        let _ = self.flush(timeout);
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

thread_local! {
    /// Where a span is encoded before it is queued, so the queue's lock is
    /// held only to copy it.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl super::spans::Sink for Queue {
    fn push(&self, span: &Record) {
        let queued = ENCODED.with(|encoded| {
            let mut encoded = encoded.borrow_mut();
            encoded.clear();
            encode_span_field(span, &mut encoded);
            let mut pending = self.shared.lock();
            if pending.closed || pending.spans >= QUEUE_SPANS {
                None
            } else {
                Some(pending.push(&encoded))
            }
        });
        match queued {
            None => SPANS.dropped("queue_full", 1),
            // The thread sleeps while the queue is empty, and until a batch
            // is due otherwise: only these two need it awake.
            Some(true) => self.shared.wake.notify_one(),
            Some(false) => {}
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// What the export thread takes from the queue in one go.
struct Taken {
    batches: Vec<Batch>,
    flushes: Vec<mpsc::Sender<()>>,
    closed: bool,
}

/// Waits until a batch is full, the oldest span has waited
/// [`BATCH_DELAY`], someone asks for a flush, or the processor is gone;
/// then takes what is there.
fn take(shared: &Shared) -> Taken {
    let mut pending = shared.lock();
    loop {
        let due = pending.since.map(|at| at + BATCH_DELAY);
        let now = Instant::now();
        if pending.closed
            || !pending.flushes.is_empty()
            || pending.spans >= BATCH_SPANS
            || due.is_some_and(|due| due <= now)
        {
            break;
        }
        pending = match due {
            None => shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner()),
            Some(due) => {
                shared
                    .wake
                    .wait_timeout(pending, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
    pending.since = None;
    pending.spans = 0;
    Taken {
        batches: std::mem::take(&mut pending.batches),
        flushes: std::mem::take(&mut pending.flushes),
        closed: pending.closed,
    }
}

/// The export thread: a current-thread runtime of its own (the OTLP
/// clients need one), batches of up to [`BATCH_SPANS`], each written into
/// one buffer kept from batch to batch.
fn export_loop(settings: &TraceSettings, shared: &Shared) {
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            let collector = rt.block_on(async { Collector::new(settings) });
            collector.map(|c| (rt, c))
        });
    let (runtime, collector) = match built {
        Ok(built) => built,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the trace exporter; spans will be dropped");
            let mut pending = shared.lock();
            pending.closed = true;
            let lost = std::mem::take(&mut pending.spans);
            pending.batches.clear();
            SPANS.dropped("export_failed", lost as u64);
            return;
        }
    };
    let envelope = settings.envelope();
    let mut buf = Vec::new();
    loop {
        let taken = take(shared);
        let mut spare = Vec::with_capacity(taken.batches.len());
        for mut batch in taken.batches {
            envelope.encode_encoded(&batch.bytes, &mut buf);
            export(&runtime, &collector, &buf, batch.spans as u64);
            batch.bytes.clear();
            spare.push(batch.bytes);
        }
        shared.lock().spare.append(&mut spare);
        for ack in taken.flushes {
            let _ = ack.send(());
        }
        if taken.closed {
            // Flushes that came after the last take are answered by the
            // dropped sender: their `recv` fails at once.
            return;
        }
    }
}

fn export(runtime: &tokio::runtime::Runtime, collector: &Collector, request: &[u8], n: u64) {
    let result = runtime
        .block_on(async { tokio::time::timeout(EXPORT_TIMEOUT, collector.send(request)).await });
    match result {
        Ok(Ok(())) => {
            SPANS.exported.inc_by(n);
        }
        Ok(Err(e)) => {
            SPANS.dropped("export_failed", n);
            tracing::debug!(error = %e, spans = n, "the trace collector refused an export");
        }
        Err(_) => {
            SPANS.dropped("export_failed", n);
            tracing::debug!(spans = n, "an export to the trace collector timed out");
        }
    }
}

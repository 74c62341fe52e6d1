//! The log writer: lines are appended to one shared buffer on the calling
//! thread, and a writer thread writes whatever has gathered every
//! [`INTERVAL`], in one `write`.
//!
//! Loggers never wake the writer thread while it is active, so a busy
//! gateway pays one wake-up per interval rather than one per line (waking a
//! thread for each audit record cost about 20 µs of latency per update at
//! one call in flight), and no line is allocated on its own. An idle writer
//! sleeps until the next line. The buffer is bounded: past [`CAPACITY`]
//! bytes a logger waits for the writer, so no line is ever dropped.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long lines may gather before they are written while logging is busy.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// Bytes gathered past which the writer is woken before its interval ends.
const EARLY: usize = 256 * 1024;
/// Bytes gathered past which loggers wait for the writer.
pub const CAPACITY: usize = 4 * 1024 * 1024;

struct Pending {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled after each drain, for loggers waiting on a full buffer.
    drained: Condvar,
    /// True while the writer sleeps with no deadline: the next line wakes it.
    idle: AtomicBool,
    writer: Thread,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.lock();
        while pending.buf.len() >= CAPACITY && !pending.closed {
            self.writer.unpark();
            pending = self
                .drained
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let before = pending.buf.len();
        pending.buf.extend_from_slice(line);
        let early = before < EARLY && pending.buf.len() >= EARLY;
        drop(pending);
        if self.idle.swap(false, Ordering::SeqCst) || early {
            self.writer.unpark();
        }
    }
}

/// The writer the subscriber formats into; cheap to clone. Without a writer
/// thread (none could be started) each line goes straight to stderr.
#[derive(Clone)]
pub struct Batched {
    shared: Option<Arc<Shared>>,
}

/// Writes what is still gathered and stops the writer thread when dropped.
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.writer.unpark();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the writer thread, writing to `out`; the guard is `None` when no
/// thread could be started.
pub fn spawn<W: Write + Send + 'static>(out: W) -> (Batched, Option<Guard>) {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let started = thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            if let Ok(shared) = rx.recv() {
                run(&shared, out);
            }
        });
    let Ok(thread) = started else {
        return (Batched { shared: None }, None);
    };
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            buf: Vec::with_capacity(64 * 1024),
            closed: false,
        }),
        drained: Condvar::new(),
        idle: AtomicBool::new(false),
        writer: thread.thread().clone(),
    });
    // The thread is only told what to drain once the handle it is woken
    // through exists.
    let _ = tx.send(shared.clone());
    (
        Batched {
            shared: Some(shared.clone()),
        },
        Some(Guard {
            shared,
            thread: Some(thread),
        }),
    )
}

fn run<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        let (batch, closed) = {
            let mut pending = shared.lock();
            let batch = if pending.buf.is_empty() {
                None
            } else {
                Some(std::mem::replace(
                    &mut pending.buf,
                    std::mem::take(&mut spare),
                ))
            };
            (batch, pending.closed)
        };
        match batch {
            Some(mut batch) => {
                shared.drained.notify_all();
                // A failed write (stderr closed) loses these lines, as a
                // direct write would; logging goes on.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
                // Keep a burst's buffer for reuse, but not a huge one.
                batch.shrink_to(CAPACITY / 16);
                spare = batch;
                if !closed {
                    thread::park_timeout(INTERVAL);
                }
            }
            None if closed => return,
            None => {
                // Say we sleep, then look once more: a line appended in
                // between either is seen here or finds `idle` set and wakes us.
                shared.idle.store(true, Ordering::SeqCst);
                let empty = {
                    let pending = shared.lock();
                    pending.buf.is_empty() && !pending.closed
                };
                if empty {
                    thread::park();
                }
                shared.idle.store(false, Ordering::SeqCst);
            }
        }
    }
}

/// One event's writer: the formatter writes the whole line through it.
pub struct LineWriter<'a>(Line<'a>);

enum Line<'a> {
    Gathered(&'a Shared),
    Direct(io::Stderr),
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Line::Gathered(shared) => {
                shared.append(buf);
                Ok(buf.len())
            }
            Line::Direct(err) => err.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Line::Gathered(_) => Ok(()),
            Line::Direct(err) => err.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        match &self.shared {
            Some(shared) => LineWriter(Line::Gathered(shared)),
            None => LineWriter(Line::Direct(io::stderr())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read after the guard has been dropped.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn shared(w: &Batched) -> &Shared {
        w.shared.as_deref().expect("a writer thread")
    }

    fn line(w: &Batched, text: &str) {
        w.make_writer().write_all(text.as_bytes()).expect("append");
    }

    #[test]
    fn every_line_from_every_thread_is_written_whole_and_in_order_per_thread() {
        let sink = Sink::default();
        let (w, guard) = spawn(sink.clone());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                thread::spawn(move || {
                    for i in 0..5_000 {
                        line(&w, &format!("t{t} {i}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("logger");
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf-8");
        let mut next = [0u32; 8];
        for l in out.lines() {
            let (t, i) = l[1..].split_once(' ').expect("whole line");
            let t: usize = t.parse().expect("thread");
            assert_eq!(i.parse::<u32>().expect("index"), next[t], "line {l}");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 8]);
    }

    #[test]
    fn lines_logged_after_a_quiet_spell_are_written() {
        let sink = Sink::default();
        let (w, guard) = spawn(sink.clone());
        line(&w, "first\n");
        // Wait until the writer has written it and gone back to sleep.
        let written_and_asleep =
            || shared(&w).idle.load(Ordering::SeqCst) && !sink.0.lock().expect("sink").is_empty();
        while !written_and_asleep() {
            thread::yield_now();
        }
        line(&w, "second\n");
        while sink.0.lock().expect("sink").len() < "first\nsecond\n".len() {
            thread::yield_now();
        }
        drop(guard);
        assert_eq!(&*sink.0.lock().expect("sink"), b"first\nsecond\n");
    }

    /// An output that takes nothing until the test opens it.
    struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, cv) = &*self.0;
            let mut o = open.lock().expect("gate");
            while !*o {
                o = cv.wait(o).expect("gate");
            }
            self.1.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_buffer_makes_loggers_wait_rather_than_drop_lines() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (w, guard) = spawn(Gate(gate.clone(), sink.clone()));
        let chunk = "x".repeat(1023) + "\n";
        let total = 3 * CAPACITY / chunk.len();
        let logger = {
            let w = w.clone();
            thread::spawn(move || {
                for _ in 0..total {
                    line(&w, &chunk);
                }
            })
        };
        // The writer is stuck in its first write; the logger fills the
        // buffer and then must wait, holding no more than the capacity.
        loop {
            let held = shared(&w).lock().buf.len();
            assert!(held < CAPACITY + 1024, "the buffer grew past its bound");
            if held >= CAPACITY {
                break;
            }
            thread::yield_now();
        }
        assert!(!logger.is_finished(), "the logger waits for room");
        *gate.0.lock().expect("gate") = true;
        gate.1.notify_all();
        logger.join().expect("logger");
        drop(guard);
        assert_eq!(sink.0.lock().expect("sink").len(), total * 1024);
    }
}

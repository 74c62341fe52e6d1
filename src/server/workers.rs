//! The gRPC port served per core: besides the main thread's runtime, one
//! thread per further core, each with a single-threaded runtime and its own
//! `SO_REUSEPORT` listener on the same address, so the kernel spreads new
//! connections over the threads and every call is served where its
//! connection lives: read, handled, sent to Graph and answered on one
//! thread, with no wake-up of another (what the work-stealing runtime spends
//! on every call; PERFORMANCE.md).
//!
//! Everything behind the listeners is shared: the service, the caller
//! policy, the caps on connections and calls, Graph's budget and tokens.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

/// The kernel's queue of connections not yet accepted, per listener.
const BACKLOG: u32 = 1024;

/// Binds `addr` for the gRPC port. With `shared`, the socket is bound with
/// `SO_REUSEPORT`, so the other workers' listeners can bind it too.
pub fn bind(addr: SocketAddr, shared: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if shared {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The workers beside the main thread's runtime.
pub struct Workers {
    done: Vec<oneshot::Receiver<Result<(), String>>>,
    abort: watch::Sender<bool>,
}

impl Workers {
    /// Starts `count` workers, each serving its own listener on `addr` (the
    /// address the main thread's listener is bound to, port included) with
    /// `serve`, until `serve`'s future ends. Answers once every listener is
    /// bound, or with the first that could not be.
    pub fn start<F, Fut>(count: usize, addr: SocketAddr, serve: F) -> anyhow::Result<Self>
    where
        F: Fn(TcpListener) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<(), String>>,
    {
        let (abort, aborted) = watch::channel(false);
        let mut done = Vec::with_capacity(count);
        for worker in 1..=count {
            let (bound_tx, bound_rx) = std::sync::mpsc::channel::<io::Result<()>>();
            let (done_tx, done_rx) = oneshot::channel();
            let serve = serve.clone();
            let mut aborted = aborted.clone();
            std::thread::Builder::new()
                .name(format!("grpc-worker-{worker}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let listener = match bind(addr, true) {
                            Ok(listener) => listener,
                            Err(e) => {
                                let _ = bound_tx.send(Err(e));
                                return;
                            }
                        };
                        let _ = bound_tx.send(Ok(()));
                        let outcome = tokio::select! {
                            outcome = serve(listener) => outcome,
                            // The drain ran out: stop serving; the runtime's
                            // remaining tasks end with it.
                            _ = aborted.wait_for(|a| *a) => Ok(()),
                        };
                        let _ = done_tx.send(outcome);
                    });
                })?;
            match bound_rx.recv() {
                Ok(Ok(())) => done.push(done_rx),
                Ok(Err(e)) => {
                    let _ = abort.send(true);
                    return Err(anyhow::Error::new(e)
                        .context(format!("gRPC worker {worker} binding {addr}")));
                }
                Err(_) => {
                    let _ = abort.send(true);
                    anyhow::bail!("gRPC worker {worker} stopped before binding {addr}");
                }
            }
        }
        Ok(Self { done, abort })
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    /// Waits for every worker to stop serving (after the stop signal their
    /// `serve` futures watch): the first error, if any.
    pub async fn finished(&mut self) -> Result<(), String> {
        let mut first = Ok(());
        for done in &mut self.done {
            let outcome = done
                .await
                .unwrap_or_else(|_| Err("a gRPC worker stopped unexpectedly".to_owned()));
            if first.is_ok() {
                first = outcome;
            }
        }
        first
    }

    /// Stops every worker now, with whatever calls it still has.
    pub fn abort(&self) {
        let _ = self.abort.send(true);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.abort();
    }
}

//! The HTTP clients Graph calls are sent with: one per thread that sends
//! them, so each per-core worker has a connection pool of its own. A pooled
//! connection is driven by the runtime that opened it; a call that borrowed
//! one opened by another worker would wake that worker twice (request out,
//! answer in), which costs more than the call's own work (PERFORMANCE.md).

use std::sync::Arc;
use thread_local::ThreadLocal;

/// Where a Graph call gets its client `C`.
pub struct Clients<C: Send>(Arc<Inner<C>>);

impl<C: Send> Clone for Clients<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

type Make<C> = Arc<dyn Fn() -> Option<C> + Send + Sync>;

enum Inner<C: Send> {
    /// One client (and pool) for every thread.
    Shared(C),
    /// A client per thread, made by `make` on a thread's first call; `first`
    /// if `make` cannot make one (it made `first` with the same settings).
    PerThread(Box<PerThread<C>>),
}

struct PerThread<C: Send> {
    first: C,
    make: Make<C>,
    clients: ThreadLocal<C>,
}

impl<C: Send> std::fmt::Debug for Clients<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &*self.0 {
            Inner::Shared(_) => "Clients::Shared",
            Inner::PerThread(_) => "Clients::PerThread",
        })
    }
}

impl<C: Clone + Send + Sync + 'static> Clients<C> {
    /// A client per thread, each made by `make`; `make` is tried once now,
    /// and its error is the answer if it fails.
    pub fn per_thread<E>(
        make: impl Fn() -> Result<C, E> + Send + Sync + 'static,
    ) -> Result<Self, E> {
        let first = make()?;
        Ok(Self(Arc::new(Inner::PerThread(Box::new(PerThread {
            first,
            make: Arc::new(move || make().ok()),
            clients: ThreadLocal::new(),
        })))))
    }

    /// The same clients, each passed through `f` once it is made.
    pub fn map(&self, f: impl Fn(C) -> C + Send + Sync + 'static) -> Self {
        match &*self.0 {
            Inner::Shared(client) => Self(Arc::new(Inner::Shared(f(client.clone())))),
            Inner::PerThread(p) => {
                let f = Arc::new(f);
                let make = p.make.clone();
                let first = f(p.first.clone());
                Self(Arc::new(Inner::PerThread(Box::new(PerThread {
                    first,
                    make: Arc::new(move || make().map(|c| f(c))),
                    clients: ThreadLocal::new(),
                }))))
            }
        }
    }

    /// This thread's client.
    pub fn get(&self) -> &C {
        match &*self.0 {
            Inner::Shared(client) => client,
            Inner::PerThread(p) => p
                .clients
                .get_or(|| (p.make)().unwrap_or_else(|| p.first.clone())),
        }
    }
}

impl From<super::GraphHttp> for Clients<super::GraphHttp> {
    /// One client for every thread.
    fn from(client: super::GraphHttp) -> Self {
        Self(Arc::new(Inner::Shared(client)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn each_thread_gets_its_own_client_and_keeps_it() {
        let made = Arc::new(AtomicUsize::new(0));
        let counter = made.clone();
        let clients = Clients::per_thread(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            reqwest::Client::builder().build()
        })
        .expect("builds");
        assert_eq!(made.load(Ordering::SeqCst), 1, "made once up front");
        let _ = clients.get();
        let _ = clients.get();
        assert_eq!(made.load(Ordering::SeqCst), 2, "one more for this thread");
        let other = clients.clone();
        std::thread::spawn(move || {
            let _ = other.get();
            let _ = other.get();
        })
        .join()
        .expect("joined");
        assert_eq!(made.load(Ordering::SeqCst), 3, "one for the other thread");
    }

    #[test]
    fn a_shared_client_is_every_threads() {
        let clients = Clients::from(super::super::GraphHttp::new(false).expect("client"));
        assert!(std::ptr::eq(clients.get(), clients.clone().get()));
    }

    #[test]
    fn a_mapped_client_is_made_then_mapped_on_each_thread() {
        let clients = Clients::per_thread(|| Ok::<_, ()>(1u32))
            .expect("made")
            .map(|n| n + 10);
        assert_eq!(*clients.get(), 11);
        let other = clients.clone();
        let there = std::thread::spawn(move || *other.get())
            .join()
            .expect("joined");
        assert_eq!(there, 11);
    }
}

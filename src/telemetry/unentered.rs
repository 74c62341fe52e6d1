//! A layer that is not told when a span is entered or exited.
//!
//! A per-layer filter (`Filtered`) looks its span up in the registry on
//! every enter and every exit to learn whether it enabled it, before it
//! passes the call on, even to a layer that does nothing with it. A
//! gateway call's spans are entered and exited on every poll of the
//! futures they instrument, and with two filtered layers (log lines and
//! traces) those lookups were a tenth of what tracing at full sampling
//! added to a call (see PERFORMANCE.md, "Tracing"). Neither the trace
//! layer nor the log layer (which writes no enter or exit events) uses
//! them; the log layer's filter does only for span-field directives
//! (`[rpc{method=...}]=debug`), and a filter with one keeps them
//! ([`super::init`]).

use std::any::TypeId;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};

/// `L`, told everything but enters and exits.
pub struct Unentered<L>(pub L);

impl<S: Subscriber, L: Layer<S>> Layer<S> for Unentered<L> {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.0.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.0.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.0.on_event(event, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }

    // The registry finds a per-layer filter (and its id) in a layer by
    // downcasting: the wrapped layer answers for itself. `tracing_subscriber`
    // gives no safe way to forward this, and every wrapper of its own
    // (`Layered`, `Box<L>`, `Option<L>`) forwards it the same way.
    #[allow(unsafe_code)]
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: the wrapped layer's answer, for the same id.
            unsafe { self.0.downcast_raw(id) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Unentered;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    /// Counts what it is told.
    #[derive(Clone, Default)]
    struct Told {
        spans: Arc<AtomicUsize>,
        enters: Arc<AtomicUsize>,
        closes: Arc<AtomicUsize>,
        events: Arc<AtomicUsize>,
    }

    impl<S: tracing::Subscriber> Layer<S> for Told {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::Id,
            _: Context<'_, S>,
        ) {
            self.spans.fetch_add(1, Ordering::SeqCst);
        }
        fn on_enter(&self, _: &tracing::Id, _: Context<'_, S>) {
            self.enters.fetch_add(1, Ordering::SeqCst);
        }
        fn on_close(&self, _: tracing::Id, _: Context<'_, S>) {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
        fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
            self.events.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn filtered_layers_inside_keep_their_filters_and_hear_all_but_enters() {
        let (quiet, loud) = (Told::default(), Told::default());
        let subscriber = tracing_subscriber::registry()
            .with(Unentered(
                quiet
                    .clone()
                    .with_filter(filter_fn(|m| m.name() != "loud only")),
            ))
            .with(
                loud.clone()
                    .with_filter(filter_fn(|m| m.name() != "quiet only")),
            );
        tracing::subscriber::with_default(subscriber, || {
            for name in ["both", "quiet only", "loud only"] {
                let span = match name {
                    "both" => tracing::info_span!("both"),
                    "quiet only" => tracing::info_span!("quiet only"),
                    _ => tracing::info_span!("loud only"),
                };
                span.in_scope(|| tracing::info!("in a span"));
            }
        });
        let n = |c: &Arc<AtomicUsize>| c.load(Ordering::SeqCst);
        assert_eq!(
            (n(&quiet.spans), n(&quiet.closes), n(&quiet.enters)),
            (2, 2, 0)
        );
        assert_eq!(
            (n(&loud.spans), n(&loud.closes), n(&loud.enters)),
            (2, 2, 2)
        );
        assert_eq!((n(&quiet.events), n(&loud.events)), (3, 3));
    }
}

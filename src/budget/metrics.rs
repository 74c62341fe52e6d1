//! The budget's metrics, registered under the gateway's prefix
//! (`graph_gateway_budget_*`).

use super::Lane;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    budget: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaceLabels {
    budget: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The two budgets' label values.
pub const REQUESTS: &str = "requests";
pub const WRITES: &str = "writes";

pub struct BudgetMetrics {
    tokens_left: Family<BudgetLabel, Gauge>,
    limit: Family<BudgetLabel, Gauge>,
    wait: Family<BudgetLabel, Histogram>,
    refused: Family<BudgetLabel, Counter>,
    throttled: Family<BudgetLabel, Counter>,
    pace_changes: Family<PaceLabels, Counter>,
    waiting: Family<BudgetLabel, Gauge>,
    shared: Gauge,
    fallbacks: Family<ReasonLabel, Counter>,
}

fn wait_histogram() -> Histogram {
    // 1 ms .. ~65 s: a call waits for a token for up to a window (20 s).
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

impl BudgetMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            tokens_left: Family::default(),
            limit: Family::default(),
            wait: Family::new_with_constructor(wait_histogram as fn() -> Histogram),
            refused: Family::default(),
            throttled: Family::default(),
            pace_changes: Family::default(),
            waiting: Family::default(),
            shared: Gauge::default(),
            fallbacks: Family::default(),
        };
        registry.register(
            "budget_tokens_left",
            "Graph requests this replica could send now without waiting, by budget (requests, writes)",
            m.tokens_left.clone(),
        );
        registry.register(
            "budget_limit",
            "Requests per window the gateway paces itself to now, by budget: the configured limit, lowered after Graph's 429s",
            m.limit.clone(),
        );
        registry.register(
            "budget_wait_seconds",
            "How long calls waited for a budget token before being sent, by budget",
            m.wait.clone(),
        );
        registry.register(
            "budget_refused",
            "Calls refused unsent with GRAPH_BUDGET_EXHAUSTED: their deadline came before their turn, by budget",
            m.refused.clone(),
        );
        registry.register(
            "budget_throttled",
            "429 answers Graph sent although the gateway paced itself, by budget",
            m.throttled.clone(),
        );
        registry.register(
            "budget_pace_changes",
            "Changes of the pace: down after a 429, up after a quiet window, by budget and direction",
            m.pace_changes.clone(),
        );
        registry.register(
            "budget_waiting",
            "Calls waiting for a budget token right now, by budget",
            m.waiting.clone(),
        );
        registry.register(
            "budget_shared",
            "1 while the budget is taken from the shared store (GRAPH_BUDGET_REDIS_URL), 0 while this replica uses its local share",
            m.shared.clone(),
        );
        registry.register(
            "budget_fallbacks",
            "Times the shared store did not answer and the replica fell back to its local share, by why",
            m.fallbacks.clone(),
        );
        m
    }

    pub fn waited(&self, lane: Lane, waited: Duration) {
        self.wait
            .get_or_create(&BudgetLabel {
                budget: lane.budget(),
            })
            .observe(waited.as_secs_f64());
    }

    pub fn refused(&self, lane: Lane) {
        self.refused
            .get_or_create(&BudgetLabel {
                budget: lane.budget(),
            })
            .inc();
    }

    pub fn throttled(&self, budget: &'static str) {
        self.throttled.get_or_create(&BudgetLabel { budget }).inc();
    }

    pub fn pace_change(&self, budget: &'static str, up: bool) {
        let direction = if up { "up" } else { "down" };
        self.pace_changes
            .get_or_create(&PaceLabels { budget, direction })
            .inc();
    }

    pub fn fallback(&self, reason: &'static str) {
        self.fallbacks.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The gauges as of now.
    pub fn set_levels(&self, budget: &'static str, left: u32, limit: u32, waiting: usize) {
        let label = BudgetLabel { budget };
        self.tokens_left.get_or_create(&label).set(i64::from(left));
        self.limit.get_or_create(&label).set(i64::from(limit));
        self.waiting
            .get_or_create(&label)
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    }

    pub fn set_shared(&self, shared: bool) {
        self.shared.set(i64::from(shared));
    }
}

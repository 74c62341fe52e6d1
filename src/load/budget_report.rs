//! The budget scenario's report: the phases side by side, each caller's
//! share, and the targets, as Markdown so it can go into PERFORMANCE.md as
//! printed.

use super::budget::{BudgetArgs, PhaseSpec, BUDGET_EXHAUSTED};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Completed writes per second at least this share of the budget's rate.
const RATE_TARGET: f64 = 0.95;
/// 429s from Graph at most this share of the writes sent, one gateway.
const THROTTLED_TARGET_ONE: f64 = 0.01;
/// The same with replicas sharing the budget.
const THROTTLED_TARGET_SHARED: f64 = 0.02;
/// Jain's fairness index over the callers' completed writes, at least.
const JAIN_TARGET: f64 = 0.95;

/// What one caller saw.
pub struct CallerTally {
    /// Latency of the OK calls, µs.
    hist: Histogram<u64>,
    /// OK calls answered before the phase ended (the rate counts these).
    ok_in_window: u64,
    /// OK calls answered after it (in flight when it ended).
    ok_after: u64,
    /// `GRAPH_BUDGET_EXHAUSTED` answered before the call's deadline.
    budget_refusals: u64,
    /// Every other failure.
    failed: u64,
    /// Of those, answered before the call's deadline.
    failed_early: u64,
    statuses: BTreeMap<String, u64>,
}

impl CallerTally {
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            ok_in_window: 0,
            ok_after: 0,
            budget_refusals: 0,
            failed: 0,
            failed_early: 0,
            statuses: BTreeMap::new(),
        }
    }

    pub fn ok(&mut self, took: Duration, in_window: bool) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self.hist.record(micros.clamp(1, 600_000_000));
        if in_window {
            self.ok_in_window += 1;
        } else {
            self.ok_after += 1;
        }
        *self.statuses.entry("OK".to_owned()).or_default() += 1;
    }

    /// A failed call: its status (and reason), whether it is the budget's
    /// refusal before the deadline, whether it was answered before the
    /// deadline at all.
    pub fn failed(&mut self, status: String, budget_refusal: bool, early: bool) {
        if budget_refusal {
            self.budget_refusals += 1;
        } else {
            self.failed += 1;
            self.failed_early += u64::from(early);
        }
        *self.statuses.entry(status).or_default() += 1;
    }
}

/// What the emulator counted for the gateway's app in one phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphCounts {
    pub admitted_writes: u64,
    pub refused_writes: u64,
    pub refused_requests: u64,
    pub peak_writes: u64,
    pub peak_offered_writes: u64,
}

/// One phase's figures.
pub struct PhaseResult {
    pub spec: PhaseSpec,
    /// How long the callers sent.
    pub duration: Duration,
    /// Until the last call was answered.
    pub elapsed: Duration,
    pub callers: Vec<CallerTally>,
    pub graph: GraphCounts,
    /// CPU time of the phase's gateways together.
    pub gateway_cpu: Duration,
}

impl PhaseResult {
    fn sum(&self, f: impl Fn(&CallerTally) -> u64) -> u64 {
        self.callers.iter().map(f).sum()
    }

    fn ok_in_window(&self) -> u64 {
        self.sum(|c| c.ok_in_window)
    }

    /// Completed writes per second while the callers sent.
    fn writes_per_second(&self) -> f64 {
        self.ok_in_window() as f64 / self.duration.as_secs_f64()
    }

    /// 429s as a share of the writes sent to Graph.
    fn throttled_share(&self) -> f64 {
        let sent = self.graph.admitted_writes + self.graph.refused_writes;
        if sent == 0 {
            0.0
        } else {
            self.graph.refused_writes as f64 / sent as f64
        }
    }

    /// Failures the targets do not accept: all but the budget's refusals
    /// before the deadline.
    pub fn failed(&self) -> u64 {
        self.sum(|c| c.failed)
    }

    fn hist(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
        for c in &self.callers {
            let _ = all.add(&c.hist);
        }
        all
    }

    fn per_caller(&self) -> Vec<u64> {
        self.callers.iter().map(|c| c.ok_in_window).collect()
    }

    fn statuses(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for c in &self.callers {
            for (k, v) in &c.statuses {
                *all.entry(k.clone()).or_default() += v;
            }
        }
        all
    }

    fn throttled_target(&self) -> f64 {
        if self.spec.shared() {
            THROTTLED_TARGET_SHARED
        } else {
            THROTTLED_TARGET_ONE
        }
    }
}

/// Jain's fairness index: (Σx)² / (n·Σx²), 1 when every caller got the same,
/// 1/n when one got everything. 1 for no callers or no writes at all.
pub fn jain(xs: &[u64]) -> f64 {
    let sum: f64 = xs.iter().map(|&x| x as f64).sum();
    let squares: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if xs.is_empty() || squares == 0.0 {
        1.0
    } else {
        sum * sum / (xs.len() as f64 * squares)
    }
}

pub struct BudgetReport {
    title: String,
    /// The budget's rate, writes per second.
    rate: f64,
    window_writes: u32,
    pub phases: Vec<PhaseResult>,
}

/// `met` or `missed`.
fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

impl BudgetReport {
    pub fn new(args: &BudgetArgs) -> Self {
        let budget = args.write_budget();
        Self {
            title: format!(
                "{} callers (one certificate, connection and task each), {:?} per phase, deadline {:?} per call; \
                 emulator with Intune's limits at scale {} ({} writes per app per {}); gateway budget \
                 GRAPH_WRITE_BUDGET={budget} ({:.1} writes/s)",
                args.callers,
                args.duration,
                args.deadline,
                args.scale,
                budget.tokens,
                humantime::format_duration(budget.window),
                budget.per_second(),
            ),
            rate: budget.per_second(),
            window_writes: budget.tokens,
            phases: Vec::new(),
        }
    }

    /// Failures with the budget on that the targets do not accept.
    pub fn failed_with_time_left(&self) -> u64 {
        self.budgeted().map(PhaseResult::failed).sum()
    }

    fn budgeted(&self) -> impl Iterator<Item = &PhaseResult> {
        self.phases.iter().filter(|p| p.spec.budget)
    }

    /// Each target a phase with the budget on missed, named.
    pub fn missed_targets(&self) -> Vec<String> {
        let mut missed = Vec::new();
        for p in self.budgeted() {
            for (name, ok) in self.targets(p) {
                if !ok {
                    missed.push(format!("{}: {name}", p.spec.name));
                }
            }
        }
        missed
    }

    fn targets(&self, p: &PhaseResult) -> [(String, bool); 4] {
        let ratio = p.writes_per_second() / self.rate;
        let jain = jain(&p.per_caller());
        [
            (
                format!("completed writes {ratio:.3}x the budget's rate (>= {RATE_TARGET}x)"),
                ratio >= RATE_TARGET,
            ),
            (
                format!(
                    "429s from Graph {:.2}% of writes sent (<= {:.0}%)",
                    p.throttled_share() * 100.0,
                    p.throttled_target() * 100.0
                ),
                p.throttled_share() <= p.throttled_target(),
            ),
            (
                format!(
                    "{} failed calls besides {BUDGET_EXHAUSTED} before the deadline (0)",
                    p.failed()
                ),
                p.failed() == 0,
            ),
            (
                format!("Jain's index {jain:.4} (>= {JAIN_TARGET})"),
                jain >= JAIN_TARGET,
            ),
        ]
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "budget: {}\n", self.title);
        let _ = writeln!(
            out,
            "| phase | gateways | writes OK | writes/s | vs budget | 429s at Graph | 429s / writes sent | p50 ms | p99 ms | max ms | refused {BUDGET_EXHAUSTED} | other failures (before deadline) | Jain |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for p in &self.phases {
            let hist = p.hist();
            let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.3}x | {} | {:.2}% | {:.1} | {:.1} | {:.1} | {} | {} ({}) | {:.4} |",
                p.spec.name,
                p.spec.replicas,
                p.ok_in_window(),
                p.writes_per_second(),
                p.writes_per_second() / self.rate,
                p.graph.refused_writes,
                p.throttled_share() * 100.0,
                ms(0.5),
                ms(0.99),
                hist.max() as f64 / 1000.0,
                p.sum(|c| c.budget_refusals),
                p.failed(),
                p.sum(|c| c.failed_early),
                jain(&p.per_caller()),
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "writes OK and writes/s count calls answered OK while the callers sent; latency is of OK calls."
        );
        for p in &self.phases {
            let g = &p.graph;
            let ok = p.ok_in_window() + p.sum(|c| c.ok_after);
            let _ = writeln!(
                out,
                "{}: Graph admitted {} writes and refused {} (429; {} requests refused in all), most in one window {} (limit {}), most offered in one window {}; {} OK after the callers stopped; {:.2}s until the last answer; gateway CPU {:.1} ms per OK write",
                p.spec.name,
                g.admitted_writes,
                g.refused_writes,
                g.refused_requests,
                g.peak_writes,
                self.window_writes,
                g.peak_offered_writes,
                p.sum(|c| c.ok_after),
                p.elapsed.as_secs_f64(),
                p.gateway_cpu.as_secs_f64() * 1000.0 / ok.max(1) as f64,
            );
            let _ = writeln!(out, "  writes OK per caller: {:?}", p.per_caller());
            let _ = writeln!(out, "  statuses: {:?}", p.statuses());
        }
        out.push('\n');
        let budgeted: Vec<&PhaseResult> = self.budgeted().collect();
        let _ = write!(out, "| target |");
        for p in &budgeted {
            let _ = write!(out, " {} |", p.spec.name);
        }
        let _ = write!(out, "\n|---|");
        for _ in &budgeted {
            let _ = write!(out, "---|");
        }
        out.push('\n');
        let rows: Vec<[(String, bool); 4]> = budgeted.iter().map(|p| self.targets(p)).collect();
        for (i, name) in [
            "completed writes >= 0.95x the budget's rate",
            "429s from Graph <= 1% of writes (one gateway), <= 2% (replicas)",
            "0 failed calls whose deadline allowed them to run",
            "Jain's index >= 0.95",
        ]
        .iter()
        .enumerate()
        {
            let _ = write!(out, "| {name} |");
            for row in &rows {
                let (text, ok) = &row[i];
                let _ = write!(out, " {}: {text} |", verdict(*ok));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "\nfailed calls with the budget on (besides {BUDGET_EXHAUSTED} before the deadline): {}",
            self.failed_with_time_left()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::jain;

    #[test]
    fn jain_is_one_for_equal_shares_and_one_over_n_for_one_taker() {
        assert!((jain(&[5, 5, 5, 5]) - 1.0).abs() < 1e-12);
        assert!((jain(&[8, 0, 0, 0]) - 0.25).abs() < 1e-12);
        // (1+2+3)^2 / (3 * (1+4+9)) = 36 / 42
        assert!((jain(&[1, 2, 3]) - 36.0 / 42.0).abs() < 1e-12);
        assert!((jain(&[]) - 1.0).abs() < 1e-12);
        assert!((jain(&[0, 0]) - 1.0).abs() < 1e-12);
    }
}

//! The tracing scenario's report: the three configurations side by side
//! (each its rounds' median CPU per call, the rounds themselves, calls,
//! failures, latency and the spans its collector received), the ratios of
//! CPU per call against tracing off, and the targets, as Markdown so it can
//! go into PERFORMANCE.md as printed.

use super::report::Phase;
use hdrhistogram::Histogram;
use std::fmt::Write;
use std::time::Duration;

/// CPU per call at 100% sampling at most this many times tracing off's.
const ALWAYS_ON_TARGET: f64 = 1.15;

/// A gateway's trace export setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// Another gateway binary (`--baseline-bin`), such as one built before
    /// trace export existed, with no trace settings: what "off" is held to.
    Baseline,
    /// No `OTEL_EXPORTER_OTLP_ENDPOINT`.
    Off,
    /// `traceidratio`, 0.1.
    Sampled10,
    /// `always_on`.
    Sampled100,
}

impl Config {
    /// In the order each round runs them.
    pub const ALL: [Config; 3] = [Config::Off, Config::Sampled10, Config::Sampled100];

    pub fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline binary (--baseline-bin)",
            Config::Off => "tracing off",
            Config::Sampled10 => "sampled 10% (traceidratio 0.1)",
            Config::Sampled100 => "sampled 100% (always_on)",
        }
    }

    /// `OTEL_SERVICE_NAME`, by which the collector tells the gateways apart.
    pub fn service_name(self) -> &'static str {
        match self {
            Config::Baseline => "gateway-baseline",
            Config::Off => "gateway-tracing-off",
            Config::Sampled10 => "gateway-sampled-10",
            Config::Sampled100 => "gateway-sampled-100",
        }
    }

    /// `OTEL_TRACES_SAMPLER` and its argument; `None`: no export.
    pub fn sampler(self) -> Option<(&'static str, Option<&'static str>)> {
        match self {
            Config::Baseline | Config::Off => None,
            Config::Sampled10 => Some(("traceidratio", Some("0.1"))),
            Config::Sampled100 => Some(("always_on", None)),
        }
    }
}

/// One configuration's figures over the run.
pub struct ConfigResult {
    pub config: Config,
    /// One measured phase per round, in order.
    pub rounds: Vec<Phase>,
    /// Calls made before the first phase, not measured (their spans are
    /// exported too).
    pub warmup_calls: u64,
    /// The gateway's own counts at the end (`/metrics`).
    pub spans_exported: u64,
    pub spans_dropped: u64,
    /// Spans the collector received from it, after it stopped.
    pub spans_received: u64,
    /// Whether it exited 0 on SIGTERM.
    pub stopped_cleanly: bool,
}

impl ConfigResult {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            rounds: Vec::new(),
            warmup_calls: 0,
            spans_exported: 0,
            spans_dropped: 0,
            spans_received: 0,
            stopped_cleanly: false,
        }
    }

    fn calls(&self) -> u64 {
        self.rounds.iter().map(|p| p.hist.len()).sum()
    }

    fn ok(&self) -> u64 {
        self.rounds
            .iter()
            .map(|p| p.statuses.get("OK").copied().unwrap_or(0))
            .sum()
    }

    fn failed(&self) -> u64 {
        self.calls() - self.ok()
    }

    fn cpu(&self) -> Duration {
        self.rounds.iter().filter_map(|p| p.process_cpu).sum()
    }

    /// Each round's gateway CPU µs per call.
    fn cpu_per_call(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|p| {
                let cpu = p.process_cpu.unwrap_or_default().as_secs_f64() * 1e6;
                cpu / p.hist.len().max(1) as f64
            })
            .collect()
    }

    fn median_cpu_per_call(&self) -> f64 {
        median(self.cpu_per_call())
    }

    fn median_rps(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|p| p.hist.len() as f64 / p.elapsed.as_secs_f64().max(1e-9))
                .collect(),
        )
    }

    fn latency(&self) -> Option<Histogram<u64>> {
        let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok()?;
        for p in &self.rounds {
            all.add(&p.hist).ok()?;
        }
        Some(all)
    }

    /// Spans received per call the gateway answered, warm-up included.
    fn spans_per_call(&self) -> f64 {
        self.spans_received as f64 / (self.calls() + self.warmup_calls).max(1) as f64
    }
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub struct TracingReport {
    pub concurrency: usize,
    pub duration: Duration,
    pub calls: Option<u64>,
    pub warmup: u64,
    pub configs: Vec<ConfigResult>,
}

impl TracingReport {
    pub fn failed(&self) -> u64 {
        self.configs.iter().map(ConfigResult::failed).sum()
    }

    fn of(&self, config: Config) -> Option<&ConfigResult> {
        self.configs.iter().find(|c| c.config == config)
    }

    /// `config`'s median CPU per call over tracing off's.
    fn ratio(&self, config: Config) -> Option<(f64, f64, f64)> {
        let off = self.of(Config::Off)?.median_cpu_per_call();
        let on = self.of(config)?.median_cpu_per_call();
        (off > 0.0).then(|| (on / off, on, off))
    }

    fn targets(&self) -> Vec<(String, String, Option<bool>)> {
        let mut rows = Vec::new();
        match (self.of(Config::Off), self.of(Config::Baseline)) {
            (Some(off), Some(base)) => {
                let (off, rounds) = (off.median_cpu_per_call(), base.cpu_per_call());
                let base_median = median(rounds.clone());
                let highest = rounds.iter().copied().fold(0.0, f64::max);
                rows.push((
                    "tracing off within noise of the baseline binary (off's median no higher than the baseline's highest round)".to_owned(),
                    format!(
                        "{:.3}x ({off:.1} µs / {base_median:.1} µs, medians; baseline rounds up to {highest:.1} µs)",
                        off / base_median.max(1e-9)
                    ),
                    Some(off <= highest),
                ));
            }
            (Some(off), None) => rows.push((
                "tracing off within noise of the gateway without trace export".to_owned(),
                format!(
                    "off: {:.1} µs per call (median); give --baseline-bin to judge it side by side",
                    off.median_cpu_per_call()
                ),
                None,
            )),
            _ => {}
        }
        if let Some((ratio, on, off)) = self.ratio(Config::Sampled100) {
            rows.push((
                format!("100% sampling at most +15% CPU per call (<= {ALWAYS_ON_TARGET:.2}x off)"),
                format!("{ratio:.3}x ({on:.1} µs / {off:.1} µs, medians)"),
                Some(ratio <= ALWAYS_ON_TARGET),
            ));
        }
        let failed = self.failed();
        rows.push((
            "every call succeeded".to_owned(),
            format!("{failed} calls failed in all configurations together"),
            Some(failed == 0),
        ));
        rows
    }

    pub fn missed_targets(&self) -> Vec<String> {
        self.targets()
            .into_iter()
            .filter(|(_, _, met)| *met == Some(false))
            .map(|(target, measured, _)| format!("{target}: {measured}"))
            .collect()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let rounds = self.configs.first().map_or(0, |c| c.rounds.len());
        let per_phase = match self.calls {
            Some(n) => format!("{n} calls"),
            None => humantime::format_duration(self.duration).to_string(),
        };
        let _ = writeln!(
            out,
            "tracing: {rounds} rounds, each one measured phase per configuration in turn; {per_phase} per phase at concurrency {}, {} warm-up calls per gateway before its first phase; UpdateSecurityConfigurationTask over one plaintext gRPC connection per gateway on loopback; one emulator for all; the traced gateways export over OTLP/gRPC to the tool's collector\n",
            self.concurrency, self.warmup
        );
        let _ = writeln!(
            out,
            "| configuration | calls | OK | failed | calls/s (median) | p50 ms | p99 ms | gateway CPU ms | CPU µs per call (median) | CPU µs per call by round | spans received | spans per call | spans exported / dropped (gateway) |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
        );
        for c in &self.configs {
            let (p50, p99) = c.latency().map_or((0.0, 0.0), |h| {
                (
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            });
            let by_round: Vec<String> =
                c.cpu_per_call().iter().map(|v| format!("{v:.1}")).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {p50:.2} | {p99:.2} | {:.0} | {:.1} | {} | {} | {:.3} | {} / {} |",
                c.config.name(),
                c.calls(),
                c.ok(),
                c.failed(),
                c.median_rps(),
                c.cpu().as_secs_f64() * 1000.0,
                c.median_cpu_per_call(),
                by_round.join(", "),
                c.spans_received,
                c.spans_per_call(),
                c.spans_exported,
                c.spans_dropped,
            );
        }
        let _ = writeln!(out);
        for config in [Config::Baseline, Config::Sampled10, Config::Sampled100] {
            if let Some((ratio, on, off)) = self.ratio(config) {
                let _ = writeln!(
                    out,
                    "{} / off: CPU per call {ratio:.3}x ({on:.1} µs / {off:.1} µs, medians)",
                    config.name()
                );
            }
        }
        for c in &self.configs {
            let _ = writeln!(
                out,
                "{}: {} calls answered in all ({} warm-up), {} spans received by the collector, gateway {}",
                c.config.service_name(),
                c.calls() + c.warmup_calls,
                c.warmup_calls,
                c.spans_received,
                if c.stopped_cleanly {
                    "stopped cleanly"
                } else {
                    "did not exit 0 on SIGTERM"
                }
            );
        }
        let _ = writeln!(out, "\n| target | measured | |\n|---|---|---|");
        for (target, measured, met) in self.targets() {
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "missed",
                None => "see the figure",
            };
            let _ = writeln!(out, "| {target} | {measured} | {verdict} |");
        }
        let _ = writeln!(out, "\nfailed calls: {}", self.failed());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}

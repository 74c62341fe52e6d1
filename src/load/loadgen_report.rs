//! The loadgen scenario's report: per concurrency, direct (wrk to the
//! emulator) next to the gateway (h2load to the gateway to the emulator),
//! and the baseline binary when there is one, each figure the median over
//! the rounds; then every run, and how each gateway phase's calls were
//! checked. Markdown, so it can go into PERFORMANCE.md as printed.

use super::loadgen::H2loadCounts;
use std::fmt::Write;
use std::time::Duration;

/// Which gateway binary a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The gateway binary (`--gateway-bin`, or the one next to the tool).
    Gateway,
    /// `--baseline-bin`.
    Baseline,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Gateway => "gateway",
            Target::Baseline => "baseline gateway",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Target::Gateway => "gateway (h2load -> gateway -> emulator)",
            Target::Baseline => "baseline (h2load -> --baseline-bin -> emulator)",
        }
    }
}

/// One measured wrk phase.
#[derive(Debug, Clone)]
pub struct DirectRun {
    pub round: u32,
    pub concurrency: usize,
    pub requests: u64,
    /// wrk's own measure of the phase.
    pub elapsed: Duration,
    pub emulator_cpu: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    /// Answers with a status other than 2xx or 3xx.
    pub non_2xx: u64,
}

impl DirectRun {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn emulator_us(&self) -> f64 {
        per_call_us(self.emulator_cpu, self.requests)
    }

    fn failed(&self) -> u64 {
        self.socket_errors + self.non_2xx
    }
}

/// One measured h2load phase against one gateway.
#[derive(Debug, Clone)]
pub struct GatewayRun {
    pub round: u32,
    pub target: Target,
    pub concurrency: usize,
    /// Requests h2load was told to make.
    pub calls: u64,
    /// From the first request's start to the last one's end (its log).
    pub elapsed: Duration,
    pub gateway_cpu: Duration,
    pub emulator_cpu: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Rows in h2load's log, and those whose HTTP status was not 200.
    pub log_rows: u64,
    pub log_not_200: u64,
    pub h2load: H2loadCounts,
    /// What the gateway's `/metrics` grew by over the phase.
    pub ok_delta: u64,
    pub not_ok_delta: u64,
    pub patch_delta: u64,
    pub patch_200_delta: u64,
}

impl GatewayRun {
    fn rps(&self) -> f64 {
        self.log_rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn gateway_us(&self) -> f64 {
        per_call_us(self.gateway_cpu, self.calls)
    }

    fn emulator_us(&self) -> f64 {
        per_call_us(self.emulator_cpu, self.calls)
    }

    /// What says not every call was answered OK, if anything.
    fn problem(&self) -> Option<String> {
        let h = &self.h2load;
        let n = self.calls;
        let mut why = Vec::new();
        if h.total != n || h.done != n || h.succeeded != n || h.status_2xx != n {
            why.push(format!(
                "h2load: {} total, {} done, {} succeeded, {} 2xx of {n}",
                h.total, h.done, h.succeeded, h.status_2xx
            ));
        }
        if h.failed + h.errored + h.timeout > 0 {
            why.push(format!(
                "h2load: {} failed, {} errored, {} timed out",
                h.failed, h.errored, h.timeout
            ));
        }
        if self.log_rows != n || self.log_not_200 > 0 {
            why.push(format!(
                "h2load's log: {} rows of {n}, {} not HTTP 200",
                self.log_rows, self.log_not_200
            ));
        }
        if self.ok_delta != n || self.not_ok_delta > 0 {
            why.push(format!(
                "gateway /metrics: OK Updates +{} for {n} requests, non-OK +{}",
                self.ok_delta, self.not_ok_delta
            ));
        }
        (!why.is_empty()).then(|| {
            format!(
                "{}, concurrency {}, round {}: {}",
                self.target.name(),
                self.concurrency,
                self.round,
                why.join("; ")
            )
        })
    }
}

fn per_call_us(cpu: Duration, calls: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / calls.max(1) as f64
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

pub struct LoadgenReport {
    pub concurrencies: Vec<usize>,
    pub duration: Duration,
    pub calls: Option<u64>,
    pub warmup: u64,
    pub direct_warmup: Duration,
    pub rounds: u32,
    pub wrk_threads: usize,
    pub direct: Vec<DirectRun>,
    pub gateway: Vec<GatewayRun>,
}

/// One concurrency's medians for one path.
#[derive(Debug, Clone, Copy)]
struct Medians {
    requests: u64,
    rps: f64,
    emulator_us: f64,
    gateway_us: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

impl LoadgenReport {
    /// One line per phase whose requests did not all succeed.
    pub fn problems(&self) -> Vec<String> {
        let direct = self.direct.iter().filter(|d| d.failed() > 0).map(|d| {
            format!(
                "direct, concurrency {}, round {}: wrk: {} answers not 2xx/3xx, {} socket errors or timeouts",
                d.concurrency, d.round, d.non_2xx, d.socket_errors
            )
        });
        direct
            .chain(self.gateway.iter().filter_map(GatewayRun::problem))
            .collect()
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = vec![Target::Gateway];
        if self.gateway.iter().any(|g| g.target == Target::Baseline) {
            targets.push(Target::Baseline);
        }
        targets
    }

    fn direct_medians(&self, concurrency: usize) -> Option<Medians> {
        let runs: Vec<&DirectRun> = self
            .direct
            .iter()
            .filter(|d| d.concurrency == concurrency)
            .collect();
        let of = |f: &dyn Fn(&DirectRun) -> f64| median(runs.iter().map(|d| f(d)).collect());
        Some(Medians {
            requests: runs.iter().map(|d| d.requests).sum(),
            rps: of(&DirectRun::rps)?,
            emulator_us: of(&DirectRun::emulator_us)?,
            gateway_us: None,
            p50_ms: of(&|d| d.p50_us as f64 / 1000.0)?,
            p99_ms: of(&|d| d.p99_us as f64 / 1000.0)?,
            failed: runs.iter().map(|d| d.failed()).sum(),
        })
    }

    fn gateway_medians(&self, concurrency: usize, target: Target) -> Option<Medians> {
        let runs: Vec<&GatewayRun> = self
            .gateway
            .iter()
            .filter(|g| g.concurrency == concurrency && g.target == target)
            .collect();
        let of = |f: &dyn Fn(&GatewayRun) -> f64| median(runs.iter().map(|g| f(g)).collect());
        Some(Medians {
            requests: runs.iter().map(|g| g.calls).sum(),
            rps: of(&GatewayRun::rps)?,
            emulator_us: of(&GatewayRun::emulator_us)?,
            gateway_us: of(&GatewayRun::gateway_us),
            p50_ms: of(&|g| g.p50_us as f64 / 1000.0)?,
            p99_ms: of(&|g| g.p99_us as f64 / 1000.0)?,
            failed: runs
                .iter()
                .map(|g| g.not_ok_delta.max(g.calls.saturating_sub(g.ok_delta)))
                .sum(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let per_phase = match self.calls {
            Some(n) => format!("h2load {n} requests, wrk {}s", self.duration.as_secs()),
            None => format!(
                "{}s (h2load: the warm-up's rate times that, as a request count, so its phases run longer or shorter as the rate changes: see s below)",
                self.duration.as_secs()
            ),
        };
        let concurrencies: Vec<String> =
            self.concurrencies.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "loadgen: concurrency {}; {per_phase} per measured phase; {} round(s); warm-up before each phase: wrk {}s, h2load {} requests. \
             direct: wrk (HTTP/1.1, {} thread(s), one connection per request in flight) PATCHing one seeded task on the emulator with the gateway's JSON body and headers. \
             gateway: h2load over one plaintext HTTP/2 connection (prior knowledge), that many streams in flight, one pre-encoded UpdateSecurityConfigurationTask message; \
             the gateway with a client-secret token from the emulator, audit records on, JSON logs at warn, Intune's budget off. \
             Every gateway call checked OK in the gateway's /metrics. Figures: medians over the rounds; CPU from /proc (user + system)\n",
            concurrencies.join(", "),
            self.rounds,
            self.direct_warmup.as_secs(),
            self.warmup,
            self.wrk_threads,
        );
        let targets = self.targets();
        let mut header = "| run | direct (wrk -> emulator) |".to_owned();
        let mut rule = "|---|---:|".to_owned();
        for t in &targets {
            let _ = write!(header, " {} |", t.column());
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for &c in &self.concurrencies {
            let Some(direct) = self.direct_medians(c) else {
                continue;
            };
            let gws: Vec<Option<Medians>> = targets
                .iter()
                .map(|&t| self.gateway_medians(c, t))
                .collect();
            let mut row = |label: &str, d: String, g: &dyn Fn(&Medians) -> String| {
                let cells: Vec<String> = gws
                    .iter()
                    .map(|m| m.as_ref().map_or_else(|| "-".to_owned(), g))
                    .collect();
                let _ = writeln!(out, "| c={c}: {label} | {d} | {} |", cells.join(" | "));
            };
            row("requests (all rounds)", direct.requests.to_string(), &|m| {
                m.requests.to_string()
            });
            row("req/s, calls/s", format!("{:.0}", direct.rps), &|m| {
                format!("{:.0}", m.rps)
            });
            row("calls/s / direct req/s", "1".to_owned(), &|m| {
                format!("{:.2}x", m.rps / direct.rps.max(1e-9))
            });
            row(
                "emulator CPU µs per request",
                format!("{:.1}", direct.emulator_us),
                &|m| format!("{:.1}", m.emulator_us),
            );
            row("gateway CPU µs per call", "-".to_owned(), &|m| {
                m.gateway_us
                    .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"))
            });
            row(
                "gateway CPU per call / emulator CPU per direct PATCH",
                "-".to_owned(),
                &|m| {
                    m.gateway_us.map_or_else(
                        || "-".to_owned(),
                        |us| format!("{:.2}x", us / direct.emulator_us.max(1e-9)),
                    )
                },
            );
            row(
                "p50 / p99 ms",
                format!("{:.3} / {:.3}", direct.p50_ms, direct.p99_ms),
                &|m| format!("{:.3} / {:.3}", m.p50_ms, m.p99_ms),
            );
            row("added latency p50 / p99 ms", "-".to_owned(), &|m| {
                format!(
                    "{:+.3} / {:+.3}",
                    m.p50_ms - direct.p50_ms,
                    m.p99_ms - direct.p99_ms
                )
            });
            row("failed", direct.failed.to_string(), &|m| {
                m.failed.to_string()
            });
        }
        if targets.contains(&Target::Baseline) {
            let _ = writeln!(out);
            for &c in &self.concurrencies {
                let (Some(g), Some(b)) = (
                    self.gateway_medians(c, Target::Gateway),
                    self.gateway_medians(c, Target::Baseline),
                ) else {
                    continue;
                };
                if let (Some(gu), Some(bu)) = (g.gateway_us, b.gateway_us) {
                    let _ = writeln!(
                        out,
                        "gateway / baseline at c={c}: CPU per call {:.3}x ({gu:.1} µs / {bu:.1} µs), calls/s {:.2}x, p50 {:+.3} ms, p99 {:+.3} ms",
                        gu / bu.max(1e-9),
                        g.rps / b.rps.max(1e-9),
                        g.p50_ms - b.p50_ms,
                        g.p99_ms - b.p99_ms,
                    );
                }
            }
        }

        let _ = writeln!(
            out,
            "\n| round | c | path | requests | s | req/s | emulator CPU µs/req | gateway CPU µs/call | gateway cores busy | p50 ms | p99 ms | failed |"
        );
        let _ = writeln!(
            out,
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for round in 1..=self.rounds {
            for &c in &self.concurrencies {
                for d in self
                    .direct
                    .iter()
                    .filter(|d| d.round == round && d.concurrency == c)
                {
                    let _ = writeln!(
                        out,
                        "| {round} | {c} | direct (wrk) | {} | {:.2} | {:.0} | {:.1} | - | - | {:.3} | {:.3} | {} |",
                        d.requests,
                        d.elapsed.as_secs_f64(),
                        d.rps(),
                        d.emulator_us(),
                        d.p50_us as f64 / 1000.0,
                        d.p99_us as f64 / 1000.0,
                        d.failed(),
                    );
                }
                for g in self
                    .gateway
                    .iter()
                    .filter(|g| g.round == round && g.concurrency == c)
                {
                    let _ = writeln!(
                        out,
                        "| {round} | {c} | {} (h2load) | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.2} | {:.3} | {:.3} | {} |",
                        g.target.name(),
                        g.calls,
                        g.elapsed.as_secs_f64(),
                        g.rps(),
                        g.emulator_us(),
                        g.gateway_us(),
                        g.gateway_cpu.as_secs_f64() / g.elapsed.as_secs_f64().max(1e-9),
                        g.p50_us as f64 / 1000.0,
                        g.p99_us as f64 / 1000.0,
                        g.not_ok_delta.max(g.calls.saturating_sub(g.ok_delta)),
                    );
                }
            }
        }
        let _ = writeln!(out);
        for g in &self.gateway {
            let h = &g.h2load;
            let _ = writeln!(
                out,
                "checked: {}, c={}, round {}: h2load {} requests, {} succeeded, {} 2xx, {} failed, {} errored, {} timed out; /metrics UpdateSecurityConfigurationTask OK +{}, non-OK +{}; Graph PATCHes +{} ({} answered 200)",
                g.target.name(),
                g.concurrency,
                g.round,
                h.total,
                h.succeeded,
                h.status_2xx,
                h.failed,
                h.errored,
                h.timeout,
                g.ok_delta,
                g.not_ok_delta,
                g.patch_delta,
                g.patch_200_delta,
            );
        }
        let problems = self.problems();
        let _ = writeln!(out, "\nphases with failed requests: {}", problems.len());
        for p in problems {
            let _ = writeln!(out, "- {p}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway_run(calls: u64, ok_delta: u64, not_ok_delta: u64) -> GatewayRun {
        GatewayRun {
            round: 1,
            target: Target::Gateway,
            concurrency: 64,
            calls,
            elapsed: Duration::from_secs(1),
            gateway_cpu: Duration::from_millis(100),
            emulator_cpu: Duration::from_millis(50),
            p50_us: 1000,
            p99_us: 2000,
            log_rows: calls,
            log_not_200: 0,
            h2load: H2loadCounts {
                total: calls,
                started: calls,
                done: calls,
                succeeded: calls,
                failed: 0,
                errored: 0,
                timeout: 0,
                status_2xx: calls,
            },
            ok_delta,
            not_ok_delta,
            patch_delta: ok_delta,
            patch_200_delta: ok_delta,
        }
    }

    #[test]
    fn a_gateway_phase_passes_only_when_its_ok_count_grew_by_every_request() {
        assert_eq!(gateway_run(100, 100, 0).problem(), None);
        // gRPC errors are HTTP 200s: h2load alone would call these fine.
        let failed = gateway_run(100, 97, 3).problem().unwrap();
        assert!(
            failed.contains("OK Updates +97 for 100 requests, non-OK +3"),
            "{failed}"
        );
        assert!(gateway_run(100, 100, 1).problem().is_some());
        assert!(gateway_run(100, 101, 0).problem().is_some());
        let mut stream_failed = gateway_run(100, 100, 0);
        stream_failed.h2load.failed = 1;
        assert!(stream_failed.problem().is_some());
        let mut short_log = gateway_run(100, 100, 0);
        short_log.log_rows = 99;
        assert!(short_log.problem().is_some());
    }

    #[test]
    fn every_table_row_has_as_many_cells_as_its_header() {
        let direct = DirectRun {
            round: 1,
            concurrency: 64,
            requests: 1000,
            elapsed: Duration::from_secs(1),
            emulator_cpu: Duration::from_millis(40),
            p50_us: 500,
            p99_us: 900,
            socket_errors: 0,
            non_2xx: 0,
        };
        let baseline = GatewayRun {
            target: Target::Baseline,
            ..gateway_run(100, 100, 0)
        };
        let report = LoadgenReport {
            concurrencies: vec![64],
            duration: Duration::from_secs(1),
            calls: None,
            warmup: 10,
            direct_warmup: Duration::ZERO,
            rounds: 1,
            wrk_threads: 1,
            direct: vec![direct],
            gateway: vec![gateway_run(100, 100, 0), baseline],
        };
        let text = report.render();
        let mut tables = 0;
        for table in text.split("\n\n") {
            let rows: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).collect();
            if rows.is_empty() {
                continue;
            }
            tables += 1;
            let cells = rows[0].matches('|').count();
            for row in &rows {
                assert_eq!(row.matches('|').count(), cells, "{row:?} in:\n{text}");
            }
        }
        assert_eq!(tables, 2, "{text}");
        assert!(
            text.contains("| c=64: gateway CPU µs per call | - | 1000.0 | 1000.0 |"),
            "{text}"
        );
        assert!(text.contains("| c=64: gateway CPU per call / emulator CPU per direct PATCH | - | 25.00x | 25.00x |"), "{text}");
        assert!(
            text.contains(
                "| c=64: added latency p50 / p99 ms | - | +0.500 / +1.100 | +0.500 / +1.100 |"
            ),
            "{text}"
        );
        assert!(text.contains("phases with failed requests: 0"), "{text}");
    }

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }
}

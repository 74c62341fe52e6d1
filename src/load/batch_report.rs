//! The batch scenario's report: the two phases side by side, the HTTP
//! requests Graph received in each (from the emulator's request log), the
//! ratio of their wall times and the targets, as Markdown so it can go into
//! PERFORMANCE.md as printed.

use crate::graph::batch::MAX_ITEMS;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// The batch call's wall time at most this share of the single calls'.
const WALL_TIME_TARGET: f64 = 0.15;

/// How a phase makes its updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One BatchUpdateSecurityConfigurationTasks call carrying them all.
    Batch,
    /// One UpdateSecurityConfigurationTask call after another.
    Singles,
}

impl Mode {
    /// The phase's name in the report, for `n` updates.
    pub fn name(self, n: usize) -> String {
        match self {
            Mode::Batch => "one BatchUpdateSecurityConfigurationTasks call".to_owned(),
            Mode::Singles => format!("{n} sequential UpdateSecurityConfigurationTask calls"),
        }
    }

    fn short(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Singles => "singles",
        }
    }
}

/// What the answers of one phase said.
#[derive(Debug, Default)]
pub struct Tally {
    /// gRPC calls made.
    pub calls: u64,
    /// Updates answered with the task they named, holding the change.
    pub ok: u64,
    /// Updates that failed, by why (the status code and reason, or what
    /// was wrong with the task answered).
    pub failures: BTreeMap<String, u64>,
    /// The first failure's message, and anything else wrong with the
    /// answer (a task list of another length).
    pub notes: Vec<String>,
}

impl Tally {
    pub fn failed(&mut self, key: String, message: &str) {
        *self.failures.entry(key).or_default() += 1;
        if self.failures.values().sum::<u64>() == 1 {
            self.notes.push(format!("first failure: {message}"));
        }
    }

    /// Every one of `n` updates failed with the call.
    pub fn failed_all(&mut self, n: usize, key: String, message: &str) {
        *self.failures.entry(key).or_default() += u64::try_from(n).unwrap_or(u64::MAX);
        self.notes.push(format!("the call failed: {message}"));
    }

    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn failed_count(&self) -> u64 {
        self.failures.values().sum()
    }
}

/// One entry of the emulator's request log, as `GET
/// /_emulator/requests?log=true` serialises a
/// [`RecordedRequest`](crate::emulator::RecordedRequest): what this report
/// reads of it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Logged {
    pub method: String,
    pub kind: LoggedKind,
}

/// [`RequestKind`](crate::emulator::RequestKind) as it is serialised.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LoggedKind {
    Single,
    Batch { request_id: String },
    BatchItem { batch_request_id: String },
}

/// The Graph requests of one phase, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Requests sent alone, by method.
    pub alone: BTreeMap<String, u64>,
    /// `$batch` envelopes.
    pub envelopes: u64,
    /// Of those, envelopes carrying at least one write (an item that is not
    /// a GET); the others carried reads only (read-backs, confirmations).
    pub write_envelopes: u64,
    /// Items inside the envelopes, by method.
    pub items: BTreeMap<String, u64>,
}

impl Traffic {
    pub fn of(log: &[Logged]) -> Self {
        let mut traffic = Traffic::default();
        let mut writes_in: BTreeMap<&str, bool> = BTreeMap::new();
        for entry in log {
            match &entry.kind {
                LoggedKind::Single => {
                    *traffic.alone.entry(entry.method.clone()).or_default() += 1;
                }
                LoggedKind::Batch { request_id } => {
                    traffic.envelopes += 1;
                    writes_in.entry(request_id).or_default();
                }
                LoggedKind::BatchItem { batch_request_id } => {
                    *traffic.items.entry(entry.method.clone()).or_default() += 1;
                    *writes_in.entry(batch_request_id).or_default() |= entry.method != "GET";
                }
            }
        }
        traffic.write_envelopes = writes_in.values().filter(|&&w| w).count() as u64;
        traffic
    }

    /// HTTP requests Graph received: the requests alone and the envelopes
    /// (an envelope's items travel inside it).
    pub fn http_requests(&self) -> u64 {
        self.alone.values().sum::<u64>() + self.envelopes
    }

    /// The HTTP requests that were not reads: requests alone other than GET,
    /// and envelopes carrying a write.
    fn write_requests(&self) -> u64 {
        self.alone
            .iter()
            .filter(|(m, _)| m.as_str() != "GET")
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.write_envelopes
    }

    fn item_count(&self) -> u64 {
        self.items.values().sum()
    }
}

/// `PATCH 200, GET 3`, or `none`.
fn by_method(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    let mut parts: Vec<String> = counts.iter().map(|(m, n)| format!("{m} {n}")).collect();
    // Writes first, as they are what the phase is for.
    parts.sort_by_key(|p| p.starts_with("GET"));
    parts.join(", ")
}

/// One phase's figures.
pub struct PhaseResult {
    pub mode: Mode,
    pub updates: usize,
    pub tally: Tally,
    /// From the first call sent to the last answer.
    pub elapsed: Duration,
    pub traffic: Traffic,
    pub gateway_cpu: Duration,
}

impl PhaseResult {
    fn ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1000.0
    }
}

pub struct BatchReport {
    updates: usize,
    latency: Duration,
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

impl BatchReport {
    pub fn new(updates: usize, latency: Duration) -> Self {
        Self {
            updates,
            latency,
            phases: Vec::new(),
        }
    }

    /// Updates that failed, in both phases.
    pub fn failed(&self) -> u64 {
        self.phases
            .iter()
            .map(|p| p.tally.failed_count() + self.unanswered(p))
            .sum()
    }

    /// Updates neither answered OK nor counted as failed (none, unless an
    /// answer left some out without saying so).
    fn unanswered(&self, p: &PhaseResult) -> u64 {
        let n = u64::try_from(p.updates).unwrap_or(u64::MAX);
        n.saturating_sub(p.tally.ok + p.tally.failed_count())
    }

    fn phase(&self, mode: Mode) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.mode == mode)
    }

    /// The envelopes that writing the updates in batches of
    /// [`MAX_ITEMS`] takes.
    fn envelopes_needed(&self) -> u64 {
        u64::try_from(self.updates.div_ceil(MAX_ITEMS)).unwrap_or(u64::MAX)
    }

    /// The batch's wall time over the single calls'.
    fn wall_ratio(&self) -> Option<f64> {
        let (b, s) = (self.phase(Mode::Batch)?, self.phase(Mode::Singles)?);
        Some(b.elapsed.as_secs_f64() / s.elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
    }

    fn targets(&self) -> Vec<(String, bool)> {
        let mut targets = Vec::new();
        if let Some(ratio) = self.wall_ratio() {
            targets.push((
                format!("batch wall time {ratio:.3}x the sequential single calls' (<= {WALL_TIME_TARGET}x)"),
                ratio <= WALL_TIME_TARGET,
            ));
        }
        if let Some(b) = self.phase(Mode::Batch) {
            let writes = b.traffic.write_requests();
            let reads = b.traffic.http_requests() - writes;
            let needed = self.envelopes_needed();
            targets.push((
                format!(
                    "batch: {writes} HTTP requests to Graph carrying writes, plus {reads} carrying reads only (<= {needed}, plus read-backs)"
                ),
                writes <= needed,
            ));
        }
        let failed = self.failed();
        targets.push((
            format!("{failed} updates failed in both phases together (0)"),
            failed == 0,
        ));
        targets
    }

    /// Each target missed, named.
    pub fn missed_targets(&self) -> Vec<String> {
        self.targets()
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "batch: {} updates per phase, each to a task of its own; emulator latency {} per Graph answer \
             (each $batch item too, a batch's items in parallel); gateway with GRAPH_BUDGET=off, gRPC over \
             plaintext on loopback; one emulator, seeded tasks and gateway per phase\n",
            self.updates,
            humantime::format_duration(self.latency),
        );
        let _ = writeln!(
            out,
            "| mode | gRPC calls | updates OK | failed | wall ms | HTTP requests to Graph | $batch envelopes (carrying writes) | items in them | requests alone | gateway CPU ms |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for p in &self.phases {
            let t = &p.traffic;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {} | {} ({}) | {} | {} | {:.1} |",
                p.mode.name(p.updates),
                p.tally.calls,
                p.tally.ok,
                p.tally.failed_count() + self.unanswered(p),
                p.ms(),
                t.http_requests(),
                t.envelopes,
                t.write_envelopes,
                t.item_count(),
                t.alone.values().sum::<u64>(),
                p.gateway_cpu.as_secs_f64() * 1000.0,
            );
        }
        out.push('\n');
        if let (Some(ratio), Some(b), Some(s)) = (
            self.wall_ratio(),
            self.phase(Mode::Batch),
            self.phase(Mode::Singles),
        ) {
            let _ = writeln!(
                out,
                "batch / singles: wall time {ratio:.3}x ({:.1} ms / {:.1} ms), HTTP requests to Graph {} / {}",
                b.ms(),
                s.ms(),
                b.traffic.http_requests(),
                s.traffic.http_requests(),
            );
        }
        for p in &self.phases {
            let t = &p.traffic;
            let _ = writeln!(
                out,
                "{}: {} envelopes carrying writes, {} carrying reads only; items: {}; requests alone: {}",
                p.mode.short(),
                t.write_envelopes,
                t.envelopes - t.write_envelopes,
                by_method(&t.items),
                by_method(&t.alone),
            );
            if !p.tally.failures.is_empty() {
                let _ = writeln!(out, "  failures: {:?}", p.tally.failures);
            }
            for note in &p.tally.notes {
                let _ = writeln!(out, "  {note}");
            }
        }
        out.push('\n');
        let _ = writeln!(out, "| target | measured | |");
        let _ = writeln!(out, "|---|---|---|");
        for (text, ok) in self.targets() {
            let _ = writeln!(out, "| {} | {text} | {} |", target_name(&text), verdict(ok));
        }
        let _ = writeln!(out, "\nfailed updates: {}", self.failed());
        out
    }
}

/// The target a measured line is about, for the targets table.
fn target_name(text: &str) -> &'static str {
    if text.starts_with("batch wall time") {
        "batch wall time <= 0.15x the single calls'"
    } else if text.starts_with("batch:") {
        "batch HTTP requests to Graph <= one envelope per 20 updates, plus read-backs"
    } else {
        "every update succeeded in both modes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{RecordedRequest, RequestKind};

    fn recorded(method: &str, kind: RequestKind) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path_and_query: "/beta/$batch".into(),
            client_request_id: None,
            authorization: None,
            headers: Vec::new(),
            body: None,
            kind,
        }
    }

    fn item(method: &str, batch: &str) -> RecordedRequest {
        recorded(
            method,
            RequestKind::BatchItem {
                id: "1".into(),
                batch_request_id: batch.into(),
            },
        )
    }

    fn envelope(id: &str) -> RecordedRequest {
        recorded(
            "POST",
            RequestKind::Batch {
                request_id: id.into(),
            },
        )
    }

    #[test]
    fn the_log_as_the_emulator_serialises_it_is_counted_by_kind() {
        let log = vec![
            envelope("a"),
            item("PATCH", "a"),
            item("PATCH", "a"),
            envelope("b"),
            item("PATCH", "b"),
            recorded("PATCH", RequestKind::Single),
            envelope("c"),
            item("GET", "c"),
            item("GET", "c"),
            recorded("GET", RequestKind::Single),
        ];
        let json = serde_json::to_string(&log).expect("serialises");
        let logged: Vec<Logged> = serde_json::from_str(&json).expect("reads back");
        let traffic = Traffic::of(&logged);
        assert_eq!(traffic.envelopes, 3);
        assert_eq!(traffic.write_envelopes, 2, "c carried reads only");
        assert_eq!(traffic.http_requests(), 5);
        assert_eq!(traffic.write_requests(), 3);
        assert_eq!(traffic.item_count(), 5);
        assert_eq!(traffic.items.get("PATCH"), Some(&3));
        assert_eq!(traffic.alone.get("GET"), Some(&1));
        assert_eq!(by_method(&traffic.items), "PATCH 3, GET 2");
    }

    fn phase(mode: Mode, ms: u64, ok: u64, traffic: Traffic) -> PhaseResult {
        PhaseResult {
            mode,
            updates: 40,
            tally: Tally {
                calls: if mode == Mode::Batch { 1 } else { 40 },
                ok,
                ..Tally::default()
            },
            elapsed: Duration::from_millis(ms),
            traffic,
            gateway_cpu: Duration::ZERO,
        }
    }

    #[test]
    fn targets_follow_the_figures_and_unanswered_updates_count_as_failed() {
        let batch = Traffic {
            envelopes: 3,
            write_envelopes: 2,
            ..Traffic::default()
        };
        let singles = Traffic {
            alone: BTreeMap::from([("PATCH".to_owned(), 40)]),
            ..Traffic::default()
        };
        let mut report = BatchReport::new(40, Duration::from_millis(5));
        report
            .phases
            .push(phase(Mode::Batch, 10, 40, batch.clone()));
        report
            .phases
            .push(phase(Mode::Singles, 200, 40, singles.clone()));
        assert!(
            report.missed_targets().is_empty(),
            "{:?}",
            report.missed_targets()
        );
        assert!(report.render().contains("wall time 0.050x"));

        let mut report = BatchReport::new(40, Duration::from_millis(5));
        let many = Traffic {
            envelopes: 3,
            write_envelopes: 3,
            ..Traffic::default()
        };
        report.phases.push(phase(Mode::Batch, 40, 39, many));
        report.phases.push(phase(Mode::Singles, 200, 40, singles));
        assert_eq!(report.failed(), 1, "one update neither OK nor failed");
        assert_eq!(
            report.missed_targets().len(),
            3,
            "{:?}",
            report.missed_targets()
        );
    }
}

//! The load tool's report: one table, the ratios, and the gateway's CPU and
//! memory, as Markdown so it can go into PERFORMANCE.md as printed.

use super::procs::Usage;
use super::LoadArgs;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// One measured phase.
pub struct Phase {
    pub name: &'static str,
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub hist: Histogram<u64>,
    pub statuses: BTreeMap<String, u64>,
    pub emulator_cpu: Duration,
    /// CPU time of the measured server process (gateway or floor), if any.
    pub process_cpu: Option<Duration>,
    pub rss_samples_kib: Vec<u64>,
}

impl Phase {
    fn calls(&self) -> u64 {
        self.hist.len()
    }

    fn errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(k, _)| k.as_str() != "OK")
            .map(|(_, v)| *v)
            .sum()
    }

    fn rps(&self) -> f64 {
        self.calls() as f64 / self.elapsed.as_secs_f64()
    }

    fn q(&self, quantile: f64) -> u64 {
        self.hist.value_at_quantile(quantile)
    }

    fn cpu_per_call_us(cpu: Duration, calls: u64) -> f64 {
        cpu.as_secs_f64() * 1e6 / calls.max(1) as f64
    }
}

pub struct Report {
    title: String,
    idle: Usage,
    pub direct: Option<Phase>,
    pub floor: Option<Phase>,
    pub gateway: Option<Phase>,
    pub gateway_end: Usage,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    pub fn new(args: &LoadArgs, idle: Usage) -> Self {
        Self {
            title: format!(
                "{:?}, concurrency {}, {} per phase after {} warm-up calls, {} tasks, {} gRPC connection(s), gateway worker threads: {}, Graph calls in flight at most: {}, gRPC over {}, audit records: {}",
                args.rpc,
                args.concurrency,
                args.calls.map_or_else(
                    || format!("{:?}", args.duration),
                    |n| format!("{n} calls")
                ),
                args.warmup,
                args.tasks,
                args.connections,
                args.gateway_threads
                    .map_or_else(|| "default".to_owned(), |n| n.to_string()),
                args.graph_max_in_flight
                    .map_or_else(|| "default (256)".to_owned(), |n| n.to_string()),
                if args.tls { "TLS" } else { "plaintext" },
                if args.no_audit { "off" } else { "on" },
            ),
            idle,
            direct: None,
            floor: None,
            gateway: None,
            gateway_end: Usage::default(),
        }
    }

    pub fn errors(&self) -> u64 {
        self.phases().map(Phase::errors).sum()
    }

    fn phases(&self) -> impl Iterator<Item = &Phase> {
        self.direct.iter().chain(&self.floor).chain(&self.gateway)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "load: {}\n", self.title);
        let _ = writeln!(
            out,
            "| path | calls | non-OK | calls/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | emulator CPU µs/call |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for p in self.phases() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} |",
                p.name,
                p.calls(),
                p.errors(),
                p.rps(),
                p.q(0.5),
                p.q(0.9),
                p.q(0.99),
                p.q(0.999),
                p.hist.max(),
                Phase::cpu_per_call_us(p.emulator_cpu, p.calls()),
            );
        }
        out.push('\n');
        for (label, phase) in [("gateway", &self.gateway), ("floor", &self.floor)] {
            if let (Some(d), Some(p)) = (&self.direct, phase) {
                let _ = writeln!(
                    out,
                    "{label} vs direct: throughput {:.2}x; added latency p50 {:+} µs, p99 {:+} µs",
                    p.rps() / d.rps(),
                    p.q(0.5) as i64 - d.q(0.5) as i64,
                    p.q(0.99) as i64 - d.q(0.99) as i64,
                );
            }
        }
        for (label, phase) in [("floor", &self.floor), ("gateway", &self.gateway)] {
            if let Some((p, cpu)) = phase.as_ref().and_then(|p| Some((p, p.process_cpu?))) {
                let _ = writeln!(
                    out,
                    "{label} process: CPU {:.1} µs/call ({:.2} cores busy)",
                    Phase::cpu_per_call_us(cpu, p.calls()),
                    cpu.as_secs_f64() / p.elapsed.as_secs_f64()
                );
            }
        }
        let per_call = |phase: &Option<Phase>| {
            let p = phase.as_ref()?;
            Some(Phase::cpu_per_call_us(p.process_cpu?, p.calls()))
        };
        if let (Some(gw), Some(floor)) = (per_call(&self.gateway), per_call(&self.floor)) {
            let _ = writeln!(
                out,
                "gateway vs floor: CPU {:.2}x ({:+.1} µs/call)",
                gw / floor,
                gw - floor
            );
        }
        if let Some(g) = &self.gateway {
            let samples: Vec<String> = g
                .rss_samples_kib
                .iter()
                .map(|k| format!("{:.1}", mib(*k)))
                .collect();
            let _ = writeln!(
                out,
                "gateway memory: RSS idle {:.1} MiB, under load [{}] MiB, after {:.1} MiB, peak {:.1} MiB",
                mib(self.idle.rss_kib),
                samples.join(", "),
                mib(self.gateway_end.rss_kib),
                mib(self.gateway_end.peak_rss_kib),
            );
        }
        for p in self.phases() {
            let _ = writeln!(out, "statuses ({}): {:?}", p.name, p.statuses);
        }
        let _ = writeln!(out, "non-OK calls: {}", self.errors());
        out
    }
}

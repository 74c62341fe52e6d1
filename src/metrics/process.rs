//! The standard `process_*` metrics (as Prometheus' own clients export
//! them), read from `/proc/self` at each scrape: CPU time, resident and
//! virtual memory, open and allowed file descriptors, start time. Where
//! `/proc` is not there (not Linux) the family is left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// every Linux architecture the gateway builds for; Prometheus' own
/// procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

/// Encodes the `process_*` families on each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What one reading of `/proc/self` found; `None` for what it could not read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self`.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let boot = std::fs::read_to_string("/proc/stat").ok();
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            // The directory's own descriptor, open while it is read, is not counted.
            .map(|dir| dir.count().saturating_sub(1) as f64);
        let mut stats = Self::parse(
            stat.as_deref(),
            status.as_deref(),
            boot.as_deref(),
            limits.as_deref(),
        );
        stats.open_fds = open_fds;
        stats
    }

    /// The figures in the texts of `/proc/self/stat`, `/proc/self/status`,
    /// `/proc/stat` and `/proc/self/limits`.
    pub fn parse(
        stat: Option<&str>,
        status: Option<&str>,
        boot: Option<&str>,
        limits: Option<&str>,
    ) -> Self {
        // After the command name in parentheses (which may hold spaces and
        // parentheses itself): field 3 (state) onwards.
        let fields: Vec<&str> = stat
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Field n of stat(5) is fields[n - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(utime), Some(stime)) => Some((utime + stime) / USER_HZ),
            _ => None,
        };
        let boot_time = boot.and_then(|b| {
            b.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        let start_time_seconds = match (boot_time, field(22)) {
            (Some(boot), Some(ticks)) => Some(boot + ticks / USER_HZ),
            _ => None,
        };
        let kib = |key: &str| {
            status.and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                    .map(|v| v * 1024.0)
            })
        };
        let max_fds = limits.and_then(|l| {
            l.lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        });
        Self {
            cpu_seconds,
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            start_time_seconds,
            open_fds: None,
            max_fds,
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(v) = stats.cpu_seconds {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(m)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stats.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_texts() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 9 0 12345 1048576 300 18446744073709551615";
        let status = "Name:\tgraph-grpc-gateway\nVmSize:\t  204800 kB\nVmRSS:\t   20480 kB\n";
        let boot = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1048576              1048576              files\n";
        let stats = ProcessStats::parse(Some(stat), Some(status), Some(boot), Some(limits));
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: Some(3.0),
                resident_bytes: Some(20480.0 * 1024.0),
                virtual_bytes: Some(204800.0 * 1024.0),
                start_time_seconds: Some(1700000000.0 + 123.45),
                open_fds: None,
                max_fds: Some(1048576.0),
            }
        );
        assert_eq!(
            ProcessStats::parse(None, None, None, None),
            ProcessStats::default()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|v| v > 0.0), "{stats:?}");
        assert!(stats.cpu_seconds.is_some(), "{stats:?}");
        assert!(stats.open_fds.is_some_and(|v| v >= 3.0), "{stats:?}");
        assert!(
            stats.start_time_seconds.is_some_and(|v| v > 1.6e9),
            "{stats:?}"
        );
    }
}

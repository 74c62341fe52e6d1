//! Every duration and count setting, written once: its environment name,
//! its default, its range and, where the Helm chart sets it, the chart
//! value that does.
//!
//! The flags in [`crate::cli`] take their environment names and defaults
//! from here; [`crate::config`] refuses a value outside the range at start,
//! naming the setting and the range (`GRAPH_TIMEOUT must be 1ms to 1d`);
//! tests hold the chart (`values.schema.json`'s minimum and maximum,
//! `values.yaml`'s default, the ConfigMap that passes the value on) and
//! README.md's table of ranges to this table.
//!
//! The maxima are chosen so that no value in range can overflow what the
//! gateway computes from it: a duration is at most a day, so a deadline
//! `Instant::now() + max`, or a backoff doubled at most ten times, is far
//! from the limits of `Instant` and `Duration`.
//!
//! A new setting is one constant here, one entry in [`ALL`], one flag in
//! `src/cli.rs` whose `env` and `default_value` name the constant, and one
//! `check` in `src/config.rs`.

use std::time::Duration;

/// One bounded setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting<T: 'static> {
    /// The environment variable (and, in lower case with dashes, the flag).
    pub env: &'static str,
    /// The default as the command line reads it; `None` when there is none.
    pub default: Option<&'static str>,
    /// The least value accepted.
    pub min: T,
    /// The greatest value accepted.
    pub max: T,
    /// The Helm chart value that sets it (`gateway.graphTimeout`), if any.
    pub chart: Option<&'static str>,
}

/// A duration, in humantime form (`60s`, `1m 30s`, `250ms`).
pub type DurationSetting = Setting<Duration>;
/// A whole number of things (retries, slots, bytes, threads).
pub type CountSetting = Setting<u64>;
/// A share in percent, fractions allowed.
pub type PercentSetting = Setting<f64>;

const MS: Duration = Duration::from_millis(1);
const ZERO: Duration = Duration::ZERO;
const SECOND: Duration = Duration::from_secs(1);
/// The longest duration any setting accepts.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// The most a count of slots (connections, Graph calls in flight, waiting
/// calls) may be: far past what a machine or one tenant's throttling
/// allows, and well within what the semaphores enforcing them can hold.
const SLOTS: u64 = 1_000_000;

// `serve`

pub const GRAPH_TIMEOUT: DurationSetting = Setting {
    env: "GRAPH_TIMEOUT",
    default: Some("60s"),
    min: MS,
    max: DAY,
    chart: Some("gateway.graphTimeout"),
};
pub const GATEWAY_MAX_MESSAGE_BYTES: CountSetting = Setting {
    env: "GATEWAY_MAX_MESSAGE_BYTES",
    default: Some("4194304"),
    min: 1024,
    max: 64 * 1024 * 1024,
    chart: Some("gateway.maxMessageBytes"),
};
pub const GATEWAY_DRAIN_TIMEOUT: DurationSetting = Setting {
    env: "GATEWAY_DRAIN_TIMEOUT",
    default: Some("20s"),
    min: ZERO,
    max: DAY,
    chart: Some("gateway.drainTimeout"),
};
pub const GATEWAY_WORKER_THREADS: CountSetting = Setting {
    env: "GATEWAY_WORKER_THREADS",
    default: None,
    min: 1,
    max: 1024,
    chart: None,
};

pub const GATEWAY_SHUTDOWN_DELAY: DurationSetting = Setting {
    env: "GATEWAY_SHUTDOWN_DELAY",
    default: Some("5s"),
    min: ZERO,
    max: Duration::from_secs(5 * 60),
    chart: Some("gateway.shutdownDelay"),
};

// `serve`: who may reach the gRPC port, and how

pub const GATEWAY_TLS_RELOAD_INTERVAL: DurationSetting = Setting {
    env: "GATEWAY_TLS_RELOAD_INTERVAL",
    default: Some("30s"),
    min: Duration::from_millis(100),
    max: DAY,
    chart: Some("tls.reloadInterval"),
};
pub const GATEWAY_MAX_CONNECTIONS: CountSetting = Setting {
    env: "GATEWAY_MAX_CONNECTIONS",
    default: Some("1024"),
    min: 1,
    max: SLOTS,
    chart: Some("gateway.maxConnections"),
};
pub const GATEWAY_MAX_CONCURRENT_STREAMS: CountSetting = Setting {
    env: "GATEWAY_MAX_CONCURRENT_STREAMS",
    default: Some("128"),
    min: 1,
    max: i32::MAX as u64,
    chart: Some("gateway.maxConcurrentStreams"),
};

pub const GATEWAY_HANDSHAKE_TIMEOUT: DurationSetting = Setting {
    env: "GATEWAY_HANDSHAKE_TIMEOUT",
    default: Some("10s"),
    min: Duration::from_millis(100),
    max: Duration::from_secs(5 * 60),
    chart: Some("gateway.handshakeTimeout"),
};
pub const GATEWAY_KEEPALIVE_INTERVAL: DurationSetting = Setting {
    env: "GATEWAY_KEEPALIVE_INTERVAL",
    default: Some("30s"),
    min: SECOND,
    max: Duration::from_secs(2 * 60 * 60),
    chart: Some("gateway.keepaliveInterval"),
};
pub const GATEWAY_KEEPALIVE_TIMEOUT: DurationSetting = Setting {
    env: "GATEWAY_KEEPALIVE_TIMEOUT",
    default: Some("10s"),
    min: SECOND,
    max: Duration::from_secs(10 * 60),
    chart: Some("gateway.keepaliveTimeout"),
};
pub const GATEWAY_IDLE_TIMEOUT: DurationSetting = Setting {
    env: "GATEWAY_IDLE_TIMEOUT",
    default: Some("5m"),
    min: SECOND,
    max: DAY,
    chart: Some("gateway.idleTimeout"),
};
pub const GATEWAY_MAX_CONNECTION_AGE: DurationSetting = Setting {
    env: "GATEWAY_MAX_CONNECTION_AGE",
    default: Some("30m"),
    min: SECOND,
    max: DAY,
    chart: Some("gateway.maxConnectionAge"),
};
pub const GATEWAY_MAX_CONNECTION_AGE_GRACE: DurationSetting = Setting {
    env: "GATEWAY_MAX_CONNECTION_AGE_GRACE",
    default: Some("1m"),
    min: SECOND,
    max: Duration::from_secs(60 * 60),
    chart: Some("gateway.maxConnectionAgeGrace"),
};
pub const GATEWAY_MAX_CONCURRENT_CALLS: CountSetting = Setting {
    env: "GATEWAY_MAX_CONCURRENT_CALLS",
    default: Some("4096"),
    min: 1,
    max: SLOTS,
    chart: Some("gateway.maxConcurrentCalls"),
};

// `serve`: safe retries (`request_id`, see `crate::idempotency`)

/// How long an answer to a call with a `request_id` is remembered, from
/// when it was given.
pub const GATEWAY_IDEMPOTENCY_WINDOW: DurationSetting = Setting {
    env: "GATEWAY_IDEMPOTENCY_WINDOW",
    default: Some("10m"),
    min: SECOND,
    max: DAY,
    chart: Some("gateway.idempotencyWindow"),
};
/// Answers remembered at most, oldest evicted first. There is no "off":
/// a caller that sends a `request_id` is promised no second write. An entry
/// holding a typical task answer takes about 900 bytes (874 measured by
/// `tests/idempotency_memory.rs`, 447 of them the encoded task), so the
/// default holds about 85 MiB at most.
pub const GATEWAY_IDEMPOTENCY_MAX_ENTRIES: CountSetting = Setting {
    env: "GATEWAY_IDEMPOTENCY_MAX_ENTRIES",
    default: Some("100000"),
    min: 1,
    max: 10_000_000,
    chart: Some("gateway.idempotencyMaxEntries"),
};

// `serve`: how the gateway treats a struggling Graph

pub const GRAPH_MAX_RETRIES: CountSetting = Setting {
    env: "GRAPH_MAX_RETRIES",
    default: Some("3"),
    min: 0,
    max: 10,
    chart: Some("gateway.graphMaxRetries"),
};
pub const GRAPH_RETRY_BASE_DELAY: DurationSetting = Setting {
    env: "GRAPH_RETRY_BASE_DELAY",
    default: Some("3s"),
    min: ZERO,
    max: DAY,
    chart: Some("gateway.graphRetryBaseDelay"),
};
pub const GRAPH_RETRY_BUDGET_PERCENT: PercentSetting = Setting {
    env: "GRAPH_RETRY_BUDGET_PERCENT",
    default: Some("20"),
    min: 0.0,
    max: 1000.0,
    chart: Some("gateway.graphRetryBudgetPercent"),
};
pub const GRAPH_ATTEMPT_TIMEOUT: DurationSetting = Setting {
    env: "GRAPH_ATTEMPT_TIMEOUT",
    default: Some("30s"),
    min: MS,
    max: DAY,
    chart: Some("gateway.graphAttemptTimeout"),
};
pub const GRAPH_MAX_IN_FLIGHT: CountSetting = Setting {
    env: "GRAPH_MAX_IN_FLIGHT",
    default: Some("256"),
    min: 1,
    max: SLOTS,
    chart: Some("gateway.graphMaxInFlight"),
};
pub const GRAPH_MAX_QUEUED: CountSetting = Setting {
    env: "GRAPH_MAX_QUEUED",
    default: Some("1024"),
    min: 0,
    max: SLOTS,
    chart: Some("gateway.graphMaxQueued"),
};

/// A budget's size, `count/window` (`100/20s`).
pub type RateSetting = Setting<crate::budget::Rate>;

/// The least and greatest budget: one request per 100 ms window, and far
/// more than Graph allows any app.
const RATE_MIN: crate::budget::Rate = crate::budget::Rate::new(1, Duration::from_millis(100));
const RATE_MAX: crate::budget::Rate =
    crate::budget::Rate::new(1_000_000, Duration::from_secs(60 * 60));

pub const GRAPH_WRITE_BUDGET: RateSetting = Setting {
    env: "GRAPH_WRITE_BUDGET",
    default: Some("100/20s"),
    min: RATE_MIN,
    max: RATE_MAX,
    chart: Some("budget.writes"),
};
pub const GRAPH_REQUEST_BUDGET: RateSetting = Setting {
    env: "GRAPH_REQUEST_BUDGET",
    default: Some("1000/20s"),
    min: RATE_MIN,
    max: RATE_MAX,
    chart: Some("budget.requests"),
};

pub const GRAPH_BUDGET_REDIS_TIMEOUT: DurationSetting = Setting {
    env: "GRAPH_BUDGET_REDIS_TIMEOUT",
    default: Some("250ms"),
    min: MS,
    max: Duration::from_secs(10),
    chart: Some("budget.redis.timeout"),
};
pub const GRAPH_BUDGET_LOCAL_SHARE: PercentSetting = Setting {
    env: "GRAPH_BUDGET_LOCAL_SHARE",
    default: None,
    min: 0.1,
    max: 100.0,
    chart: Some("budget.localShare"),
};
/// The chart derives it rather than passing one value on: `replicaCount`,
/// or `autoscaling.maxReplicas` when the HPA scales the pods (the most that
/// may run at once, so their local shares never add up to more than the
/// budget). Its schema bounds both by this range's maximum.
pub const GATEWAY_REPLICAS: CountSetting = Setting {
    env: "GATEWAY_REPLICAS",
    default: Some("1"),
    min: 1,
    max: 1000,
    chart: None,
};

pub const GRAPH_MAX_RETRY_AFTER: DurationSetting = Setting {
    env: "GRAPH_MAX_RETRY_AFTER",
    default: Some("180s"),
    min: Duration::from_secs(1),
    max: Duration::from_secs(60 * 60),
    chart: Some("gateway.graphMaxRetryAfter"),
};
pub const GRAPH_MAX_ANSWER_BYTES: CountSetting = Setting {
    env: "GRAPH_MAX_ANSWER_BYTES",
    default: Some("16777216"),
    min: 1024,
    max: 1 << 30,
    chart: Some("gateway.graphMaxAnswerBytes"),
};
pub const AZURE_TOKEN_MAX_ANSWER_BYTES: CountSetting = Setting {
    env: "AZURE_TOKEN_MAX_ANSWER_BYTES",
    default: Some("65536"),
    min: 1024,
    max: 16 << 20,
    chart: Some("gateway.azureTokenMaxAnswerBytes"),
};

// `emulator`

pub const EMULATOR_TOKEN_LIFETIME: DurationSetting = Setting {
    env: "EMULATOR_TOKEN_LIFETIME",
    default: Some("3599s"),
    min: ZERO,
    max: DAY,
    chart: None,
};
pub const EMULATOR_CHAOS_PERCENT: PercentSetting = Setting {
    env: "EMULATOR_CHAOS_PERCENT",
    default: Some("0"),
    min: 0.0,
    max: 100.0,
    chart: None,
};
pub const EMULATOR_LATENCY: DurationSetting = Setting {
    env: "EMULATOR_LATENCY",
    default: Some("0s"),
    min: ZERO,
    max: DAY,
    chart: None,
};
/// Divides the 20 s window of the emulator's Intune limits; the emulator's
/// `IntuneLimits` holds the same range for `PUT /_emulator/options`.
pub const EMULATOR_INTUNE_LIMITS_SCALE: CountSetting = Setting {
    env: "EMULATOR_INTUNE_LIMITS_SCALE",
    default: Some("1"),
    min: 1,
    max: 1000,
    chart: None,
};

/// Every setting above, in the order README.md lists them.
pub const ALL: &[&dyn Bounded] = &[
    &GRAPH_TIMEOUT,
    &GRAPH_ATTEMPT_TIMEOUT,
    &GRAPH_MAX_RETRIES,
    &GRAPH_RETRY_BASE_DELAY,
    &GRAPH_RETRY_BUDGET_PERCENT,
    &GRAPH_MAX_IN_FLIGHT,
    &GRAPH_MAX_QUEUED,
    &GRAPH_MAX_RETRY_AFTER,
    &GRAPH_WRITE_BUDGET,
    &GRAPH_REQUEST_BUDGET,
    &GRAPH_BUDGET_REDIS_TIMEOUT,
    &GRAPH_BUDGET_LOCAL_SHARE,
    &GATEWAY_REPLICAS,
    &GRAPH_MAX_ANSWER_BYTES,
    &AZURE_TOKEN_MAX_ANSWER_BYTES,
    &GATEWAY_TLS_RELOAD_INTERVAL,
    &GATEWAY_MAX_CONNECTIONS,
    &GATEWAY_MAX_CONCURRENT_STREAMS,
    &GATEWAY_MAX_CONCURRENT_CALLS,
    &GATEWAY_HANDSHAKE_TIMEOUT,
    &GATEWAY_KEEPALIVE_INTERVAL,
    &GATEWAY_KEEPALIVE_TIMEOUT,
    &GATEWAY_IDLE_TIMEOUT,
    &GATEWAY_MAX_CONNECTION_AGE,
    &GATEWAY_MAX_CONNECTION_AGE_GRACE,
    &GATEWAY_MAX_MESSAGE_BYTES,
    &GATEWAY_DRAIN_TIMEOUT,
    &GATEWAY_SHUTDOWN_DELAY,
    &GATEWAY_WORKER_THREADS,
    &GATEWAY_IDEMPOTENCY_WINDOW,
    &GATEWAY_IDEMPOTENCY_MAX_ENTRIES,
    &EMULATOR_TOKEN_LIFETIME,
    &EMULATOR_CHAOS_PERCENT,
    &EMULATOR_LATENCY,
    &EMULATOR_INTUNE_LIMITS_SCALE,
];

/// A value type a setting can bound.
pub trait Bound: Copy + PartialOrd + 'static {
    /// The value as README.md and the error messages write it.
    fn text(self) -> String;
    /// The value as the command line reads it.
    fn parse(text: &str) -> Option<Self>;
    /// The value as a JSON Schema `minimum` or `maximum`, for numbers.
    fn number(self) -> Option<f64>;
}

impl Bound for Duration {
    /// In the largest unit that divides it: `1d`, `30s`, `100ms`.
    fn text(self) -> String {
        const UNITS: [(u128, &str); 4] = [
            (24 * 60 * 60 * 1000, "d"),
            (60 * 60 * 1000, "h"),
            (60 * 1000, "m"),
            (1000, "s"),
        ];
        let ms = self.as_millis();
        if ms == 0 {
            return "0s".to_owned();
        }
        UNITS
            .iter()
            .find(|(size, _)| {
                ms.is_multiple_of(*size) && self.subsec_nanos().is_multiple_of(1_000_000)
            })
            .map_or_else(
                || format!("{ms}ms"),
                |(size, unit)| format!("{}{unit}", ms / size),
            )
    }

    fn parse(text: &str) -> Option<Self> {
        humantime::parse_duration(text).ok()
    }

    fn number(self) -> Option<f64> {
        None
    }
}

impl Bound for u64 {
    fn text(self) -> String {
        self.to_string()
    }

    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    #[allow(clippy::cast_precision_loss)] // the bounds are far below 2^53
    fn number(self) -> Option<f64> {
        Some(self as f64)
    }
}

impl Bound for f64 {
    fn text(self) -> String {
        self.to_string()
    }

    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    fn number(self) -> Option<f64> {
        Some(self)
    }
}

impl<T: Bound> Setting<T> {
    /// `MIN to MAX`.
    pub fn range_text(&self) -> String {
        format!("{} to {}", self.min.text(), self.max.text())
    }

    /// `NAME must be MIN to MAX` when `value` is outside the range (or
    /// cannot even be held as this setting's type).
    pub fn problem(&self, value: impl TryInto<T>) -> Option<String> {
        match value.try_into() {
            Ok(v) if self.min <= v && v <= self.max => None,
            _ => Some(format!("{} must be {}", self.env, self.range_text())),
        }
    }

    /// Adds [`Self::problem`] to `problems`, if there is one.
    pub fn check(&self, value: impl TryInto<T>, problems: &mut Vec<String>) {
        problems.extend(self.problem(value));
    }
}

/// What every setting says about itself, whatever its type: for the
/// tests that hold the chart and the README to this table.
pub trait Bounded: Sync {
    fn env(&self) -> &'static str;
    fn default(&self) -> Option<&'static str>;
    fn range_text(&self) -> String;
    fn chart(&self) -> Option<&'static str>;
    /// The JSON Schema `minimum` and `maximum`, for numbers (a duration is
    /// a string to the schema, which cannot bound it).
    fn numbers(&self) -> Option<(f64, f64)>;
    /// Why the default is not a value of the range, if it is not.
    fn default_problem(&self) -> Option<String>;
}

impl<T: Bound + Sync> Bounded for Setting<T> {
    fn env(&self) -> &'static str {
        self.env
    }

    fn default(&self) -> Option<&'static str> {
        self.default
    }

    fn range_text(&self) -> String {
        Setting::range_text(self)
    }

    fn chart(&self) -> Option<&'static str> {
        self.chart
    }

    fn numbers(&self) -> Option<(f64, f64)> {
        Some((self.min.number()?, self.max.number()?))
    }

    fn default_problem(&self) -> Option<String> {
        let text = self.default?;
        match T::parse(text) {
            Some(value) => self.problem(value),
            None => Some(format!("{}: the default {text:?} does not parse", self.env)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_defaults_lie_in_their_ranges() {
        let mut seen = HashSet::new();
        for s in ALL {
            assert!(seen.insert(s.env()), "{} is listed twice", s.env());
            assert_eq!(s.default_problem(), None, "{}", s.env());
        }
    }

    #[test]
    fn ranges_read_the_same_everywhere() {
        assert_eq!(GRAPH_TIMEOUT.range_text(), "1ms to 1d");
        assert_eq!(GATEWAY_TLS_RELOAD_INTERVAL.range_text(), "100ms to 1d");
        assert_eq!(GRAPH_RETRY_BASE_DELAY.range_text(), "0s to 1d");
        assert_eq!(GRAPH_MAX_IN_FLIGHT.range_text(), "1 to 1000000");
        assert_eq!(GRAPH_RETRY_BUDGET_PERCENT.range_text(), "0 to 1000");
        assert_eq!(Duration::from_millis(1500).text(), "1500ms");
        assert_eq!(Duration::from_secs(90).text(), "90s");
        assert_eq!(Duration::from_secs(3600).text(), "1h");
        for s in [GRAPH_TIMEOUT, GATEWAY_TLS_RELOAD_INTERVAL, EMULATOR_LATENCY] {
            assert_eq!(
                <Duration as Bound>::parse(&s.min.text()),
                Some(s.min),
                "{}",
                s.env
            );
            assert_eq!(
                <Duration as Bound>::parse(&s.max.text()),
                Some(s.max),
                "{}",
                s.env
            );
        }
    }

    #[test]
    fn values_outside_the_range_name_the_setting_and_the_range() {
        assert_eq!(GRAPH_TIMEOUT.problem(Duration::from_secs(60)), None);
        assert_eq!(GRAPH_TIMEOUT.problem(DAY), None);
        assert_eq!(GRAPH_TIMEOUT.problem(MS), None);
        for bad in [ZERO, DAY + MS, Duration::from_secs(u64::MAX)] {
            assert_eq!(
                GRAPH_TIMEOUT.problem(bad).as_deref(),
                Some("GRAPH_TIMEOUT must be 1ms to 1d"),
                "{bad:?}"
            );
        }
        assert_eq!(GRAPH_MAX_RETRIES.problem(10u32), None);
        assert_eq!(
            GRAPH_MAX_RETRIES.problem(11u32).as_deref(),
            Some("GRAPH_MAX_RETRIES must be 0 to 10")
        );
        assert_eq!(
            GRAPH_MAX_IN_FLIGHT.problem(usize::MAX).as_deref(),
            Some("GRAPH_MAX_IN_FLIGHT must be 1 to 1000000")
        );
        assert_eq!(GRAPH_RETRY_BUDGET_PERCENT.problem(20.5f32), None);
        for bad in [f64::NAN, -0.5, 1000.5, f64::INFINITY] {
            assert_eq!(
                GRAPH_RETRY_BUDGET_PERCENT.problem(bad).as_deref(),
                Some("GRAPH_RETRY_BUDGET_PERCENT must be 0 to 1000"),
                "{bad}"
            );
        }
    }

    const SCHEMA: &str = include_str!("../helm/graph-grpc-gateway/values.schema.json");
    const VALUES: &str = include_str!("../helm/graph-grpc-gateway/values.yaml");
    const CONFIGMAP: &str = include_str!("../helm/graph-grpc-gateway/templates/configmap.yaml");

    /// The chart's default for `path` (`gateway.graphTimeout`,
    /// `budget.redis.timeout`): the line `  graphTimeout: 60s` inside the
    /// top-level `gateway:` block of values.yaml, each key of the path one
    /// level (two spaces) deeper than the one before. `Some(None)` for
    /// `null`, no default: the gateway's own applies; `None` when values.yaml
    /// has no such key.
    fn chart_default(path: &str) -> Option<Option<String>> {
        let keys: Vec<&str> = path.split('.').collect();
        // How many keys of the path the blocks around the current line match.
        let mut depth = 0;
        for line in VALUES.lines() {
            let text = line.trim_start();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let indent = (line.len() - text.len()) / 2;
            depth = depth.min(indent);
            let Some((key, value)) = text.split_once(':') else {
                continue;
            };
            if indent != depth || key != keys[depth] {
                continue;
            }
            if depth + 1 == keys.len() {
                let value = value.trim();
                return Some((value != "null").then(|| value.trim_matches('"').to_owned()));
            }
            depth += 1;
        }
        None
    }

    #[test]
    fn the_chart_bounds_and_defaults_each_setting_it_sets_as_the_table_does() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        let charted: Vec<_> = ALL.iter().filter_map(|s| Some((*s, s.chart()?))).collect();
        assert!(charted.len() >= 12, "the chart sets most settings");
        for (s, path) in charted {
            let pointer = format!("/properties/{}", path.replace('.', "/properties/"));
            let property = schema
                .pointer(&pointer)
                .unwrap_or_else(|| panic!("{}: no {pointer} in values.schema.json", s.env()));
            match s.numbers() {
                Some((min, max)) => {
                    assert_eq!(
                        property["minimum"].as_f64(),
                        Some(min),
                        "{}: minimum of {path}",
                        s.env()
                    );
                    assert_eq!(
                        property["maximum"].as_f64(),
                        Some(max),
                        "{}: maximum of {path}",
                        s.env()
                    );
                }
                // A duration is a string to the schema; the gateway bounds it at start.
                None => assert_eq!(property["type"], "string", "{}: {path}", s.env()),
            }
            let default = chart_default(path)
                .unwrap_or_else(|| panic!("{}: no {path} in values.yaml", s.env()));
            assert_eq!(
                default.as_deref(),
                s.default(),
                "{}: the default of {path} in values.yaml",
                s.env()
            );
            assert!(
                CONFIGMAP.contains(&format!("  {}: {{{{ .Values.{path} ", s.env())),
                "{}: the ConfigMap does not set it from .Values.{path}",
                s.env()
            );
        }
    }

    #[test]
    fn chart_defaults_are_read_at_any_depth() {
        assert_eq!(
            chart_default("gateway.graphTimeout"),
            Some(Some("60s".into()))
        );
        assert_eq!(
            chart_default("budget.redis.timeout"),
            Some(Some("250ms".into()))
        );
        assert_eq!(chart_default("budget.redis.url"), Some(Some(String::new())));
        assert_eq!(chart_default("budget.localShare"), Some(None));
        assert_eq!(chart_default("replicaCount"), Some(Some("1".into())));
        // A key of another block, or none at all, is not taken for it.
        assert_eq!(chart_default("budget.timeout"), None);
        assert_eq!(chart_default("gateway.redis.timeout"), None);
    }

    /// GATEWAY_REPLICAS comes from the replica counts (see its doc): the
    /// schema keeps both inside its range and the ConfigMap passes on the
    /// one that applies.
    #[test]
    fn the_chart_derives_gateway_replicas_within_its_range() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
        let max = GATEWAY_REPLICAS.numbers().map(|(_, max)| max);
        for pointer in [
            "/properties/replicaCount",
            "/properties/autoscaling/properties/maxReplicas",
        ] {
            assert_eq!(
                schema.pointer(pointer).map(|p| p["maximum"].as_f64()),
                Some(max),
                "{pointer}"
            );
        }
        assert_eq!(
            schema
                .pointer("/properties/autoscaling/properties/maxReplicas/minimum")
                .and_then(serde_json::Value::as_f64),
            GATEWAY_REPLICAS.numbers().map(|(min, _)| min)
        );
        assert_eq!(
            chart_default("replicaCount").flatten().as_deref(),
            GATEWAY_REPLICAS.default
        );
        assert!(CONFIGMAP.contains(r#"  GATEWAY_REPLICAS: {{ include "ggg.budgetReplicas" . "#));
        let helpers = include_str!("../helm/graph-grpc-gateway/templates/_helpers.tpl");
        assert!(helpers.contains(
            "{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ max 1 .Values.replicaCount }}{{ end }}"
        ));
    }

    #[test]
    fn no_duration_in_range_overflows_a_deadline_or_a_backoff() {
        let now = tokio::time::Instant::now();
        for s in [
            GRAPH_TIMEOUT,
            GRAPH_ATTEMPT_TIMEOUT,
            GRAPH_RETRY_BASE_DELAY,
            GATEWAY_DRAIN_TIMEOUT,
            GATEWAY_TLS_RELOAD_INTERVAL,
            EMULATOR_TOKEN_LIFETIME,
            EMULATOR_LATENCY,
        ] {
            // The largest backoff: the base doubled for every retry allowed.
            let doubled = 2u32.pow(u32::try_from(GRAPH_MAX_RETRIES.max).expect("small"));
            let longest = s.max.checked_mul(doubled).expect(s.env);
            assert!(now.checked_add(longest).is_some(), "{}", s.env);
            assert!(std::time::SystemTime::now().checked_add(longest).is_some());
        }
    }
}

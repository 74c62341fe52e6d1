//! What the emulator can be told to do beyond answering like Graph: demand
//! tokens, inject random faults, slow down, throttle per tenant, enforce
//! Intune's service limits.
//!
//! JSON form (`PUT /_emulator/options`, and the form a CLI can take); every
//! field is optional and unknown fields are refused. Durations are a
//! humantime string (`"250ms"`, `"1h 30m"`) or a number of seconds:
//!
//! ```json
//! {"require_auth": true, "token_lifetime": "1h", "latency": "20ms",
//!  "rejected_client_secrets": ["wrong"],
//!  "chaos": {"seed": 7, "percent": 10, "statuses": [429, 503], "retry_after": "1"},
//!  "tenant_budget": {"requests": 100, "per": "10s"},
//!  "intune_limits": {"scale": 10}, "batch_order_seed": 3}
//! ```

use std::time::Duration;

use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};

/// How the emulator behaves; [`Default`] is plain Graph without
/// authentication, faults, latency or throttling.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorOptions {
    /// Graph routes demand `Authorization: Bearer <token>` with a token this
    /// emulator issued and that has not expired.
    pub require_auth: bool,
    /// `expires_in` of issued tokens, and how long they are accepted.
    #[serde(with = "duration")]
    pub token_lifetime: Duration,
    /// Client secrets the token endpoint refuses (AADSTS7000215); any other
    /// non-empty secret is accepted.
    pub rejected_client_secrets: Vec<String>,
    /// Random faults on Graph routes, reproducible from a seed.
    pub chaos: Option<Chaos>,
    /// Added to every Graph-route answer (not to the token endpoint).
    #[serde(with = "duration")]
    pub latency: Duration,
    /// Fixed-window request budget per tenant on Graph routes.
    pub tenant_budget: Option<TenantBudget>,
    /// Intune's service limits per app and per tenant, metered as Graph
    /// could at its strictest (see [`IntuneLimits`]).
    pub intune_limits: Option<IntuneLimits>,
    /// Seeds the order in which a `$batch` answer lists its items (Graph
    /// promises no order): the same seed and the same batches give the same
    /// orders, so tests are reproducible; the default seed 0 shuffles too.
    pub batch_order_seed: u64,
    /// Keep each Graph request (with its body, `Authorization` redacted)
    /// for [`super::Emulator::requests`], up to
    /// [`super::REQUEST_LOG_BYTES`]. Off unless asked for: a long-running
    /// emulator (`serve --emulator`, benchmarks) then costs the same per
    /// request however long it runs and holds no traffic; `received()`
    /// still counts. Tests that read the log turn it on.
    pub record_requests: bool,
}

/// Entra's default access-token lifetime as `expires_in` reports it.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            require_auth: false,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            rejected_client_secrets: Vec::new(),
            chaos: None,
            latency: Duration::ZERO,
            tenant_budget: None,
            intune_limits: None,
            batch_order_seed: 0,
            record_requests: false,
        }
    }
}

impl EmulatorOptions {
    pub fn with_record_requests(mut self, record: bool) -> Self {
        self.record_requests = record;
        self
    }

    pub fn with_require_auth(mut self, require_auth: bool) -> Self {
        self.require_auth = require_auth;
        self
    }

    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    pub fn with_rejected_client_secret(mut self, secret: impl Into<String>) -> Self {
        self.rejected_client_secrets.push(secret.into());
        self
    }

    pub fn with_chaos(mut self, chaos: Chaos) -> Self {
        self.chaos = Some(chaos);
        self
    }

    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    pub fn with_tenant_budget(mut self, budget: TenantBudget) -> Self {
        self.tenant_budget = Some(budget);
        self
    }

    pub fn with_intune_limits(mut self, limits: IntuneLimits) -> Self {
        self.intune_limits = Some(limits);
        self
    }

    pub fn with_batch_order_seed(mut self, seed: u64) -> Self {
        self.batch_order_seed = seed;
        self
    }

    /// Why these options make no sense, if they do not. The emulator still
    /// runs with such options (see each field), but `PUT /_emulator/options`
    /// refuses them.
    pub fn problem(&self) -> Option<String> {
        self.chaos
            .as_ref()
            .and_then(Chaos::problem)
            .or_else(|| self.intune_limits.as_ref().and_then(IntuneLimits::problem))
    }
}

/// Intune's service limits, as Graph enforces them on
/// `deviceAppManagementTasks` (see Graph's throttling guidance,
/// "Intune partner integration service limits", and [`super::intune_limits`]): per app (the
/// token's client id) per tenant, 100 writes (POST, PUT, PATCH, DELETE) and
/// 1000 requests of any method per 20 s; per tenant for all its apps
/// together, 200 writes and 2000 requests per 20 s.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntuneLimits {
    /// Divides the 20 s window and leaves the counts alone: scale 10 means
    /// 100 writes per app per 2 s, so tests see a whole window pass quickly.
    /// 1..=1000, finite; outside that range it acts as clamped (NaN as 1).
    pub scale: f64,
}

/// Graph's window for every Intune limit, before [`IntuneLimits::scale`].
pub const INTUNE_WINDOW: Duration = Duration::from_secs(20);
/// The scales [`IntuneLimits::problem`] accepts.
pub const INTUNE_SCALES: std::ops::RangeInclusive<f64> = 1.0..=1000.0;

impl Default for IntuneLimits {
    /// Graph's own limits: scale 1, 20 s windows.
    fn default() -> Self {
        IntuneLimits { scale: 1.0 }
    }
}

impl IntuneLimits {
    /// Graph's limits with windows of 20 s / `scale`.
    pub fn scaled(scale: f64) -> Self {
        IntuneLimits { scale }
    }

    /// The window every limit counts over: 20 s divided by the scale (held
    /// to its range), never shorter than 20 ms.
    pub fn window(&self) -> Duration {
        let scale = if self.scale.is_nan() {
            1.0
        } else {
            self.scale
                .clamp(*INTUNE_SCALES.start(), *INTUNE_SCALES.end())
        };
        INTUNE_WINDOW.div_f64(scale)
    }

    fn problem(&self) -> Option<String> {
        (!(self.scale.is_finite() && INTUNE_SCALES.contains(&self.scale))).then(|| {
            format!(
                "intune_limits scale {} is outside {}..={}",
                self.scale,
                INTUNE_SCALES.start(),
                INTUNE_SCALES.end()
            )
        })
    }
}

/// Random Graph-route faults. Each Graph request, in arrival order, draws
/// from a generator seeded with `seed` (SplitMix64, so a seed means the same
/// sequence on every platform and release); with probability `percent` it is
/// answered with one of `statuses` and not applied.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chaos {
    pub seed: u64,
    /// 0..=100. Outside that range it acts as clamped; NaN never faults.
    pub percent: f64,
    /// Drawn uniformly. Empty means the default list.
    pub statuses: Vec<u16>,
    /// `Retry-After` sent on chaos 429 and 503 answers.
    #[serde(alias = "retryAfter")]
    pub retry_after: Option<String>,
}

/// What the Graph SDKs' chaos handler answers with.
pub const DEFAULT_CHAOS_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

impl Default for Chaos {
    /// Seed 0, 10 % of requests (the Graph SDKs' chaos handler default).
    fn default() -> Self {
        Chaos {
            seed: 0,
            percent: 10.0,
            statuses: DEFAULT_CHAOS_STATUSES.to_vec(),
            retry_after: None,
        }
    }
}

impl Chaos {
    pub fn new(seed: u64, percent: f64) -> Self {
        Chaos {
            seed,
            percent,
            ..Chaos::default()
        }
    }

    pub fn with_statuses(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    pub fn with_retry_after(mut self, retry_after: impl Into<String>) -> Self {
        self.retry_after = Some(retry_after.into());
        self
    }

    fn problem(&self) -> Option<String> {
        if !(0.0..=100.0).contains(&self.percent) {
            return Some(format!("chaos percent {} is outside 0..=100", self.percent));
        }
        if let Some(status) = self.statuses.iter().find(|s| !(400..=599).contains(*s)) {
            return Some(format!("chaos status {status} is outside 400..=599"));
        }
        match &self.retry_after {
            Some(value) if HeaderValue::from_str(value).is_err() => Some(format!(
                "chaos retry_after {value:?} is not a valid header value"
            )),
            _ => None,
        }
    }
}

/// At most `requests` Graph requests per tenant in each window of `per`
/// (a window starts with a tenant's first request after the last one ended).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantBudget {
    pub requests: u32,
    #[serde(with = "duration")]
    pub per: Duration,
}

impl TenantBudget {
    pub fn new(requests: u32, per: Duration) -> Self {
        TenantBudget { requests, per }
    }
}

/// Durations as humantime text (`"1h 30m"`, `"250ms"`) or seconds.
mod duration {
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as \"250ms\" or \"1h\", or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text.trim()).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(secs))
        }

        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
            u64::try_from(secs)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration cannot be negative"))
        }

        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(secs).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_form_round_trips_and_defaults_fill_gaps() {
        let options: EmulatorOptions = serde_json::from_value(json!({
            "require_auth": true,
            "token_lifetime": 60,
            "latency": "20ms",
            "chaos": {"seed": 7, "percent": 12.5},
            "tenant_budget": {"requests": 3, "per": 1.5},
            "intune_limits": {"scale": 10},
            "batch_order_seed": 3
        }))
        .expect("valid options");
        assert_eq!(
            options,
            EmulatorOptions::default()
                .with_require_auth(true)
                .with_token_lifetime(Duration::from_secs(60))
                .with_latency(Duration::from_millis(20))
                .with_chaos(Chaos::new(7, 12.5))
                .with_tenant_budget(TenantBudget::new(3, Duration::from_millis(1500)))
                .with_intune_limits(IntuneLimits::scaled(10.0))
                .with_batch_order_seed(3)
        );
        let text = serde_json::to_value(&options).expect("serialises");
        assert_eq!(text["token_lifetime"], "1m");
        assert_eq!(text["chaos"]["statuses"], json!([429, 500, 502, 503, 504]));
        let back: EmulatorOptions = serde_json::from_value(text).expect("round trip");
        assert_eq!(back, options);
        assert_eq!(
            serde_json::from_value::<EmulatorOptions>(json!({})).expect("empty"),
            EmulatorOptions::default()
        );
    }

    #[test]
    fn refuses_unknown_fields_and_bad_durations() {
        for bad in [
            json!({"requireAuth": true}),
            json!({"latency": -1}),
            json!({"latency": "soon"}),
            json!({"tenant_budget": {"requests": 3}}),
            json!({"intune_limits": {"scale": "fast"}}),
            json!({"intune_limits": {"per": "2s"}}),
        ] {
            assert!(
                serde_json::from_value::<EmulatorOptions>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn problems() {
        let with = |chaos| EmulatorOptions::default().with_chaos(chaos);
        assert!(with(Chaos::new(1, 101.0)).problem().is_some());
        assert!(with(Chaos::new(1, f64::NAN)).problem().is_some());
        assert!(with(Chaos::new(1, 5.0).with_statuses([200]))
            .problem()
            .is_some());
        assert!(with(Chaos::new(1, 5.0).with_retry_after("a\nb"))
            .problem()
            .is_some());
        assert!(with(Chaos::new(1, 100.0)).problem().is_none());
    }

    #[test]
    fn intune_scales_outside_1_to_1000_are_refused_and_clamped() {
        let with =
            |scale| EmulatorOptions::default().with_intune_limits(IntuneLimits::scaled(scale));
        for bad in [
            0.0,
            0.5,
            -1.0,
            1000.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let problem = with(bad).problem().expect("refused");
            assert!(problem.contains("intune_limits scale"), "{problem}");
        }
        for good in [1.0, 2.5, 10.0, 1000.0] {
            assert_eq!(with(good).problem(), None, "{good}");
        }
        let window = |scale| IntuneLimits::scaled(scale).window();
        assert_eq!(window(1.0), Duration::from_secs(20));
        assert_eq!(window(10.0), Duration::from_secs(2));
        assert_eq!(window(1000.0), Duration::from_millis(20));
        assert_eq!(window(f64::NAN), Duration::from_secs(20));
        assert_eq!(window(0.0), Duration::from_secs(20));
        assert_eq!(window(f64::INFINITY), Duration::from_millis(20));
        assert_eq!(
            serde_json::from_value::<IntuneLimits>(json!({})).expect("default scale"),
            IntuneLimits::default()
        );
    }
}

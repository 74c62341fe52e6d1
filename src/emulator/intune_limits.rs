//! Intune's service limits ([`IntuneLimits`]) metered with a sliding window
//! log, and what is counted for tests to read back.
//!
//! # Why a sliding log
//!
//! Graph does not say how it meters its windows. A sliding log is the
//! strictest meter it could use: a request is refused when the window that
//! ends at it (the last 20 s / scale) already holds the limit's count of
//! admitted requests. Any window of that length, fixed or sliding, then holds
//! at most the limit, so a client that never meets a 429 here would never
//! meet one from a fixed-window meter either; the converse does not hold (a
//! fixed window lets twice the limit through across a boundary).
//!
//! # Refusals are not counted
//!
//! A refused request is not admitted, so it takes no place in any window:
//! a client that retries too early is held back by what it was let through,
//! never locked out by its own refusals. Graph documents neither way; this
//! one keeps the meter a pure function of the admitted traffic, which is what
//! the budget tests check. Refusals are counted apart
//! ([`IntuneUsage::refused_requests`], and the write arrivals in
//! [`IntuneUsage::peak_offered_writes`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::GraphError;

/// The app of Graph requests whose bearer names no client id this emulator
/// issued a token to (no bearer, an unknown one, or authentication off).
pub const ANONYMOUS_APP: &str = "anonymous";

/// One of Intune's four limits, each over the same window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntuneLimit {
    /// POST, PUT, PATCH and DELETE of one app in one tenant.
    AppWrites,
    /// Requests of any method of one app in one tenant.
    AppRequests,
    /// Writes of every app in one tenant together.
    TenantWrites,
    /// Requests of every app in one tenant together.
    TenantRequests,
}

impl IntuneLimit {
    /// How many admitted requests a window may hold.
    pub const fn count(self) -> usize {
        match self {
            IntuneLimit::AppWrites => 100,
            IntuneLimit::AppRequests => 1000,
            IntuneLimit::TenantWrites => 200,
            IntuneLimit::TenantRequests => 2000,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            IntuneLimit::AppWrites | IntuneLimit::TenantWrites => "writes",
            IntuneLimit::AppRequests | IntuneLimit::TenantRequests => "requests",
        }
    }
}

/// Why a request was not admitted, and when the window will have room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntuneRefusal {
    /// The limit that holds out longest (the one that decides the wait).
    pub limit: IntuneLimit,
    /// Until the oldest entry that must leave the binding window has left
    /// it: whole milliseconds, rounded up, at least 1 ms.
    pub retry_after: Duration,
    pub tenant: String,
    pub app: String,
    pub window: Duration,
}

impl IntuneRefusal {
    /// `Retry-After` in seconds with three decimals (`1.234`), as Graph
    /// sends fractions (`2.128`).
    pub fn retry_after_text(&self) -> String {
        let ms = self.retry_after.as_millis();
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }

    pub fn retry_after_header(&self) -> HeaderValue {
        // Digits and a dot only: always a valid header value.
        HeaderValue::from_str(&self.retry_after_text())
            .unwrap_or_else(|_| HeaderValue::from_static("1"))
    }

    /// Graph's 429 for this refusal (its body, without request ids).
    pub fn error(&self) -> GraphError {
        let who = match self.limit {
            IntuneLimit::AppWrites | IntuneLimit::AppRequests => {
                format!("App '{}' in tenant '{}'", self.app, self.tenant)
            }
            IntuneLimit::TenantWrites | IntuneLimit::TenantRequests => {
                format!("Tenant '{}' (all apps together)", self.tenant)
            }
        };
        let window = humantime::format_duration(Duration::from_millis(
            u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
        ));
        GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!(
                "Too many requests. {who} has reached the Intune service limit of {} {} per {window}. \
                 Retry after {} seconds.",
                self.limit.count(),
                self.limit.noun(),
                self.retry_after_text()
            ),
        )
    }
}

/// What the meter has seen for one app in one tenant, or for one tenant's
/// apps together (`app` is then `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntuneUsage {
    pub tenant: String,
    /// The token's client id ([`ANONYMOUS_APP`] without one); `None` for the
    /// tenant's totals.
    pub app: Option<String>,
    /// Requests admitted (any method), writes included.
    pub admitted_requests: u64,
    pub admitted_writes: u64,
    /// Requests answered 429 by these limits, writes included.
    pub refused_requests: u64,
    pub refused_writes: u64,
    /// The most admitted writes any one window held. Never above the limit
    /// by construction; read it to see how close traffic came.
    pub peak_writes: u64,
    /// The most admitted requests any one window held.
    pub peak_requests: u64,
    /// The most writes that arrived in any one window, admitted or refused:
    /// what a client offered. At most the write limit means the client kept
    /// within the budget on its own.
    pub peak_offered_writes: u64,
}

/// Every count the meter holds; see [`super::Emulator::intune_usage`]. It
/// reads back from `GET /_emulator/intune-limits` (the load tool does).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntuneReport {
    /// Requests answered 429 by the Intune limits.
    pub throttled: u64,
    pub admitted_requests: u64,
    pub admitted_writes: u64,
    /// Per app per tenant, by tenant then app.
    pub apps: Vec<IntuneUsage>,
    /// Per tenant, all apps together, by tenant.
    pub tenants: Vec<IntuneUsage>,
}

/// Times of entries in the current window, oldest first, and the most it
/// ever held.
#[derive(Default)]
struct Log {
    times: VecDeque<Instant>,
    peak: usize,
}

impl Log {
    /// Drops entries at least `window` old: an entry at `t` counts for a
    /// request at `now` while `now - t < window`.
    fn prune(&mut self, now: Instant, window: Duration) {
        while let Some(&oldest) = self.times.front() {
            if now.saturating_duration_since(oldest) < window {
                break;
            }
            self.times.pop_front();
        }
    }

    /// How long until the window has room for one more under `limit`;
    /// `None` when it has room now. Call after [`Log::prune`].
    fn wait(&self, limit: usize, now: Instant, window: Duration) -> Option<Duration> {
        let over = self.times.len().checked_sub(limit)?;
        // The entry whose leaving brings the log below the limit.
        let leaving = *self.times.get(over)?;
        // Past what an Instant can hold: it never leaves.
        Some(
            leaving
                .checked_add(window)
                .map_or(Duration::MAX, |at| at.saturating_duration_since(now)),
        )
    }

    fn push(&mut self, now: Instant) {
        self.times.push_back(now);
        self.peak = self.peak.max(self.times.len());
    }
}

/// One app's (or one tenant's) logs and counters.
#[derive(Default)]
struct Usage {
    writes: Log,
    requests: Log,
    offered_writes: Log,
    admitted_requests: u64,
    admitted_writes: u64,
    refused_requests: u64,
    refused_writes: u64,
}

impl Usage {
    fn prune(&mut self, now: Instant, window: Duration) {
        self.writes.prune(now, window);
        self.requests.prune(now, window);
        self.offered_writes.prune(now, window);
    }

    fn admit(&mut self, is_write: bool, now: Instant) {
        self.admitted_requests += 1;
        self.requests.push(now);
        if is_write {
            self.admitted_writes += 1;
            self.writes.push(now);
        }
    }

    fn refuse(&mut self, is_write: bool) {
        self.refused_requests += 1;
        if is_write {
            self.refused_writes += 1;
        }
    }

    fn report(&self, tenant: &str, app: Option<&str>) -> IntuneUsage {
        let peak = |log: &Log| u64::try_from(log.peak).unwrap_or(u64::MAX);
        IntuneUsage {
            tenant: tenant.to_owned(),
            app: app.map(str::to_owned),
            admitted_requests: self.admitted_requests,
            admitted_writes: self.admitted_writes,
            refused_requests: self.refused_requests,
            refused_writes: self.refused_writes,
            peak_writes: peak(&self.writes),
            peak_requests: peak(&self.requests),
            peak_offered_writes: peak(&self.offered_writes),
        }
    }
}

#[derive(Default)]
struct Tenant {
    all: Usage,
    apps: HashMap<String, Usage>,
}

/// The sliding logs of every tenant and app seen since the last reset.
#[derive(Default)]
pub struct IntuneMeter {
    tenants: HashMap<String, Tenant>,
    /// The latest time admitted, so that times only move forward in the logs
    /// even if callers read their clocks out of order.
    latest: Option<Instant>,
    throttled: u64,
    admitted_requests: u64,
    admitted_writes: u64,
}

impl IntuneMeter {
    /// Admits one request of `app` in `tenant` at `now`, or refuses it when
    /// any limit's window (of length `window`) is full. A refused request is
    /// not entered in any window (see the module doc).
    pub fn admit(
        &mut self,
        window: Duration,
        tenant: &str,
        app: &str,
        is_write: bool,
        now: Instant,
    ) -> Result<(), IntuneRefusal> {
        let now = self.latest.map_or(now, |latest| latest.max(now));
        self.latest = Some(now);
        let entry = self.tenants.entry(tenant.to_owned()).or_default();
        let all = &mut entry.all;
        let one = entry.apps.entry(app.to_owned()).or_default();
        all.prune(now, window);
        one.prune(now, window);
        if is_write {
            all.offered_writes.push(now);
            one.offered_writes.push(now);
        }
        // On equal waits the first named is told: the app's own limit, and a
        // write limit before the request limit.
        let mut checks = Vec::with_capacity(4);
        if is_write {
            checks.push((IntuneLimit::AppWrites, &one.writes));
        }
        checks.push((IntuneLimit::AppRequests, &one.requests));
        if is_write {
            checks.push((IntuneLimit::TenantWrites, &all.writes));
        }
        checks.push((IntuneLimit::TenantRequests, &all.requests));
        let binding = checks
            .into_iter()
            .filter_map(|(limit, log)| Some((limit, log.wait(limit.count(), now, window)?)))
            .reduce(|best, next| if next.1 > best.1 { next } else { best });
        match binding {
            None => {
                one.admit(is_write, now);
                all.admit(is_write, now);
                self.admitted_requests += 1;
                if is_write {
                    self.admitted_writes += 1;
                }
                Ok(())
            }
            Some((limit, wait)) => {
                one.refuse(is_write);
                all.refuse(is_write);
                self.throttled += 1;
                Err(IntuneRefusal {
                    limit,
                    retry_after: round_up_to_ms(wait).max(Duration::from_millis(1)),
                    tenant: tenant.to_owned(),
                    app: app.to_owned(),
                    window,
                })
            }
        }
    }

    /// Requests refused by the limits.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }

    pub fn admitted_requests(&self) -> u64 {
        self.admitted_requests
    }

    pub fn admitted_writes(&self) -> u64 {
        self.admitted_writes
    }

    /// Every count, in a stable order.
    pub fn report(&self) -> IntuneReport {
        let sorted: BTreeMap<&str, &Tenant> = self
            .tenants
            .iter()
            .map(|(name, tenant)| (name.as_str(), tenant))
            .collect();
        let mut apps = Vec::new();
        let mut tenants = Vec::new();
        for (name, tenant) in sorted {
            tenants.push(tenant.all.report(name, None));
            let by_app: BTreeMap<&str, &Usage> = tenant
                .apps
                .iter()
                .map(|(app, usage)| (app.as_str(), usage))
                .collect();
            apps.extend(
                by_app
                    .into_iter()
                    .map(|(app, usage)| usage.report(name, Some(app))),
            );
        }
        IntuneReport {
            throttled: self.throttled,
            admitted_requests: self.admitted_requests,
            admitted_writes: self.admitted_writes,
            apps,
            tenants,
        }
    }
}

fn round_up_to_ms(duration: Duration) -> Duration {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(2);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_app_gets_100_writes_per_window_and_the_window_slides() {
        let mut meter = IntuneMeter::default();
        let t0 = Instant::now();
        // 100 writes spread over the first second.
        for i in 0..100 {
            let at = t0 + ms(i * 10);
            assert_eq!(meter.admit(W, "t", "a", true, at), Ok(()), "write {i}");
        }
        let refusal = meter
            .admit(W, "t", "a", true, t0 + ms(1500))
            .expect_err("the 101st write in the window");
        assert_eq!(refusal.limit, IntuneLimit::AppWrites);
        // The oldest entry (t0) leaves at t0 + 2 s.
        assert_eq!(refusal.retry_after, ms(500));
        assert_eq!(refusal.retry_after_text(), "0.500");
        // Reads still pass: the request limit is far off.
        assert_eq!(meter.admit(W, "t", "a", false, t0 + ms(1500)), Ok(()));
        // One nanosecond early, still refused, and the wait rounds up to 1 ms.
        let early = t0 + W - Duration::from_nanos(1);
        let refusal = meter.admit(W, "t", "a", true, early).expect_err("early");
        assert_eq!(refusal.retry_after, ms(1));
        // When the oldest has left, one write is admitted, and the next waits
        // for the second oldest (t0 + 10 ms).
        assert_eq!(meter.admit(W, "t", "a", true, t0 + W), Ok(()));
        let refusal = meter.admit(W, "t", "a", true, t0 + W).expect_err("full");
        assert_eq!(refusal.retry_after, ms(10));
        let report = meter.report();
        assert_eq!(report.throttled, 3);
        assert_eq!(report.admitted_writes, 101);
        assert_eq!(report.admitted_requests, 102);
        let app = &report.apps[0];
        assert_eq!((app.tenant.as_str(), app.app.as_deref()), ("t", Some("a")));
        assert_eq!(app.peak_writes, 100);
        assert_eq!(app.refused_writes, 3);
        assert_eq!(app.peak_offered_writes, 103, "refused writes were offered");
    }

    #[test]
    fn the_tenant_caps_its_apps_together_at_200_writes() {
        let mut meter = IntuneMeter::default();
        let t0 = Instant::now();
        for app in ["a", "b"] {
            for _ in 0..100 {
                assert_eq!(meter.admit(W, "t", app, true, t0), Ok(()));
            }
            let refusal = meter.admit(W, "t", app, true, t0).expect_err("own 100");
            assert_eq!(refusal.limit, IntuneLimit::AppWrites);
        }
        let refusal = meter
            .admit(W, "t", "c", true, t0 + ms(1))
            .expect_err("tenant full");
        assert_eq!(refusal.limit, IntuneLimit::TenantWrites);
        assert_eq!(refusal.retry_after, W - ms(1));
        // Another tenant is untouched.
        assert_eq!(meter.admit(W, "u", "a", true, t0), Ok(()));
        let report = meter.report();
        assert_eq!(report.tenants[0].tenant, "t");
        assert_eq!(report.tenants[0].peak_writes, 200);
        assert_eq!(report.tenants[0].refused_writes, 3);
        assert_eq!(report.tenants[1].admitted_writes, 1);
    }

    #[test]
    fn reads_are_capped_at_1000_per_app_and_2000_per_tenant() {
        let mut meter = IntuneMeter::default();
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(meter.admit(W, "t", "a", false, t0), Ok(()));
        }
        let refusal = meter.admit(W, "t", "a", false, t0).expect_err("1001st");
        assert_eq!(refusal.limit, IntuneLimit::AppRequests);
        // A write is a request too.
        let refusal = meter.admit(W, "t", "a", true, t0).expect_err("write");
        assert_eq!(refusal.limit, IntuneLimit::AppRequests);
        for _ in 0..1000 {
            assert_eq!(meter.admit(W, "t", "b", false, t0 + ms(5)), Ok(()));
        }
        let refusal = meter
            .admit(W, "t", "c", true, t0 + ms(5))
            .expect_err("tenant");
        assert_eq!(refusal.limit, IntuneLimit::TenantRequests);
        assert_eq!(refusal.retry_after, W - ms(5));
    }

    #[test]
    fn the_longest_wait_decides_when_several_limits_are_full() {
        let mut meter = IntuneMeter::default();
        let t0 = Instant::now();
        // App "a": 100 writes at t0 + 1 s. App "b": 100 writes at t0.
        for _ in 0..100 {
            assert_eq!(meter.admit(W, "t", "b", true, t0), Ok(()));
        }
        for _ in 0..100 {
            assert_eq!(meter.admit(W, "t", "a", true, t0 + ms(1000)), Ok(()));
        }
        // At t0 + 1.5 s both a's window and the tenant's are full; the
        // tenant has room at t0 + 2 s, a only at t0 + 3 s.
        let refusal = meter
            .admit(W, "t", "a", true, t0 + ms(1500))
            .expect_err("full");
        assert_eq!(refusal.limit, IntuneLimit::AppWrites);
        assert_eq!(refusal.retry_after, ms(1500));
    }

    #[test]
    fn clocks_read_out_of_order_do_not_reorder_the_log() {
        let mut meter = IntuneMeter::default();
        let t0 = Instant::now();
        assert_eq!(meter.admit(W, "t", "a", true, t0 + ms(100)), Ok(()));
        // An earlier reading is taken as the latest time seen.
        for _ in 0..99 {
            assert_eq!(meter.admit(W, "t", "a", true, t0), Ok(()));
        }
        let refusal = meter.admit(W, "t", "a", true, t0).expect_err("full");
        assert_eq!(refusal.retry_after, W);
    }

    #[test]
    fn degenerate_windows_do_not_panic() {
        let mut meter = IntuneMeter::default();
        let now = Instant::now();
        for _ in 0..300 {
            assert_eq!(meter.admit(Duration::ZERO, "t", "a", true, now), Ok(()));
        }
        for _ in 0..100 {
            assert_eq!(meter.admit(Duration::MAX, "u", "a", true, now), Ok(()));
        }
        // The entry never leaves a window that long: the wait saturates.
        let refusal = meter
            .admit(Duration::MAX, "u", "a", true, now)
            .expect_err("full");
        assert!(refusal.retry_after >= Duration::from_secs(1), "{refusal:?}");
        assert!(!refusal.retry_after_text().is_empty());
    }

    #[test]
    fn retry_after_is_seconds_with_milliseconds_rounded_up() {
        assert_eq!(round_up_to_ms(Duration::from_nanos(1)), ms(1));
        assert_eq!(round_up_to_ms(Duration::from_micros(1_234_001)), ms(1235));
        assert_eq!(round_up_to_ms(ms(2128)), ms(2128));
        let refusal = |retry_after| IntuneRefusal {
            limit: IntuneLimit::AppWrites,
            retry_after,
            tenant: "t".into(),
            app: "a".into(),
            window: Duration::from_secs(20),
        };
        assert_eq!(refusal(ms(1234)).retry_after_text(), "1.234");
        assert_eq!(refusal(ms(2128)).retry_after_header(), "2.128");
        assert_eq!(refusal(ms(7)).retry_after_text(), "0.007");
        assert_eq!(refusal(ms(20_000)).retry_after_text(), "20.000");
        let error = refusal(ms(1234)).error();
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.code, "TooManyRequests");
        assert!(
            error.message.contains("100 writes per 20s"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("App 'a' in tenant 't'"),
            "{}",
            error.message
        );
        assert!(error.message.contains("1.234 seconds"), "{}", error.message);
    }
}

//! Per-tenant fixed-window request budgets ([`TenantBudget`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::options::TenantBudget;

/// The tenant of Graph requests that carry no token this emulator knows.
pub const ANONYMOUS_TENANT: &str = "anonymous";

#[derive(Default)]
pub struct Windows {
    by_tenant: HashMap<String, Window>,
    throttled: u64,
}

struct Window {
    started: Instant,
    used: u32,
}

impl Windows {
    /// Counts one request for `tenant` at `now`; `Err` with the whole seconds
    /// until its window ends (at least 1) when the budget is spent.
    pub fn admit(&mut self, tenant: &str, budget: &TenantBudget, now: Instant) -> Result<(), u64> {
        let window = self.by_tenant.entry(tenant.to_owned()).or_insert(Window {
            started: now,
            used: 0,
        });
        let elapsed = now.saturating_duration_since(window.started);
        if elapsed >= budget.per {
            *window = Window {
                started: now,
                used: 0,
            };
        }
        if window.used < budget.requests {
            window.used += 1;
            return Ok(());
        }
        self.throttled += 1;
        let remaining = budget
            .per
            .saturating_sub(now.saturating_duration_since(window.started));
        Err(ceil_secs(remaining).max(1))
    }

    pub fn throttled(&self) -> u64 {
        self.throttled
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    let whole = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        whole.saturating_add(1)
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_per_tenant() {
        let budget = TenantBudget::new(2, Duration::from_millis(2500));
        let mut windows = Windows::default();
        let t0 = Instant::now();
        assert_eq!(windows.admit("a", &budget, t0), Ok(()));
        assert_eq!(windows.admit("a", &budget, t0), Ok(()));
        assert_eq!(windows.admit("a", &budget, t0), Err(3), "2.5 s rounds up");
        assert_eq!(windows.admit("b", &budget, t0), Ok(()), "own window");
        let late = t0 + Duration::from_millis(2400);
        assert_eq!(windows.admit("a", &budget, late), Err(1), "at least 1");
        let next = t0 + Duration::from_millis(2500);
        assert_eq!(windows.admit("a", &budget, next), Ok(()), "new window");
        assert_eq!(windows.throttled(), 2);
    }

    #[test]
    fn degenerate_budgets_do_not_panic() {
        let mut windows = Windows::default();
        let now = Instant::now();
        let none = TenantBudget::new(0, Duration::MAX);
        assert_eq!(windows.admit("a", &none, now), Err(u64::MAX));
        let instant = TenantBudget::new(1, Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(windows.admit("b", &instant, now), Ok(()));
        }
    }
}

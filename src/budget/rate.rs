//! A budget's size: so many requests per window (`100/20s`), the way
//! Intune's service limits are written.

use crate::settings::Bound;
use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

/// `tokens` requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub tokens: u32,
    pub window: Duration,
}

impl Rate {
    pub const fn new(tokens: u32, window: Duration) -> Self {
        Self { tokens, window }
    }

    /// Reads `100/20s` (the window in humantime form: `20s`, `1m`, `500ms`).
    pub fn parse(text: &str) -> Option<Self> {
        let (tokens, window) = text.trim().split_once('/')?;
        let tokens = tokens.trim().parse().ok()?;
        let window = humantime::parse_duration(window.trim()).ok()?;
        Some(Self { tokens, window })
    }

    /// Tokens per second, for reports.
    pub fn per_second(self) -> f64 {
        f64::from(self.tokens) / self.window.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// This rate's `percent` share, never below one token per window.
    pub fn share(self, percent: f64) -> Self {
        let share = (f64::from(self.tokens) * percent / 100.0).floor();
        // In range by construction: 0 <= share <= tokens.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let tokens = if share.is_finite() {
            (share as u32).clamp(1, self.tokens.max(1))
        } else {
            self.tokens
        };
        Self { tokens, ..self }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tokens, self.window.text())
    }
}

/// The product order: a rate lies between two others when both its count
/// and its window do, which is how a setting's range bounds it.
impl PartialOrd for Rate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (
            self.tokens.cmp(&other.tokens),
            self.window.cmp(&other.window),
        ) {
            (a, b) if a == b => Some(a),
            (Ordering::Equal, b) => Some(b),
            (a, Ordering::Equal) => Some(a),
            _ => None,
        }
    }
}

impl Bound for Rate {
    fn text(self) -> String {
        self.to_string()
    }

    fn parse(text: &str) -> Option<Self> {
        Rate::parse(text)
    }

    fn number(self) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_intune_form() {
        let rate = Rate::parse("100/20s").expect("parses");
        assert_eq!(rate, Rate::new(100, Duration::from_secs(20)));
        assert_eq!(rate.to_string(), "100/20s");
        assert_eq!(
            Rate::parse(" 5 / 250ms"),
            Some(Rate::new(5, Duration::from_millis(250)))
        );
        for bad in [
            "",
            "100",
            "/20s",
            "100/",
            "-1/20s",
            "x/20s",
            "100/20 parsecs",
            "1/2/3s",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
        assert!((rate.per_second() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_range_bounds_the_count_and_the_window_each() {
        let min = Rate::new(1, Duration::from_millis(100));
        let max = Rate::new(100_000, Duration::from_secs(3600));
        let within = |r: Rate| min <= r && r <= max;
        assert!(within(Rate::new(100, Duration::from_secs(20))));
        assert!(!within(Rate::new(0, Duration::from_secs(20))));
        assert!(!within(Rate::new(100, Duration::from_millis(10))));
        assert!(!within(Rate::new(200_000, Duration::from_secs(20))));
        assert!(!within(Rate::new(100, Duration::from_secs(7200))));
    }

    #[test]
    fn a_share_keeps_at_least_one_token() {
        let rate = Rate::new(100, Duration::from_secs(20));
        assert_eq!(rate.share(100.0 / 3.0).tokens, 33);
        assert_eq!(rate.share(0.0001).tokens, 1);
        assert_eq!(rate.share(100.0).tokens, 100);
        assert_eq!(rate.share(f64::NAN).tokens, 100);
    }
}

//! `google.protobuf.Timestamp` <-> Graph `DateTimeOffset`.
//!
//! Graph keeps instants to 100 ns (7 fractional digits) and accepts years
//! 0001..=9999, as RFC 3339 does. The gateway sends UTC with 7 digits and
//! refuses an instant Graph would have to round, so the instant stored is
//! exactly the instant asked for.

use prost_types::Timestamp;
use std::fmt;
use time::{format_description::well_known::Rfc3339, OffsetDateTime, PrimitiveDateTime};

/// 0001-01-01T00:00:00Z in Unix seconds.
pub const MIN_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z in Unix seconds.
pub const MAX_SECONDS: i64 = 253_402_300_799;
/// Graph's resolution: one tick of .NET `DateTimeOffset`.
const TICK_NANOS: i32 = 100;

/// Why a Timestamp cannot be sent to Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// Before 0001-01-01 or after 9999-12-31, or `nanos` outside 0..1e9.
    OutOfRange,
    /// Finer than Graph's 100 ns: Graph would silently round it.
    TooPrecise,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str(
                "timestamp outside the RFC 3339 range 0001-01-01T00:00:00Z..9999-12-31T23:59:59.9999999Z",
            ),
            Self::TooPrecise => f.write_str(
                "timestamp finer than Graph's 100 ns resolution; Graph would round it, so send a multiple of 100 ns",
            ),
        }
    }
}

/// A validated instant, written as Graph expects (`2017-01-01T08:02:18.1994089Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphDateTime(OffsetDateTime);

impl GraphDateTime {
    /// Validates a proto Timestamp for Graph.
    pub fn from_proto(ts: &Timestamp) -> Result<Self, TimestampError> {
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds)
            || !(0..1_000_000_000).contains(&ts.nanos)
        {
            return Err(TimestampError::OutOfRange);
        }
        if ts.nanos % TICK_NANOS != 0 {
            return Err(TimestampError::TooPrecise);
        }
        let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(Self)
            .map_err(|_| TimestampError::OutOfRange)
    }
}

impl fmt::Display for GraphDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let ticks = t.nanosecond() / 100;
        if ticks != 0 {
            write!(f, ".{ticks:07}")?;
        }
        f.write_str("Z")
    }
}

impl serde::Serialize for GraphDateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Reads a Graph `DateTimeOffset`: RFC 3339 with any offset and up to 9
/// fractional digits; a value without an offset is read as UTC, since some
/// Graph services omit it.
pub fn from_graph(value: &str) -> Option<Timestamp> {
    let t = OffsetDateTime::parse(value, &Rfc3339).ok().or_else(|| {
        let fmt = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        PrimitiveDateTime::parse(value, &fmt)
            .ok()
            .map(PrimitiveDateTime::assume_utc)
    })?;
    let seconds = t.unix_timestamp();
    let nanos = i32::try_from(t.nanosecond()).ok()?;
    Some(Timestamp { seconds, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn seven_digit_offset_keeps_the_instant() {
        // 2017-01-01T00:02:18.1994089-08:00 == 2017-01-01T08:02:18.1994089Z
        let got = from_graph("2017-01-01T00:02:18.1994089-08:00").expect("parses");
        assert_eq!(got, ts(1_483_257_738, 199_408_900));
        let back = GraphDateTime::from_proto(&got).expect("valid").to_string();
        assert_eq!(back, "2017-01-01T08:02:18.1994089Z");
        assert_eq!(from_graph(&back), Some(got));
    }

    #[test]
    fn reads_zulu_positive_offsets_and_no_fraction() {
        assert_eq!(from_graph("1970-01-01T00:00:00Z"), Some(ts(0, 0)));
        assert_eq!(from_graph("1970-01-01T05:30:00+05:30"), Some(ts(0, 0)));
        assert_eq!(
            from_graph("1970-01-01T00:00:01.5Z"),
            Some(ts(1, 500_000_000))
        );
        assert_eq!(
            from_graph("2021-09-14T19:05:24"),
            Some(ts(1_631_646_324, 0))
        );
        assert_eq!(from_graph("0001-01-01T00:00:00Z"), Some(ts(MIN_SECONDS, 0)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "yesterday", "2017-13-01T00:00:00Z", "2017-01-01"] {
            assert_eq!(from_graph(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_range_ends_exactly() {
        let min = GraphDateTime::from_proto(&ts(MIN_SECONDS, 0)).expect("min");
        assert_eq!(min.to_string(), "0001-01-01T00:00:00Z");
        let max = GraphDateTime::from_proto(&ts(MAX_SECONDS, 999_999_900)).expect("max");
        assert_eq!(max.to_string(), "9999-12-31T23:59:59.9999999Z");
        let before_epoch = GraphDateTime::from_proto(&ts(-1, 100)).expect("valid");
        assert_eq!(before_epoch.to_string(), "1969-12-31T23:59:59.0000001Z");
    }

    #[test]
    fn refuses_out_of_range_and_over_precise() {
        assert_eq!(
            GraphDateTime::from_proto(&ts(MIN_SECONDS - 1, 0)),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            GraphDateTime::from_proto(&ts(MAX_SECONDS + 1, 0)),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            GraphDateTime::from_proto(&ts(0, -1)),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            GraphDateTime::from_proto(&ts(0, 1_000_000_000)),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            GraphDateTime::from_proto(&ts(i64::MAX, 0)),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            GraphDateTime::from_proto(&ts(0, 150)),
            Err(TimestampError::TooPrecise)
        );
    }
}

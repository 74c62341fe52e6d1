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
pub struct GraphDateTime {
    /// Unix seconds, within `MIN_SECONDS..=MAX_SECONDS`.
    seconds: i64,
    /// A multiple of `TICK_NANOS` below one second.
    nanos: u32,
}

/// The longest form written: `9999-12-31T23:59:59.9999999Z`.
const WRITTEN_MAX: usize = 28;

const SECONDS_PER_DAY: i64 = 86_400;

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
        Ok(Self {
            seconds: ts.seconds,
            nanos: u32::try_from(ts.nanos).map_err(|_| TimestampError::OutOfRange)?,
        })
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS[.fffffff]Z` (UTC, 7 digits unless whole
    /// seconds) into `buf` and returns that part of it. Written by hand: this runs for every PATCH, and going through
    /// `fmt` costs several times the whole conversion.
    fn write(self, buf: &mut [u8; WRITTEN_MAX]) -> Result<&str, std::str::Utf8Error> {
        let days = self.seconds.div_euclid(SECONDS_PER_DAY);
        let of_day = self.seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        put_digits(&mut buf[0..4], year);
        buf[4] = b'-';
        put_digits(&mut buf[5..7], month);
        buf[7] = b'-';
        put_digits(&mut buf[8..10], day);
        buf[10] = b'T';
        put_digits(&mut buf[11..13], of_day / 3600);
        buf[13] = b':';
        put_digits(&mut buf[14..16], of_day / 60 % 60);
        buf[16] = b':';
        put_digits(&mut buf[17..19], of_day % 60);
        let mut len = 19;
        let ticks = self.nanos / TICK_NANOS.unsigned_abs();
        if ticks != 0 {
            buf[19] = b'.';
            put_digits(&mut buf[20..27], i64::from(ticks));
            len = 27;
        }
        buf[len] = b'Z';
        // Only ASCII digits and separators were written: this cannot fail.
        std::str::from_utf8(&buf[..=len])
    }
}

/// Writes `value` (non-negative) as zero-padded decimal filling `out`.
fn put_digits(out: &mut [u8], mut value: i64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// (year, month, day) of the proleptic Gregorian calendar for a count of
/// days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, 0..=146_096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for GraphDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; WRITTEN_MAX]).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for GraphDateTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(
            self.write(&mut [0; WRITTEN_MAX])
                .map_err(serde::ser::Error::custom)?,
        )
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

    /// The instant as the `time` crate's calendar spells it, to check the
    /// hand-written writer against.
    fn reference(seconds: i64, nanos: i32) -> String {
        let t = OffsetDateTime::from_unix_timestamp(seconds).expect("in range");
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        if nanos != 0 {
            s += &format!(".{:07}", nanos / 100);
        }
        s.push('Z');
        s
    }

    fn written(seconds: i64, nanos: i32) -> String {
        GraphDateTime::from_proto(&ts(seconds, nanos))
            .expect("valid")
            .to_string()
    }

    #[test]
    fn writer_agrees_with_the_calendar_at_its_edges() {
        let mut midnights = vec![MIN_SECONDS, MAX_SECONDS + 1];
        for date in [
            "0001-03-01",
            "0004-02-29",
            "0004-03-01",
            "0100-02-28",
            "0100-03-01",
            "0400-02-29",
            "0400-03-01",
            "1600-03-01",
            "1900-02-28",
            "1900-03-01",
            "1970-01-01",
            "2000-02-29",
            "2000-03-01",
            "2024-02-29",
            "2100-02-28",
            "2100-03-01",
            "9999-12-31",
        ] {
            let t = from_graph(&format!("{date}T00:00:00Z")).expect(date);
            midnights.push(t.seconds);
        }
        for midnight in midnights {
            for seconds in [midnight - 1, midnight, midnight + 1] {
                if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
                    continue;
                }
                for nanos in [0, 100, 1_000, 100_000_000, 500_000_000, 999_999_900] {
                    assert_eq!(
                        written(seconds, nanos),
                        reference(seconds, nanos),
                        "{seconds}s {nanos}ns"
                    );
                }
            }
        }
    }

    #[test]
    fn writer_agrees_with_the_calendar_across_the_range() {
        // A stride through all ten millennia, landing on every time of day.
        let mut seconds = MIN_SECONDS;
        while seconds <= MAX_SECONDS {
            assert_eq!(written(seconds, 0), reference(seconds, 0), "{seconds}");
            seconds += 7_919 * 3_607;
        }
        // Every day of one whole 400-year Gregorian cycle, at varying times.
        let cycle_start = 951_868_800; // 2000-03-01T00:00:00Z
        for day in 0..146_097 {
            let seconds = cycle_start + day * 86_400 + (day * 7_919) % 86_400;
            assert_eq!(
                written(seconds, 123_456_700),
                reference(seconds, 123_456_700),
                "day {day}"
            );
        }
    }

    #[test]
    fn serialises_as_a_json_string() {
        let d = GraphDateTime::from_proto(&ts(1_483_257_738, 199_408_900)).expect("valid");
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            "\"2017-01-01T08:02:18.1994089Z\""
        );
        let d = GraphDateTime::from_proto(&ts(0, 0)).expect("valid");
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            "\"1970-01-01T00:00:00Z\""
        );
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

//! Edm.DateTimeOffset as Graph reads and writes it.
//!
//! Graph sits on .NET, whose `DateTimeOffset` counts 100 ns ticks, keeps an
//! offset of at most ±14:00 and starts at year 1. The emulator checks incoming
//! values against those limits but stores the text the client sent, so the
//! instant (and the client's offset) comes back exactly as written.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Most fractional-second digits a .NET tick can carry.
const MAX_FRACTION_DIGITS: usize = 7;
/// Largest offset .NET accepts, in minutes.
const MAX_OFFSET_MINUTES: i16 = 14 * 60;

/// Parses an RFC 3339 timestamp with an explicit offset, or `None` when Graph
/// would reject it.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    if fraction_digits(text) > MAX_FRACTION_DIGITS {
        return None;
    }
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let offset_ok = parsed.offset().whole_minutes().abs() <= MAX_OFFSET_MINUTES;
    (offset_ok && parsed.year() >= 1).then_some(parsed)
}

/// Counts the digits after the seconds' decimal point (0 when there is none).
fn fraction_digits(text: &str) -> usize {
    let Some(time_start) = text.find(['T', 't']) else {
        return 0;
    };
    let time_part = &text[time_start..];
    match time_part.find('.') {
        Some(dot) => time_part[dot + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count(),
        None => 0,
    }
}

/// `createdDateTime` for a new task: UTC with 7 fractional digits and `Z`,
/// the form Graph writes.
pub fn now_created() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.nanosecond() / 100
    )
}

/// `innerError.date`: UTC without fraction or offset, as Graph writes it.
pub fn now_error_date() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Entra's `timestamp`: `2016-01-09 02:02:12Z`.
pub fn now_entra_timestamp() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A Unix time as Entra writes instants in messages
/// (`2024-01-01T00:00:00.0000000Z`), or the number itself when it is out of
/// range.
pub fn entra_instant(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => unix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_graph_forms() {
        for ok in [
            "2017-01-01T00:02:18.1994089-08:00",
            "2017-01-01T08:02:18Z",
            "2017-01-01T08:02:18.1Z",
            "2017-01-01T08:02:18+14:00",
        ] {
            assert!(parse(ok).is_some(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_dotnet_cannot_hold() {
        for bad in [
            "2017-01-01T00:02:18.19940891-08:00",
            "2017-01-01T00:02:18",
            "2017-01-01",
            "2017-01-01T08:02:18+14:01",
            "0000-01-01T00:00:00Z",
            "yesterday",
            "",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn now_forms_have_graph_shape() {
        let created = now_created();
        assert_eq!(created.len(), "2017-01-01T00:02:43.5775965Z".len());
        assert!(parse(&created).is_some());
        assert_eq!(now_error_date().len(), "2021-09-14T19:05:24".len());
        assert_eq!(now_entra_timestamp().len(), "2016-01-09 02:02:12Z".len());
        assert_eq!(entra_instant(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(entra_instant(i64::MAX), i64::MAX.to_string());
    }
}

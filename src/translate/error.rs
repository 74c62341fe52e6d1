//! What translation reports when a request or a Graph answer cannot be used.

use std::fmt;

/// One bad field of a request (becomes a `google.rpc.BadRequest` violation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field's path, e.g. `security_configuration_task.id`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// The most violations one answer carries. The status message and its
/// details travel as HTTP/2 headers, which gRPC clients cap (16 KiB by
/// default): a request with thousands of problems must still be answered
/// INVALID_ARGUMENT, not lost to a transport error, so the rest are counted.
pub const MAX_VIOLATIONS: usize = 20;

/// The most violations the status message spells out; the details hold up
/// to [`MAX_VIOLATIONS`].
const MAX_VIOLATIONS_IN_MESSAGE: usize = 5;

/// A request that must not reach Graph, with the reasons found: the first
/// [`MAX_VIOLATIONS`] of them, and how many more there were.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvalidRequest {
    pub violations: Vec<FieldViolation>,
    /// Violations found beyond [`MAX_VIOLATIONS`], counted but not kept.
    pub omitted: usize,
}

impl InvalidRequest {
    /// A request with one bad field.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::default();
        v.push(field, description);
        v
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.violations.len() >= MAX_VIOLATIONS {
            self.omitted += 1;
            return;
        }
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// `Err(self)` when anything was found, else `Ok(value)`.
    pub fn or_ok<T>(self, value: T) -> Result<T, Self> {
        if self.violations.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i == MAX_VIOLATIONS_IN_MESSAGE {
                let more = self.violations.len() - i + self.omitted;
                return write!(f, "; and {more} more");
            }
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        if self.omitted > 0 {
            write!(f, "; and {} more", self.omitted)?;
        }
        Ok(())
    }
}

/// Caller input quoted in a violation: at most this many bytes of it,
/// escaped.
const MAX_QUOTED_BYTES: usize = 40;

/// `text` in double quotes, escaped as Rust escapes a string (so control
/// characters show) and cut at [`MAX_QUOTED_BYTES`] of escaped text; a cut
/// one ends with `...` outside the quotes and says how long the whole was.
pub(crate) fn quoted(text: &str) -> String {
    let mut shown = String::with_capacity(MAX_QUOTED_BYTES + 24);
    shown.push('"');
    for c in text.chars() {
        let before = shown.len();
        if c == '\'' {
            shown.push(c);
        } else {
            shown.extend(c.escape_debug());
        }
        if shown.len() > MAX_QUOTED_BYTES + 1 {
            shown.truncate(before);
            shown.push_str("\"...");
            shown.push_str(&format!(" ({} bytes)", text.len()));
            return shown;
        }
    }
    shown.push('"');
    shown
}

/// A Graph answer the gateway cannot turn into a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The object is a task of another type (its `@odata.type`).
    NotSecurityTask { odata_type: String },
    /// The body is not the JSON Graph documents.
    Malformed(String),
    /// A success body that is not the task asked for.
    NotTheTask(Unexpected),
}

/// How a success body fails to be the task asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unexpected {
    /// It does not say what it is.
    NoODataType,
    /// It has no `id`.
    NoId,
    /// It is another task: both ids quoted short (see [`quoted`]).
    OtherId { asked: String, got: String },
}

impl Unexpected {
    /// A short name for metadata.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NoODataType => "missing_odata_type",
            Self::NoId => "missing_id",
            Self::OtherId { .. } => "id_mismatch",
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSecurityTask { odata_type } => {
                write!(
                    f,
                    "not a securityConfigurationTask: Graph says it is {odata_type}"
                )
            }
            Self::Malformed(why) => write!(f, "Graph answered a body that cannot be read: {why}"),
            Self::NotTheTask(Unexpected::NoODataType) => f.write_str(
                "Graph answered success with a body that is not the task asked for: it has no @odata.type",
            ),
            Self::NotTheTask(Unexpected::NoId) => f.write_str(
                "Graph answered success with a body that is not the task asked for: it has no id",
            ),
            Self::NotTheTask(Unexpected::OtherId { asked, got }) => write!(
                f,
                "Graph answered success with a body that is not the task asked for: its id is {got}, not {asked}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_past_the_cap_are_counted() {
        let mut e = InvalidRequest::default();
        for i in 0..MAX_VIOLATIONS + 7 {
            e.push(format!("f{i}"), "bad");
        }
        assert_eq!(e.violations.len(), MAX_VIOLATIONS);
        assert_eq!(e.omitted, 7);
        assert_eq!(
            e.to_string(),
            format!(
                "f0: bad; f1: bad; f2: bad; f3: bad; f4: bad; and {} more",
                MAX_VIOLATIONS + 7 - 5
            )
        );
        let mut few = InvalidRequest::single("a", "x");
        few.push("b", "y");
        assert_eq!(few.to_string(), "a: x; b: y");
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quoted("bogus"), "\"bogus\"");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        assert_eq!(quoted("it's \"x\""), "\"it's \\\"x\\\"\"");
        let long = "é".repeat(100);
        assert_eq!(
            quoted(&long),
            format!("\"{}\"... (200 bytes)", "é".repeat(20))
        );
        let odd = format!("a{}", "é".repeat(100));
        assert_eq!(
            quoted(&odd),
            format!("\"a{}\"... (201 bytes)", "é".repeat(19))
        );
        // Escapes count towards the cut: the quote stays short whatever it holds.
        let controls = "\u{1}".repeat(1 << 20);
        assert_eq!(
            quoted(&controls),
            format!("\"{}\"... (1048576 bytes)", "\\u{1}".repeat(8))
        );
    }
}

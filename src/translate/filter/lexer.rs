//! Splits a `$filter` into tokens, each with the byte offset it starts at,
//! one at a time so that the parser reports the first problem from the left.

use super::FilterError;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind<'a> {
    Open,
    Close,
    /// A name: a keyword (`and`, `eq`, `true`...) or a property.
    Name(&'a str),
    /// A single-quoted string; the text between the quotes, `''` still doubled.
    Str,
    /// A number; `integer` when it has no fraction or exponent and fits an `i64`.
    Number {
        integer: Option<i64>,
    },
    /// An unquoted `DateTimeOffset`, e.g. `2017-01-01T08:02:18.1994089Z`.
    DateTime,
    /// An unquoted GUID, e.g. `5d630f12-0f12-5d63-120f-635d120f635d`.
    Guid,
}

/// One token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token<'a> {
    pub kind: Kind<'a>,
    /// Byte offset of its first character in the filter.
    pub start: usize,
    /// Its text exactly as written.
    pub text: &'a str,
}

impl Token<'_> {
    /// How an error message names it.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Open => "'('".into(),
            Kind::Close => "')'".into(),
            Kind::Name(name) => format!("'{name}'"),
            Kind::Str => format!("string literal {}", shorten(self.text)),
            Kind::Number { .. } => format!("number {}", shorten(self.text)),
            Kind::DateTime => format!("DateTimeOffset {}", self.text),
            Kind::Guid => format!("GUID {}", self.text),
        }
    }
}

/// At most 40 characters of `text`, so an error never repeats a huge input.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// Where the lexer stands: the end of the text once it is used up.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The next token, `None` at the end.
    pub fn next_token(&mut self) -> Result<Option<Token<'a>>, FilterError> {
        let rest = &self.text[self.pos..];
        let skipped = rest.len() - rest.trim_start_matches(' ').len();
        self.pos += skipped;
        let start = self.pos;
        let Some(c) = self.text[start..].chars().next() else {
            return Ok(None);
        };
        let (kind, text, end) = match c {
            '(' => (Kind::Open, "(", start + 1),
            ')' => (Kind::Close, ")", start + 1),
            '\'' => {
                let end = self.string_end(start)?;
                (Kind::Str, &self.text[start + 1..end - 1], end)
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let len = self.text[start..]
                    .find(|c: char| !is_word_char(c))
                    .unwrap_or(self.text.len() - start);
                let word = &self.text[start..start + len];
                (classify(word, start)?, word, start + len)
            }
            other => return Err(unexpected(other, start)),
        };
        self.pos = end;
        Ok(Some(Token { kind, start, text }))
    }

    /// The offset just past the quote that closes the string opened at `start`.
    fn string_end(&self, start: usize) -> Result<usize, FilterError> {
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Ok(i + 1);
            }
            i += 1;
        }
        Err(FilterError::new(
            start,
            "unbalanced quote: this string literal is never closed (a quote inside a string is written '')",
        ))
    }
}

/// Characters a name or an unquoted literal is made of.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '+' | '-')
}

fn classify(word: &str, start: usize) -> Result<Kind<'_>, FilterError> {
    if is_guid(word) {
        return Ok(Kind::Guid);
    }
    let first = word.as_bytes()[0];
    if first.is_ascii_alphabetic() || first == b'_' {
        if word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Ok(Kind::Name(word));
        }
        return Err(FilterError::new(
            start,
            format!(
                "'{}' is neither a property name nor a literal (qualified names, casts and dotted paths are not supported; a GUID is 8-4-4-4-12 hex digits)",
                shorten(word)
            ),
        ));
    }
    if let Some(kind) = number(word) {
        return Ok(kind);
    }
    if OffsetDateTime::parse(word, &Rfc3339).is_ok() {
        return Ok(Kind::DateTime);
    }
    Err(FilterError::new(
        start,
        format!(
            "'{}' is not a valid literal: a number, a DateTimeOffset with its offset (2017-01-01T08:02:18Z) or a GUID",
            shorten(word)
        ),
    ))
}

/// An OData number: `-?digits(.digits)?([eE][+-]?digits)?`, finite.
fn number(word: &str) -> Option<Kind<'static>> {
    let unsigned = word.strip_prefix('-').unwrap_or(word);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if !digits(whole) || !fraction.is_none_or(digits) || !exponent_ok {
        return None;
    }
    if !word.parse::<f64>().is_ok_and(f64::is_finite) {
        return None;
    }
    let integer = if fraction.is_none() && exponent.is_none() {
        word.parse::<i64>().ok()
    } else {
        None
    };
    Some(Kind::Number { integer })
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_guid(word: &str) -> bool {
    let groups: Vec<&str> = word.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Why a character cannot start a token.
fn unexpected(c: char, at: usize) -> FilterError {
    let why = match c {
        '$' => "'$' is not allowed: a filter cannot hold query options or parameter aliases".into(),
        '@' => "'@' is not allowed: parameter aliases are not supported".into(),
        '/' => {
            "'/' is not allowed: navigation paths, casts and lambdas (any/all) are not supported"
                .into()
        }
        ',' => "',' is not allowed: functions are not supported".into(),
        '"' => "'\"' is not allowed: string literals are written in single quotes".into(),
        '&' | '=' | '?' | '#' | ';' => {
            format!(
                "'{c}' is not allowed: the filter is one expression, not part of a query string"
            )
        }
        c if c.is_whitespace() => {
            format!("{c:?} is not allowed: only plain spaces separate tokens")
        }
        c => format!("unexpected character '{c}'"),
    };
    FilterError::new(at, why)
}

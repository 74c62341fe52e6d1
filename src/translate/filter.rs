//! The OData `$filter` subset the gateway forwards to Graph.
//!
//! A caller's filter reaches Graph's query string, so it is parsed here
//! first and refused, with what is wrong and at which byte, unless it is an
//! expression Graph can evaluate on a securityConfigurationTask:
//!
//! ```text
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" or ")" | comparison
//! comparison := property ("eq" | "ne" | "gt" | "ge" | "lt" | "le") literal
//! literal    := 'string' ('' is a quote) | number | true | false | null
//!             | DateTimeOffset (unquoted, with its offset) | GUID (unquoted)
//! ```
//!
//! Keywords are lower case and property names are the task's Graph JSON
//! names, both case-sensitive as in Graph. Functions, lambdas, paths, casts,
//! `$` options and parameter aliases are refused, as is nesting (parentheses
//! and `not`) deeper than [`MAX_DEPTH`] or more than [`MAX_CLAUSES`]
//! comparisons. Enum values are not checked against the members the gateway
//! knows, since Graph adds members over time. A filter that passes is
//! forwarded byte for byte.

mod lexer;

use super::fields::Field;
use lexer::{Kind, Lexer, Token};
use std::fmt;

/// Deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 16;
/// Most comparisons in one filter.
pub const MAX_CLAUSES: usize = 32;

/// Why a filter is refused, and the byte offset where the problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset into the filter.
    pub offset: usize,
    pub message: String,
}

impl FilterError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

/// Checks that `text` is a filter Graph can evaluate on this entity.
pub fn validate(text: &str) -> Result<(), FilterError> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        peeked: None,
        clauses: 0,
    };
    parser.or(0)?;
    match parser.next()? {
        None => Ok(()),
        Some(t) if t.kind == Kind::Close => Err(FilterError::new(
            t.start,
            "unbalanced ')': there is no '(' for it to close",
        )),
        Some(t) => Err(FilterError::new(
            t.start,
            format!(
                "expected 'and', 'or' or the end of the filter but found {}",
                t.describe()
            ),
        )),
    }
}

/// What a property holds, for the literals it can be compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PropertyType {
    /// The key: strings, and GUIDs since Graph's task ids are GUIDs.
    Key,
    String,
    Enum(&'static str),
    DateTimeOffset,
    Int32,
    /// `intendedSettings`: needs a lambda, which is not supported.
    Collection,
}

impl PropertyType {
    fn of(field: Field) -> Self {
        match field {
            Field::Id => Self::Key,
            Field::DisplayName
            | Field::Description
            | Field::Creator
            | Field::CreatorNotes
            | Field::AssignedTo
            | Field::Insights => Self::String,
            Field::CreatedDateTime | Field::DueDateTime => Self::DateTimeOffset,
            Field::Category => Self::Enum("deviceAppManagementTaskCategory"),
            Field::Priority => Self::Enum("deviceAppManagementTaskPriority"),
            Field::Status => Self::Enum("deviceAppManagementTaskStatus"),
            Field::ApplicablePlatform => {
                Self::Enum("endpointSecurityConfigurationApplicablePlatform")
            }
            Field::EndpointSecurityPolicy => Self::Enum("endpointSecurityConfigurationType"),
            Field::EndpointSecurityPolicyProfile => {
                Self::Enum("endpointSecurityConfigurationProfileType")
            }
            Field::ManagedDeviceCount => Self::Int32,
            Field::IntendedSettings => Self::Collection,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Key | Self::String => "Edm.String",
            Self::Enum(name) => name,
            Self::DateTimeOffset => "Edm.DateTimeOffset",
            Self::Int32 => "Edm.Int32",
            Self::Collection => "Collection(microsoft.graph.keyValuePair)",
        }
    }

    /// Whether `literal` can be compared with this type.
    fn accepts(self, literal: &Kind<'_>) -> bool {
        match (self, literal) {
            (_, Kind::Name("null")) => true,
            (Self::Key, Kind::Str | Kind::Guid) => true,
            (Self::String | Self::Enum(_), Kind::Str) => true,
            (Self::DateTimeOffset, Kind::DateTime) => true,
            (Self::Int32, Kind::Number { integer: Some(n) }) => i32::try_from(*n).is_ok(),
            _ => false,
        }
    }
}

/// The comparison operators.
const OPERATORS: [&str; 6] = ["eq", "ne", "gt", "ge", "lt", "le"];
/// OData operators and keywords outside the subset, named in errors.
const UNSUPPORTED_OPERATORS: [&str; 8] = ["has", "in", "add", "sub", "mul", "div", "divby", "mod"];

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    clauses: usize,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<Option<&Token<'a>>, FilterError> {
        if self.peeked.is_none() {
            self.peeked = self.lexer.next_token()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn next(&mut self) -> Result<Option<Token<'a>>, FilterError> {
        match self.peeked.take() {
            Some(t) => Ok(Some(t)),
            None => self.lexer.next_token(),
        }
    }

    fn peek_is_name(&mut self, keyword: &str) -> Result<bool, FilterError> {
        Ok(matches!(self.peek()?, Some(Token { kind: Kind::Name(n), .. }) if *n == keyword))
    }

    /// Where the text ends, for errors about what is missing.
    fn end(&self) -> usize {
        self.lexer.offset()
    }

    fn or(&mut self, depth: usize) -> Result<(), FilterError> {
        self.and(depth)?;
        while self.peek_is_name("or")? {
            self.next()?;
            self.and(depth)?;
        }
        Ok(())
    }

    fn and(&mut self, depth: usize) -> Result<(), FilterError> {
        self.unary(depth)?;
        while self.peek_is_name("and")? {
            self.next()?;
            self.unary(depth)?;
        }
        Ok(())
    }

    fn unary(&mut self, depth: usize) -> Result<(), FilterError> {
        let Some(token) = self.next()? else {
            return Err(FilterError::new(
                self.end(),
                "the filter ends early: expected a comparison such as status eq 'pending'",
            ));
        };
        let deeper = |token: &Token<'_>| {
            if depth >= MAX_DEPTH {
                Err(FilterError::new(
                    token.start,
                    format!("nested deeper than {MAX_DEPTH} levels of parentheses and 'not'"),
                ))
            } else {
                Ok(depth + 1)
            }
        };
        match token.kind {
            Kind::Open => {
                let inner = deeper(&token)?;
                self.or(inner)?;
                match self.next()? {
                    Some(t) if t.kind == Kind::Close => Ok(()),
                    Some(t) => Err(FilterError::new(
                        t.start,
                        format!("expected 'and', 'or' or ')' but found {}", t.describe()),
                    )),
                    None => Err(FilterError::new(
                        token.start,
                        "unbalanced '(': it is never closed",
                    )),
                }
            }
            Kind::Name("not") => {
                let inner = deeper(&token)?;
                self.unary(inner)
            }
            Kind::Name(name) => self.comparison(name, &token),
            Kind::Close => Err(FilterError::new(
                token.start,
                "unexpected ')': expected a comparison such as status eq 'pending'",
            )),
            _ => Err(FilterError::new(
                token.start,
                format!(
                    "a comparison starts with a property name, not {}",
                    token.describe()
                ),
            )),
        }
    }

    fn comparison(&mut self, name: &'a str, token: &Token<'a>) -> Result<(), FilterError> {
        if matches!(self.peek()?, Some(t) if t.kind == Kind::Open) {
            return Err(FilterError::new(
                token.start,
                format!("'{name}(' calls a function; functions are not supported"),
            ));
        }
        let property = property(name, token.start)?;
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(FilterError::new(
                token.start,
                format!("more than {MAX_CLAUSES} comparisons"),
            ));
        }
        let operator = match self.next()? {
            Some(Token {
                kind: Kind::Name(op),
                ..
            }) if OPERATORS.contains(&op) => op,
            Some(t) => {
                let why = match t.kind {
                    Kind::Name(op) if UNSUPPORTED_OPERATORS.contains(&op) => {
                        format!("the operator '{op}' is not supported")
                    }
                    Kind::Name("any" | "all") => "lambdas (any/all) are not supported".into(),
                    _ => format!(
                        "expected a comparison operator (eq, ne, gt, ge, lt, le) after '{name}' but found {}",
                        t.describe()
                    ),
                };
                return Err(FilterError::new(t.start, why));
            }
            None => {
                return Err(FilterError::new(
                    self.end(),
                    format!("the filter ends after '{name}': expected eq, ne, gt, ge, lt or le"),
                ))
            }
        };
        let Some(literal) = self.next()? else {
            return Err(FilterError::new(
                self.end(),
                format!("the filter ends after '{operator}': expected a literal"),
            ));
        };
        let is_literal = match literal.kind {
            Kind::Str | Kind::Number { .. } | Kind::DateTime | Kind::Guid => true,
            Kind::Name(word) => matches!(word, "null" | "true" | "false"),
            Kind::Open | Kind::Close => false,
        };
        if !is_literal {
            return Err(FilterError::new(
                literal.start,
                format!(
                    "'{name} {operator}' must be followed by a literal (a quoted string, a number, \
                     true, false, null, a DateTimeOffset or a GUID), not {}",
                    literal.describe()
                ),
            ));
        }
        if !property.accepts(&literal.kind) {
            return Err(FilterError::new(
                literal.start,
                format!(
                    "'{name}' is {} and cannot be compared with {}",
                    property.name(),
                    literal.describe()
                ),
            ));
        }
        Ok(())
    }
}

/// The property named `name`, or why it cannot be filtered on.
fn property(name: &str, at: usize) -> Result<PropertyType, FilterError> {
    if matches!(name, "and" | "or" | "null" | "true" | "false") || OPERATORS.contains(&name) {
        return Err(FilterError::new(
            at,
            format!("expected a comparison such as status eq 'pending' but found '{name}'"),
        ));
    }
    match Field::from_graph_name(name) {
        Some(field) => match PropertyType::of(field) {
            PropertyType::Collection => Err(FilterError::new(
                at,
                format!("'{name}' is a collection; lambdas (any/all) are not supported"),
            )),
            other => Ok(other),
        },
        None => {
            let keywords = ["and", "or", "not", "null", "true", "false"];
            let hint = Field::all()
                .map(Field::graph_name)
                .chain(keywords)
                .chain(OPERATORS)
                .find(|known| known.eq_ignore_ascii_case(name))
                .map(|known| {
                    format!(" (did you mean '{known}'? names and keywords are case-sensitive)")
                })
                .unwrap_or_default();
            Err(FilterError::new(
                at,
                format!(
                    "unknown property '{name}' of securityConfigurationTask{hint}; filterable: {}",
                    filterable().join(", ")
                ),
            ))
        }
    }
}

/// The properties a filter can compare.
fn filterable() -> Vec<&'static str> {
    Field::all()
        .filter(|f| PropertyType::of(*f) != PropertyType::Collection)
        .map(Field::graph_name)
        .collect()
}

#[cfg(test)]
mod tests;

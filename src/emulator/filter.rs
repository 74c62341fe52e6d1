//! The `$filter` subset the emulator evaluates: every form the gateway
//! accepts, so that what it sends is seen to be understood.
//!
//! Grammar (OData keywords are case-sensitive, as in Graph):
//!
//! ```text
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" or ")"
//!          | "isof" "(" type ")"             type: 'microsoft.graph.X' or microsoft.graph.X
//!          | property ("eq" | "ne" | "gt" | "ge" | "lt" | "le") literal
//! literal := 'string' ('' escapes a quote) | number | null | true | false
//!          | DateTimeOffset (unquoted, e.g. 2017-01-01T08:02:18Z) | GUID (unquoted, for id)
//! ```
//!
//! Comparisons follow OData: strings compare by code point, enum members by
//! their declared order, dates as instants; a comparison with `null` on
//! either side is true only for `eq` (both null) and `ne` (one null), so
//! `gt null` never holds. Anything else (functions, lambdas, `has`, `in`,
//! arithmetic) is refused with 400 rather than half-evaluated, so a gateway
//! never trusts a filter the emulator did not really apply.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;

use super::datetime;
use super::schema::{self, Kind, TaskType};

/// A parsed filter.
#[derive(Debug)]
pub struct Filter {
    root: Expr,
}

#[derive(Debug)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `None` is the abstract base type, which every task is.
    IsOf(Option<TaskType>),
    Compare {
        property: &'static str,
        kind: Kind,
        op: Op,
        literal: Literal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    /// Whether `order` (stored against literal) satisfies the operator.
    fn holds(self, order: Ordering) -> bool {
        match self {
            Op::Eq => order == Ordering::Equal,
            Op::Ne => order != Ordering::Equal,
            Op::Gt => order == Ordering::Greater,
            Op::Ge => order != Ordering::Less,
            Op::Lt => order == Ordering::Less,
            Op::Le => order != Ordering::Greater,
        }
    }
}

#[derive(Debug)]
enum Literal {
    String(String),
    Number(f64),
    DateTime(OffsetDateTime),
    Guid(String),
    Bool(bool),
    Null,
}

impl Filter {
    /// Parses `text`; `Err` is the detail for Graph's "Invalid filter clause".
    pub fn parse(text: &str) -> Result<Filter, String> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens: &tokens,
            pos: 0,
        };
        let root = parser.or(0)?;
        match parser.peek() {
            None => Ok(Filter { root }),
            Some(token) => Err(format!(
                "unexpected {token} after the end of the expression"
            )),
        }
    }

    pub fn matches(&self, task: &Value) -> bool {
        self.root.matches(task)
    }
}

impl Expr {
    fn matches(&self, task: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(task) && b.matches(task),
            Expr::Or(a, b) => a.matches(task) || b.matches(task),
            Expr::Not(e) => !e.matches(task),
            Expr::IsOf(None) => true,
            Expr::IsOf(Some(wanted)) => TaskType::of(task) == Some(*wanted),
            Expr::Compare {
                property,
                kind,
                op,
                literal,
            } => {
                let stored = task.get(*property).unwrap_or(&Value::Null);
                match (stored.is_null(), matches!(literal, Literal::Null)) {
                    (true, true) => *op == Op::Eq,
                    (true, false) | (false, true) => *op == Op::Ne,
                    // Values that cannot be ordered are unequal and nothing more.
                    (false, false) => match order(*kind, stored, literal) {
                        Some(o) => op.holds(o),
                        None => *op == Op::Ne,
                    },
                }
            }
        }
    }
}

/// The stored value against the literal, `None` when they cannot be
/// compared (a stored value of another type, an unknown enum member).
fn order(kind: Kind, stored: &Value, literal: &Literal) -> Option<Ordering> {
    match (kind, literal) {
        (Kind::Enum(e), Literal::String(s)) => {
            let at = |member: &str| e.members.iter().position(|m| *m == member);
            Some(at(stored.as_str()?)?.cmp(&at(s)?))
        }
        (_, Literal::String(s)) => Some(stored.as_str()?.cmp(s.as_str())),
        (_, Literal::Guid(g)) => Some(stored.as_str()?.to_ascii_lowercase().cmp(g)),
        (_, Literal::Number(n)) => stored.as_f64()?.partial_cmp(n),
        (_, Literal::DateTime(instant)) => Some(datetime::parse(stored.as_str()?)?.cmp(instant)),
        (_, Literal::Bool(b)) => Some(stored.as_bool()?.cmp(b)),
        (_, Literal::Null) => None,
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(f64),
    DateTime(OffsetDateTime),
    /// An unquoted GUID, lower-cased.
    Guid(String),
    Open,
    Close,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "'{s}'"),
            Token::Str(s) => write!(f, "string literal '{s}'"),
            Token::Number(n) => write!(f, "number {n}"),
            Token::DateTime(d) => write!(f, "date {d}"),
            Token::Guid(g) => write!(f, "GUID {g}"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            _ if guid_at(text, start) => {
                let guid = &text[start..start + GUID_LEN];
                tokens.push(Token::Guid(guid.to_ascii_lowercase()));
                while chars.peek().is_some_and(|&(i, _)| i < start + GUID_LEN) {
                    chars.next();
                }
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal".into()),
                        Some((_, '\'')) => {
                            if chars.peek().is_some_and(|&(_, c)| c == '\'') {
                                chars.next();
                                literal.push('\'');
                            } else {
                                break;
                            }
                        }
                        Some((_, c)) => literal.push(c),
                    }
                }
                tokens.push(Token::Str(literal));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let end = scan(&mut chars, |c| {
                    c.is_ascii_alphanumeric() || c == '_' || c == '.'
                });
                tokens.push(Token::Ident(text[start..end.unwrap_or(text.len())].into()));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let end = scan(&mut chars, |c| {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.' | ':')
                });
                let word = &text[start..end.unwrap_or(text.len())];
                if let Ok(n) = word.parse::<f64>() {
                    if n.is_finite() {
                        tokens.push(Token::Number(n));
                        continue;
                    }
                }
                match datetime::parse(word) {
                    Some(instant) => tokens.push(Token::DateTime(instant)),
                    None => return Err(format!("'{word}' is not a valid literal")),
                }
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(tokens)
}

const GUID_LEN: usize = 36;

/// Whether an unquoted GUID (8-4-4-4-12 hexadecimal digits) starts at
/// `start` and ends a word.
fn guid_at(text: &str, start: usize) -> bool {
    let Some(word) = text.get(start..start + GUID_LEN) else {
        return false;
    };
    let shape = word.bytes().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    let ends = text[start + GUID_LEN..]
        .chars()
        .next()
        .is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')));
    shape && ends
}

/// Consumes chars while `keep` holds; returns the byte offset where it stopped
/// (`None` at the end of the text).
fn scan(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    keep: impl Fn(char) -> bool,
) -> Option<usize> {
    chars.next();
    while let Some(&(index, c)) = chars.peek() {
        if !keep(c) {
            return Some(index);
        }
        chars.next();
    }
    None
}

/// Deepest parenthesis nesting accepted, so a hostile filter cannot exhaust
/// the stack.
const MAX_DEPTH: usize = 32;

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.pos);
        self.pos += 1;
        token
    }

    fn expect(&mut self, wanted: Token) -> Result<(), String> {
        match self.next() {
            Some(token) if *token == wanted => Ok(()),
            Some(token) => Err(format!("expected {wanted} but found {token}")),
            None => Err(format!("expected {wanted} but the expression ended")),
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.and(depth)?;
        while self.is_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.unary(depth)?;
        while self.is_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err("parentheses and 'not' nested too deeply".into());
        }
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or(depth + 1)?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Some(Token::Ident(word)) if word == "not" => {
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Token::Ident(word)) if word == "isof" => {
                let word = word.clone();
                self.expect(Token::Open)?;
                let type_name = match self.next() {
                    Some(Token::Str(name) | Token::Ident(name)) => name.clone(),
                    _ => return Err(format!("{word} takes one type name")),
                };
                self.expect(Token::Close)?;
                Ok(Expr::IsOf(resolve_type(&type_name)?))
            }
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.comparison(&name)
            }
            Some(token) => Err(format!("unexpected {token}")),
            None => Err("the expression is empty or ends early".into()),
        }
    }

    fn comparison(&mut self, name: &str) -> Result<Expr, String> {
        let property = schema::any_property(name).ok_or_else(|| {
            format!(
                "could not find a property named '{name}' on type '{}'",
                schema::BASE_TYPE_NAME
            )
        })?;
        let op = match self.next() {
            Some(Token::Ident(word)) => {
                Op::parse(word).ok_or_else(|| format!("the operator '{word}' is not supported"))?
            }
            Some(token) => return Err(format!("expected a comparison operator but found {token}")),
            None => return Err("expected a comparison operator but the expression ended".into()),
        };
        let literal = match self.next() {
            Some(Token::Str(s)) => Literal::String(s.clone()),
            Some(Token::Number(n)) => Literal::Number(*n),
            Some(Token::DateTime(d)) => Literal::DateTime(*d),
            Some(Token::Guid(g)) => Literal::Guid(g.clone()),
            Some(Token::Ident(word)) if word == "null" => Literal::Null,
            Some(Token::Ident(word)) if word == "true" => Literal::Bool(true),
            Some(Token::Ident(word)) if word == "false" => Literal::Bool(false),
            Some(token) => return Err(format!("{token} is not a literal")),
            None => return Err("expected a literal but the expression ended".into()),
        };
        check_comparable(property.name, property.kind, &literal)?;
        Ok(Expr::Compare {
            property: property.name,
            kind: property.kind,
            op,
            literal,
        })
    }
}

fn resolve_type(name: &str) -> Result<Option<TaskType>, String> {
    let bare = name.strip_prefix('#').unwrap_or(name);
    if bare == schema::BASE_TYPE_NAME {
        return Ok(None);
    }
    TaskType::from_odata_type(bare)
        .map(Some)
        .ok_or_else(|| format!("'{name}' is not a type in this collection"))
}

/// Refuses comparisons Graph would call "incompatible types".
fn check_comparable(name: &str, kind: Kind, literal: &Literal) -> Result<(), String> {
    let ok = match (kind, literal) {
        (_, Literal::Null) => true,
        (Kind::String | Kind::Enum(_), Literal::String(_)) => true,
        (Kind::Int32, Literal::Number(n)) => n.fract() == 0.0,
        (Kind::DateTimeOffset, Literal::DateTime(_)) => true,
        (Kind::String, Literal::Guid(_)) => name == "id",
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a binary operator with incompatible types was detected: '{name}' is {}",
            kind.edm_name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task() -> Value {
        json!({"@odata.type":"#microsoft.graph.securityConfigurationTask","status":"pending",
            "id":"5d630f12-0f12-5d63-120f-635d120f635d",
            "displayName":"It's","managedDeviceCount":2,"insights":null,
            "dueDateTime":"2017-01-01T00:02:18.1994089-08:00"})
    }

    fn eval(filter: &str) -> bool {
        Filter::parse(filter).expect(filter).matches(&task())
    }

    #[test]
    fn evaluates_supported_forms() {
        assert!(eval("status eq 'pending'"));
        assert!(!eval("status eq 'active'"));
        assert!(eval("managedDeviceCount eq 2 and status eq 'pending'"));
        assert!(eval(
            "(managedDeviceCount eq 2) and (displayName eq 'It''s')"
        ));
        assert!(eval("isof('microsoft.graph.securityConfigurationTask')"));
        assert!(eval("isof(microsoft.graph.deviceAppManagementTask)"));
        assert!(!eval("isof('microsoft.graph.appVulnerabilityTask')"));
        assert!(eval("insights eq null and creator eq null"));
        assert!(eval("dueDateTime eq 2017-01-01T08:02:18.1994089Z"));
        assert!(!eval("appName eq 'x'"));
    }

    #[test]
    fn every_comparison_operator_orders_as_odata_does() {
        for (filter, holds) in [
            ("managedDeviceCount ne 2", false),
            ("managedDeviceCount ne 3", true),
            ("managedDeviceCount gt 1", true),
            ("managedDeviceCount gt 2", false),
            ("managedDeviceCount ge 2", true),
            ("managedDeviceCount ge 3", false),
            ("managedDeviceCount lt 3", true),
            ("managedDeviceCount lt 2", false),
            ("managedDeviceCount le 2", true),
            ("managedDeviceCount le 1", false),
            // Strings by code point: uppercase before lowercase.
            ("displayName gt 'It'", true),
            ("displayName lt 'it'", true),
            ("displayName ge 'It''s'", true),
            ("displayName le 'It'", false),
            // Enum members by declared order: unknown, pending, active...
            ("status gt 'unknown'", true),
            ("status lt 'active'", true),
            ("status ge 'pending'", true),
            ("status le 'unknown'", false),
            ("status ne 'pending'", false),
            ("status gt 'notAMember'", false),
            ("status ne 'notAMember'", true),
            // Dates as instants, whatever their offset.
            ("dueDateTime gt 2017-01-01T08:02:18Z", true),
            ("dueDateTime lt 2017-01-01T00:02:19-08:00", true),
            ("dueDateTime le 2017-01-01T08:02:18.1994089Z", true),
            ("dueDateTime ge 2017-01-02T00:00:00Z", false),
            // null: equal only to null, ordered against nothing.
            ("insights ne null", false),
            ("displayName ne null", true),
            ("insights gt 'a'", false),
            ("insights lt 'a'", false),
            ("insights ne 'a'", true),
            ("managedDeviceCount gt null", false),
            ("insights ge null", false),
            // GUIDs compare with the id, either case.
            ("id eq 5d630f12-0f12-5d63-120f-635d120f635d", true),
            ("id eq 5D630F12-0F12-5D63-120F-635D120F635D", true),
            ("id ne 5d630f12-0f12-5d63-120f-635d120f635d", false),
            ("id eq '5d630f12-0f12-5d63-120f-635d120f635d'", true),
        ] {
            assert_eq!(eval(filter), holds, "{filter}");
        }
    }

    #[test]
    fn or_not_and_parentheses_combine_as_boolean_logic() {
        for (filter, holds) in [
            ("status eq 'active' or status eq 'pending'", true),
            ("status eq 'active' or status eq 'completed'", false),
            ("not status eq 'active'", true),
            ("not (status eq 'pending')", false),
            ("not not status eq 'pending'", true),
            // `and` binds tighter than `or`.
            (
                "status eq 'pending' or status eq 'x' and managedDeviceCount eq 9",
                true,
            ),
            (
                "(status eq 'pending' or status eq 'x') and managedDeviceCount eq 9",
                false,
            ),
            (
                "status eq 'x' and managedDeviceCount eq 9 or managedDeviceCount eq 2",
                true,
            ),
            ("not (status eq 'x' or managedDeviceCount eq 9)", true),
            ("((status eq 'pending'))", true),
        ] {
            assert_eq!(eval(filter), holds, "{filter}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "",
            "status has 'pending'",
            "status in ('pending')",
            "startswith(displayName,'x')",
            "nope eq 1",
            "status eq",
            "status eq 'open",
            "managedDeviceCount eq '2'",
            "displayName eq 2",
            "displayName eq 5d630f12-0f12-5d63-120f-635d120f635d",
            "intendedSettings eq 'x'",
            "isof('microsoft.graph.user')",
            "status eq 'a' and",
            "status eq 'a' or",
            "not",
            "(status eq 'a'",
            "status eq 'a')",
            "status eq 1e999",
            "status eq 'a' ; drop",
            "status EQ 'a'",
            "status eq 'a' OR status eq 'b'",
            &"(".repeat(100),
            &"not ".repeat(100),
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}

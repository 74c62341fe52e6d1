//! The `$filter` subset the emulator evaluates.
//!
//! Grammar (OData keywords are case-sensitive, as in Graph):
//!
//! ```text
//! expr    := term ("and" term)*
//! term    := "(" expr ")"
//!          | "isof" "(" type ")"             type: 'microsoft.graph.X' or microsoft.graph.X
//!          | property "eq" literal
//! literal := 'string' ('' escapes a quote) | number | null | true | false
//!          | DateTimeOffset (unquoted, e.g. 2017-01-01T08:02:18Z)
//! ```
//!
//! Anything else (or, ne, lt, not, functions, lambdas) is refused with 400
//! rather than half-evaluated, so a gateway never trusts a filter the
//! emulator did not really apply.

use serde_json::Value;
use time::OffsetDateTime;

use super::datetime;
use super::schema::{self, Kind, TaskType};

/// A parsed filter: every clause must hold.
#[derive(Debug)]
pub struct Filter {
    clauses: Vec<Clause>,
}

#[derive(Debug)]
enum Clause {
    /// `None` is the abstract base type, which every task is.
    IsOf(Option<TaskType>),
    Eq {
        property: &'static str,
        literal: Literal,
    },
}

#[derive(Debug)]
enum Literal {
    String(String),
    Number(f64),
    DateTime(OffsetDateTime),
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
        let mut clauses = Vec::new();
        parser.expression(&mut clauses, 0)?;
        match parser.peek() {
            None => Ok(Filter { clauses }),
            Some(token) => Err(format!(
                "unexpected {token} after the end of the expression"
            )),
        }
    }

    pub fn matches(&self, task: &Value) -> bool {
        self.clauses.iter().all(|clause| clause.matches(task))
    }
}

impl Clause {
    fn matches(&self, task: &Value) -> bool {
        match self {
            Clause::IsOf(None) => true,
            Clause::IsOf(Some(wanted)) => TaskType::of(task) == Some(*wanted),
            Clause::Eq { property, literal } => {
                let stored = task.get(*property).unwrap_or(&Value::Null);
                match literal {
                    Literal::Null => stored.is_null(),
                    Literal::String(s) => stored.as_str() == Some(s.as_str()),
                    Literal::Number(n) => stored.as_f64() == Some(*n),
                    Literal::Bool(b) => stored.as_bool() == Some(*b),
                    Literal::DateTime(instant) => stored
                        .as_str()
                        .and_then(datetime::parse)
                        .is_some_and(|s| s == *instant),
                }
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number(f64),
    DateTime(OffsetDateTime),
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

    fn expression(&mut self, clauses: &mut Vec<Clause>, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("parentheses nested too deeply".into());
        }
        self.term(clauses, depth)?;
        while matches!(self.peek(), Some(Token::Ident(word)) if word == "and") {
            self.pos += 1;
            self.term(clauses, depth)?;
        }
        Ok(())
    }

    fn term(&mut self, clauses: &mut Vec<Clause>, depth: usize) -> Result<(), String> {
        match self.next() {
            Some(Token::Open) => {
                self.expression(clauses, depth + 1)?;
                self.expect(Token::Close)
            }
            Some(Token::Ident(word)) if word == "isof" => {
                let word = word.clone();
                self.expect(Token::Open)?;
                let type_name = match self.next() {
                    Some(Token::Str(name) | Token::Ident(name)) => name.clone(),
                    _ => return Err(format!("{word} takes one type name")),
                };
                self.expect(Token::Close)?;
                clauses.push(Clause::IsOf(resolve_type(&type_name)?));
                Ok(())
            }
            Some(Token::Ident(name)) => {
                let name = name.clone();
                let property = schema::any_property(&name).ok_or_else(|| {
                    format!(
                        "could not find a property named '{name}' on type '{}'",
                        schema::BASE_TYPE_NAME
                    )
                })?;
                match self.next() {
                    Some(Token::Ident(op)) if op == "eq" => {}
                    Some(Token::Ident(op)) => {
                        return Err(format!("the operator '{op}' is not supported"))
                    }
                    Some(token) => return Err(format!("expected 'eq' but found {token}")),
                    None => return Err("expected 'eq' but the expression ended".into()),
                }
                let literal = match self.next() {
                    Some(Token::Str(s)) => Literal::String(s.clone()),
                    Some(Token::Number(n)) => Literal::Number(*n),
                    Some(Token::DateTime(d)) => Literal::DateTime(*d),
                    Some(Token::Ident(word)) if word == "null" => Literal::Null,
                    Some(Token::Ident(word)) if word == "true" => Literal::Bool(true),
                    Some(Token::Ident(word)) if word == "false" => Literal::Bool(false),
                    Some(token) => return Err(format!("{token} is not a literal")),
                    None => return Err("expected a literal but the expression ended".into()),
                };
                check_comparable(property.name, property.kind, &literal)?;
                clauses.push(Clause::Eq {
                    property: property.name,
                    literal,
                });
                Ok(())
            }
            Some(token) => Err(format!("unexpected {token}")),
            None => Err("the expression is empty or ends early".into()),
        }
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
    fn refuses_the_rest() {
        for bad in [
            "",
            "status ne 'pending'",
            "status eq 'pending' or status eq 'active'",
            "startswith(displayName,'x')",
            "nope eq 1",
            "status eq",
            "status eq 'open",
            "managedDeviceCount eq '2'",
            "displayName eq 2",
            "intendedSettings eq 'x'",
            "isof('microsoft.graph.user')",
            "status eq 'a' and",
            "(status eq 'a'",
            "status eq 'a')",
            "status eq 1e999",
            "status eq 'a' ; drop",
            &"(".repeat(100),
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}

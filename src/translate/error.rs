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

/// A request that must not reach Graph, with every reason found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvalidRequest {
    pub violations: Vec<FieldViolation>,
}

impl InvalidRequest {
    /// A request with one bad field.
    pub fn single(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut v = Self::default();
        v.push(field, description);
        v
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
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
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

/// A Graph answer the gateway cannot turn into a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// The object is a task of another type (its `@odata.type`).
    NotSecurityTask { odata_type: String },
    /// The body is not the JSON Graph documents.
    Malformed(String),
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
        }
    }
}

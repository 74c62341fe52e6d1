//! Reading a Graph request body: size limit, `Content-Encoding: gzip` (the
//! Graph SDKs compress request bodies), JSON parsing.

use std::io::Read as _;

use axum::body::Body;
use axum::http::header::{HeaderMap, CONTENT_ENCODING};
use axum::http::StatusCode;
use flate2::read::GzDecoder;
use serde_json::Value;

use super::error::{default_code, GraphError};

/// Graph refuses request bodies above 4 MB; so does the emulator, before and
/// after decompression.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A request body as the routes see it.
pub enum Payload {
    Empty,
    Json(Value),
    /// Not JSON: the text (lossy UTF-8) and the parser's complaint.
    Invalid {
        text: String,
        error: String,
    },
}

impl Payload {
    /// The body a create/update/action needs, or Graph's 400.
    pub fn json(&self) -> Result<&Value, GraphError> {
        match self {
            Payload::Json(value) => Ok(value),
            Payload::Empty => Err(GraphError::invalid_request(
                "The request body is empty; a JSON object is required.",
            )),
            Payload::Invalid { error, .. } => Err(GraphError::invalid_request(format!(
                "Invalid JSON in the request body: {error}."
            ))),
        }
    }

    /// The form kept in the request log.
    pub fn recorded(&self) -> Option<Value> {
        match self {
            Payload::Empty => None,
            Payload::Json(value) => Some(value.clone()),
            Payload::Invalid { text, .. } => Some(Value::String(text.clone())),
        }
    }
}

pub async fn read(headers: &HeaderMap, body: Body) -> Result<Payload, GraphError> {
    let gzip = match headers.get(CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(encoding)) => match encoding.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => false,
            "gzip" | "x-gzip" => true,
            other => return Err(unsupported_encoding(other)),
        },
        Some(Err(_)) => return Err(unsupported_encoding("(not text)")),
    };
    let raw = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    let bytes = if gzip { gunzip(&raw)? } else { raw.to_vec() };
    Ok(parse(&bytes))
}

fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, GraphError> {
    let mut plain = Vec::new();
    let limit = u64::try_from(MAX_BODY_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    GzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut plain)
        .map_err(|e| {
            GraphError::invalid_request(format!("The gzip request body cannot be decoded: {e}."))
        })?;
    if plain.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(plain)
}

fn parse(bytes: &[u8]) -> Payload {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Payload::Empty;
    }
    match serde_json::from_slice(bytes) {
        Ok(value) => Payload::Json(value),
        Err(error) => Payload::Invalid {
            text: String::from_utf8_lossy(bytes).into_owned(),
            error: error.to_string(),
        },
    }
}

fn too_large() -> GraphError {
    GraphError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        default_code(413),
        format!("The request body exceeds the limit of {MAX_BODY_BYTES} bytes."),
    )
}

fn unsupported_encoding(encoding: &str) -> GraphError {
    GraphError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        default_code(415),
        format!("Content-Encoding '{encoding}' is not supported; use gzip or none."),
    )
}

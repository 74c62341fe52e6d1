//! Graph's error answers: status, `error.code`, message, and the exact body
//! shape clients parse.

use axum::http::StatusCode;
use serde::Serialize;

use super::datetime;

/// An error answer before it is given its request ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Methods for the `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_owned(),
            message: message.into(),
            allow: None,
        }
    }

    /// Routing and query-option errors (code `BadRequest`).
    pub fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// Request-body validation errors (code `invalidRequest`).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        GraphError::new(StatusCode::BAD_REQUEST, "invalidRequest", message)
    }

    pub fn item_not_found(id: &str) -> Self {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            format!(
                "The requested resource does not exist: no deviceAppManagementTask has id '{id}'."
            ),
        )
    }

    /// The ASP.NET Web API answer Graph gives for a method a route lacks.
    pub fn method_not_allowed(uri: &str, method: &str, allow: &'static str) -> Self {
        GraphError {
            allow: Some(allow),
            ..GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "BadRequest",
                format!(
                    "No HTTP resource was found that matches the request URI '{uri}'. The \
                     requested resource does not support http method '{method}'."
                ),
            )
        }
    }

    pub fn unknown_segment(segment: &str) -> Self {
        GraphError::bad_request(format!("Resource not found for the segment '{segment}'."))
    }
}

/// Serialises `{"error":{"code","message","innerError":{...}}}` in Graph's
/// key order. `client_request_id` falls back to `request_id`, as Graph does
/// when the client sent none.
pub fn error_body(
    code: &str,
    message: &str,
    request_id: &str,
    client_request_id: Option<&str>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Body<'a>,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        code: &'a str,
        message: &'a str,
        #[serde(rename = "innerError")]
        inner_error: Inner<'a>,
    }
    #[derive(Serialize)]
    struct Inner<'a> {
        #[serde(rename = "request-id")]
        request_id: &'a str,
        #[serde(rename = "client-request-id")]
        client_request_id: &'a str,
        date: &'a str,
    }
    let date = datetime::now_error_date();
    let envelope = Envelope {
        error: Body {
            code,
            message,
            inner_error: Inner {
                request_id,
                client_request_id: client_request_id.unwrap_or(request_id),
                date: &date,
            },
        },
    };
    // Plain structs of strings always serialise; the fallback is unreachable.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Graph's usual `error.code` for a status, used when a fault names none.
pub fn default_code(status: u16) -> &'static str {
    match status {
        400 | 405 => "BadRequest",
        401 => "InvalidAuthenticationToken",
        402 => "paymentRequired",
        403 => "accessDenied",
        404 => "itemNotFound",
        406 => "notAcceptable",
        409 => "conflict",
        410 => "gone",
        411 => "lengthRequired",
        412 => "preconditionFailed",
        413 => "requestTooLarge",
        415 => "unsupportedMediaType",
        416 => "invalidRange",
        422 => "unprocessableEntity",
        423 => "resourceLocked",
        429 => "TooManyRequests",
        501 => "notSupported",
        503 => "serviceNotAvailable",
        504 => "gatewayTimeout",
        507 => "quotaLimitReached",
        509 => "activityLimitReached",
        _ => "UnknownError",
    }
}

/// A message for a fault that names none.
pub fn default_message(status: u16) -> String {
    match status {
        429 => "Too many requests. Retry after the time given in the Retry-After header.".into(),
        503 => "The service is temporarily unavailable. Try again later.".into(),
        _ => match StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
        {
            Some(reason) => format!("{reason} (scripted by the Graph emulator)."),
            None => format!("HTTP {status} (scripted by the Graph emulator)."),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_graph_shape_and_order() {
        let body = error_body("itemNotFound", "gone", "r-1", None);
        let text = String::from_utf8(body).expect("utf8");
        assert!(text.starts_with(
            r#"{"error":{"code":"itemNotFound","message":"gone","innerError":{"request-id":"r-1","client-request-id":"r-1","date":""#
        ));
    }

    #[test]
    fn defaults() {
        assert_eq!(default_code(429), "TooManyRequests");
        assert_eq!(default_code(599), "UnknownError");
        assert!(default_message(500).contains("Internal Server Error"));
        assert!(default_message(599).contains("599"));
    }
}

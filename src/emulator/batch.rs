//! Graph's JSON batching, `POST /beta/$batch`: reading the envelope, turning
//! each of its requests into a request for the Graph routes, and writing the
//! answer. Running the items is the routes' business (`routes.rs`), so that
//! an item meets exactly the pipeline a request sent alone meets.
//!
//! # The envelope
//!
//! `{"requests": [{"id", "method", "url", "headers"?, "body"?, "dependsOn"?}]}`,
//! at most [`MAX_REQUESTS`]. The whole batch is refused with 400
//! `BadRequest` (and nothing runs) when the envelope is not that shape, is
//! empty or holds more than 20 requests, when an `id`, `method` or `url` is
//! missing or not a string, a `url` is absolute, two ids are equal (ids
//! compare case-insensitively, as Graph's docs say), a request has a body but
//! no `Content-Type` header or is a write (POST, PUT, PATCH) without a body,
//! or a `dependsOn` names no earlier request. Messages are Graph's where its
//! answers are known ("Invalid batch payload format.", "Request Id 1 has to
//! be unique in a batch.", "Write request id : 1 does not contain
//! Content-Type header or body."); Graph's text for a batch of more than 20
//! is not known, so that message is the emulator's own.
//!
//! # `dependsOn`
//!
//! Supported as Graph does it: when any request names `dependsOn`, the batch
//! runs sequentially in the order listed (Graph advises all-sequential or
//! all-parallel, and a dependency must come earlier: no forward references),
//! and a request one of whose dependencies did not succeed (status outside
//! 2xx) is not run and gets 424 `FailedDependency` (the code is the
//! reason phrase; Graph documents none). Without `dependsOn` the requests
//! run in parallel.
//!
//! # The answer
//!
//! 200 `{"responses": [{"id", "status", "headers", "body"?}]}` whenever the
//! envelope was accepted, whatever each item's status, in an order drawn
//! from [`super::EmulatorOptions::batch_order_seed`] (Graph promises none).
//! Headers are named as Graph names them (`Retry-After`, `Content-Type`),
//! without the transport's (`Content-Length`); a JSON body is embedded as
//! JSON, any other body as a string. An item whose answer cannot be carried
//! (a scripted fault that drops or cuts a connection, on an item) comes back
//! 504 `gatewayTimeout`, as a front end that lost the item's answer would
//! say.

use axum::body::Body;
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Map, Value};

use super::body::{Payload, MAX_BODY_BYTES};
use super::error::{error_body, GraphError};
use super::reply::{RequestIds, ERROR_JSON, REQUEST_ID};

/// Most requests Graph takes in one batch.
pub const MAX_REQUESTS: usize = 20;

/// Most bytes of an item's answer carried into the batch answer (a larger
/// one, made by a scripted fault, counts as lost).
const ITEM_ANSWER_BYTES: usize = 4 * MAX_BODY_BYTES;

/// An accepted envelope: its requests in the order listed.
#[derive(Debug)]
pub struct Envelope {
    pub items: Vec<Item>,
}

/// One request of a batch.
#[derive(Debug)]
pub struct Item {
    pub id: String,
    pub method: Method,
    /// As sent, relative to the version root (`/deviceAppManagement/...`).
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Value>,
    /// Indices of the earlier requests it depends on.
    pub depends_on: Vec<usize>,
}

/// One item's response in the batch answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: String,
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Option<Value>,
}

impl Envelope {
    /// Reads and checks the envelope; `Err` is the whole batch's 400.
    pub fn parse(payload: &Payload) -> Result<Envelope, GraphError> {
        let Payload::Json(Value::Object(root)) = payload else {
            return Err(invalid_format());
        };
        let Some(Value::Array(requests)) = root.get("requests") else {
            return Err(invalid_format());
        };
        if requests.is_empty() {
            return Err(invalid_format());
        }
        if requests.len() > MAX_REQUESTS {
            return Err(GraphError::bad_request(format!(
                "The batch holds {} requests; at most {MAX_REQUESTS} are allowed in one batch.",
                requests.len()
            )));
        }
        let mut items: Vec<Item> = Vec::with_capacity(requests.len());
        for request in requests {
            let item = Item::parse(request, &items)?;
            if items
                .iter()
                .any(|i| i.id.to_lowercase() == item.id.to_lowercase())
            {
                return Err(GraphError::bad_request(format!(
                    "Request Id {} has to be unique in a batch.",
                    item.id
                )));
            }
            items.push(item);
        }
        Ok(Envelope { items })
    }

    /// Whether the requests run one after another (any `dependsOn`).
    pub fn sequential(&self) -> bool {
        self.items.iter().any(|i| !i.depends_on.is_empty())
    }
}

impl Item {
    /// One request of the envelope; `earlier` are those listed before it.
    fn parse(value: &Value, earlier: &[Item]) -> Result<Item, GraphError> {
        let Value::Object(request) = value else {
            return Err(invalid_format());
        };
        let text = |name: &str| match request.get(name) {
            Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
            _ => Err(invalid_format()),
        };
        let id = text("id")?;
        let method = Method::from_bytes(text("method")?.to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid_format())?;
        let url = text("url")?;
        if is_absolute(&url) {
            return Err(invalid_format());
        }
        let mut headers = HeaderMap::new();
        match request.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (name, value) in given {
                    let name =
                        HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid_format())?;
                    let value = match value {
                        Value::String(text) => HeaderValue::from_str(text),
                        Value::Number(_) | Value::Bool(_) => {
                            HeaderValue::from_str(&value.to_string())
                        }
                        _ => return Err(invalid_format()),
                    }
                    .map_err(|_| invalid_format())?;
                    headers.append(name, value);
                }
            }
            Some(_) => return Err(invalid_format()),
        }
        let body = match request.get("body") {
            None | Some(Value::Null) => None,
            Some(body) => Some(body.clone()),
        };
        let is_write = matches!(method, Method::POST | Method::PUT | Method::PATCH);
        if (body.is_some() || is_write) && (body.is_none() || !headers.contains_key(CONTENT_TYPE)) {
            return Err(GraphError::bad_request(format!(
                "Write request id : {id} does not contain Content-Type header or body."
            )));
        }
        let depends_on = match request.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|dependency| {
                    let dependency = dependency.as_str().ok_or_else(invalid_format)?;
                    earlier
                        .iter()
                        .position(|i| i.id.eq_ignore_ascii_case(dependency))
                        .ok_or_else(invalid_format)
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid_format()),
        };
        Ok(Item {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        })
    }

    /// This item as a request to the Graph routes: its method, its URL under
    /// `/beta`, its headers, and the envelope's `Host` and `Authorization`
    /// (the envelope's bearer authorises its items). `Err` when the URL
    /// makes no request target even once escaped.
    pub fn request(&self, envelope: &Parts) -> Result<(Parts, Payload), GraphError> {
        let target = format!(
            "/beta/{}",
            utf8_percent_encode(self.url.trim_start_matches('/'), URL_ESCAPES)
        );
        let (mut parts, ()) = Request::builder()
            .method(self.method.clone())
            .uri(target)
            .body(())
            .map_err(|_| GraphError::bad_request(format!("Invalid request URL '{}'.", self.url)))?
            .into_parts();
        parts.headers = self.headers.clone();
        for name in [axum::http::header::HOST, axum::http::header::AUTHORIZATION] {
            parts.headers.remove(&name);
            if let Some(value) = envelope.headers.get(&name) {
                parts.headers.insert(name, value.clone());
            }
        }
        let payload = match &self.body {
            None => Payload::Empty,
            Some(body) => Payload::Json(body.clone()),
        };
        Ok((parts, payload))
    }
}

/// What a URL may hold as sent that a request target may not: escaped so
/// that `$filter=status eq 'x'` (with its spaces) reaches the routes as a
/// client would have sent it alone. `%` stays, so escapes already made pass
/// through unchanged.
const URL_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// A URL with a scheme or an authority: Graph takes only URLs relative to
/// the version root in a batch.
fn is_absolute(url: &str) -> bool {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    url.starts_with("//")
        || scheme.is_some_and(|scheme| {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
}

fn invalid_format() -> GraphError {
    GraphError::bad_request("Invalid batch payload format.")
}

impl Answer {
    /// The answer of an item that was not run because a dependency failed.
    pub fn failed_dependency(id: &str, request_id: &str) -> Answer {
        let body = error_body(
            "FailedDependency",
            "The request was not run: a request it depends on in the batch did not succeed.",
            request_id,
            None,
        );
        Answer {
            id: id.to_owned(),
            status: StatusCode::FAILED_DEPENDENCY.as_u16(),
            headers: content_type_only("application/json"),
            body: serde_json::from_slice(&body).ok(),
        }
    }

    /// An item's answer from the response the routes gave it.
    pub async fn from_response(id: &str, response: Response) -> Answer {
        let (parts, body) = response.into_parts();
        let request_id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let Ok(bytes) = axum::body::to_bytes(Body::new(body), ITEM_ANSWER_BYTES).await else {
            return Answer::lost(id, &request_id);
        };
        let mut headers = Map::new();
        for (name, value) in &parts.headers {
            if is_transport(name) {
                continue;
            }
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers.insert(graph_header_name(name.as_str()), Value::String(value));
        }
        let body =
            if bytes.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }))
            };
        Answer {
            id: id.to_owned(),
            status: parts.status.as_u16(),
            headers,
            body,
        }
    }

    /// An item refused before it reached a route.
    pub fn from_error(id: &str, ids: &RequestIds, error: &GraphError) -> Answer {
        let body = ids.error_bytes(&error.code, &error.message);
        let mut headers = content_type_only(ERROR_JSON);
        headers.insert("Request-Id".into(), Value::String(ids.request_id.clone()));
        Answer {
            id: id.to_owned(),
            status: error.status.as_u16(),
            headers,
            body: serde_json::from_slice(&body).ok(),
        }
    }

    /// An item whose answer could not be read back (cut or dropped by a
    /// scripted fault).
    fn lost(id: &str, request_id: &str) -> Answer {
        let body = error_body(
            "gatewayTimeout",
            "The answer to this request was lost before it could be put into the batch answer.",
            request_id,
            None,
        );
        Answer {
            id: id.to_owned(),
            status: StatusCode::GATEWAY_TIMEOUT.as_u16(),
            headers: content_type_only("application/json"),
            body: serde_json::from_slice(&body).ok(),
        }
    }

    /// An item that could not be run at all (a task that failed to finish).
    pub fn internal(id: &str) -> Answer {
        let body = error_body(
            "UnknownError",
            "The request failed inside the batch.",
            "",
            None,
        );
        Answer {
            id: id.to_owned(),
            status: StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
            headers: content_type_only("application/json"),
            body: serde_json::from_slice(&body).ok(),
        }
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn to_json(&self) -> Value {
        let mut answer = json!({
            "id": self.id,
            "status": self.status,
            "headers": self.headers,
        });
        if let Some(body) = &self.body {
            answer["body"] = body.clone();
        }
        answer
    }
}

/// The batch answer's body, items in the order given.
pub fn answer_body(answers: &[Answer]) -> Value {
    json!({"responses": answers.iter().map(Answer::to_json).collect::<Vec<_>>()})
}

/// `answers` (listed as the requests were) in the order `order` gives.
pub fn reorder(answers: Vec<Answer>, order: &[usize]) -> Vec<Answer> {
    let mut slots: Vec<Option<Answer>> = answers.into_iter().map(Some).collect();
    let mut ordered: Vec<Answer> = order
        .iter()
        .filter_map(|&i| slots.get_mut(i).and_then(Option::take))
        .collect();
    // Whatever the order missed (never, for a permutation) goes last.
    ordered.extend(slots.into_iter().flatten());
    ordered
}

/// An id no request in `items` has, made from `id`.
pub fn unknown_id(id: &str, items: &[Item]) -> String {
    let mut candidate = format!("{id}-unknown");
    while items.iter().any(|i| i.id.eq_ignore_ascii_case(&candidate)) {
        candidate.push('x');
    }
    candidate
}

/// Headers that describe the item's own HTTP transfer, which the batch
/// answer does not carry.
fn is_transport(name: &HeaderName) -> bool {
    use axum::http::header::{CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
    [
        CONTENT_LENGTH,
        TRANSFER_ENCODING,
        CONNECTION,
        CONTENT_ENCODING,
    ]
    .contains(name)
}

/// `retry-after` as Graph writes it in a batch answer: `Retry-After`.
fn graph_header_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("odata-version") {
        return "OData-Version".to_owned();
    }
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn content_type_only(content_type: &str) -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert("Content-Type".into(), Value::String(content_type.into()));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<Envelope, GraphError> {
        Envelope::parse(&Payload::Json(value))
    }

    fn message(value: Value) -> String {
        let error = parse(value).expect_err("refused");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "BadRequest");
        error.message
    }

    #[test]
    fn envelopes_graph_refuses_are_refused_whole() {
        let ok = json!({"id": "1", "method": "GET", "url": "/x"});
        for bad in [
            json!([]),
            json!({}),
            json!({"requests": {}}),
            json!({"requests": []}),
            json!({"requests": [1]}),
            json!({"requests": [{"method": "GET", "url": "/x"}]}),
            json!({"requests": [{"id": 1, "method": "GET", "url": "/x"}]}),
            json!({"requests": [{"id": "1", "url": "/x"}]}),
            json!({"requests": [{"id": "1", "method": "GET"}]}),
            json!({"requests": [{"id": "1", "method": "G T", "url": "/x"}]}),
            json!({"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/beta/x"}]}),
            json!({"requests": [{"id": "1", "method": "GET", "url": "//graph.microsoft.com/beta/x"}]}),
            json!({"requests": [{"id": "1", "method": "GET", "url": "/x", "headers": []}]}),
            json!({"requests": [ok, {"id": "2", "method": "GET", "url": "/x", "dependsOn": ["3"]}]}),
            json!({"requests": [{"id": "2", "method": "GET", "url": "/x", "dependsOn": ["2"]}]}),
        ] {
            assert_eq!(
                message(bad.clone()),
                "Invalid batch payload format.",
                "{bad}"
            );
        }
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/x"}))
            .collect();
        assert!(message(json!({ "requests": many })).contains("21 requests"));
        let twice = json!({"requests": [ok, {"id": "1", "method": "GET", "url": "/y"}]});
        assert_eq!(message(twice), "Request Id 1 has to be unique in a batch.");
        let case = json!({"requests": [{"id": "a", "method": "GET", "url": "/x"},
                                       {"id": "A", "method": "GET", "url": "/y"}]});
        assert_eq!(message(case), "Request Id A has to be unique in a batch.");
        for write in [
            json!({"id": "7", "method": "PATCH", "url": "/x", "body": {}}),
            json!({"id": "7", "method": "POST", "url": "/x", "headers": {"Content-Type": "application/json"}}),
            json!({"id": "7", "method": "GET", "url": "/x", "body": {}}),
        ] {
            assert_eq!(
                message(json!({ "requests": [write] })),
                "Write request id : 7 does not contain Content-Type header or body."
            );
        }
    }

    #[test]
    fn accepted_envelopes_keep_their_requests_in_order() {
        let envelope = parse(json!({"requests": [
            {"id": "1", "method": "patch", "url": "/a", "headers": {"content-type": "application/json"}, "body": {"x": 1}},
            {"id": "2", "method": "DELETE", "url": "b?$filter=x eq 'y'", "dependsOn": ["1"]},
            {"id": "3", "method": "FOO", "url": "/c"},
        ]}))
        .expect("accepted");
        assert!(envelope.sequential());
        let ids: Vec<&str> = envelope.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["1", "2", "3"]);
        assert_eq!(envelope.items[0].method, Method::PATCH);
        assert_eq!(envelope.items[1].depends_on, [0]);
        assert_eq!(envelope.items[2].method.as_str(), "FOO");
        let outer = Request::builder()
            .uri("/beta/$batch")
            .header("host", "h:1")
            .header("authorization", "Bearer t")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let (parts, _) = envelope.items[1].request(&outer).expect("a target");
        assert_eq!(parts.uri.to_string(), "/beta/b?$filter=x%20eq%20'y'");
        assert_eq!(parts.headers["authorization"], "Bearer t");
        assert_eq!(parts.headers["host"], "h:1");
    }

    #[test]
    fn answers_follow_the_order_and_name_headers_as_graph_does() {
        let answer = |id: &str| Answer {
            id: id.into(),
            status: 200,
            headers: Map::new(),
            body: None,
        };
        let ordered = reorder(vec![answer("a"), answer("b"), answer("c")], &[2, 0, 1]);
        let ids: Vec<&str> = ordered.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert_eq!(graph_header_name("retry-after"), "Retry-After");
        assert_eq!(graph_header_name("content-type"), "Content-Type");
        assert_eq!(graph_header_name("odata-version"), "OData-Version");
    }
}

//! HTTP surface: Graph routes under `/beta` and control routes under
//! `/_emulator`.
//!
//! Graph routes are resolved by hand rather than by the axum router so every
//! miss gets Graph's own answer (400 for an unknown segment, 405 for a wrong
//! method) with request ids, and so each request is logged and meets its
//! scripted fault in exactly one place.

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;

use super::body::{self, Payload};
use super::error::GraphError;
use super::faults::{Fault, FaultBody};
use super::journal::RecordedRequest;
use super::reply::{self, RequestIds, CLIENT_REQUEST_ID};
use super::tasks::{self, Origin};
use super::Emulator;

pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/beta", any(graph))
        .route("/beta/", any(graph))
        .route("/beta/{*rest}", any(graph))
        .route("/_emulator/faults", post(post_faults))
        .route("/_emulator/requests", get(get_requests))
        .route("/_emulator/reset", post(post_reset))
        .with_state(emulator)
}

/// Every request under `/beta`.
async fn graph(State(emulator): State<Emulator>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ids = RequestIds::new(&parts.headers);
    let payload = body::read(&parts.headers, body).await;
    let fault = emulator.admit(record(&parts, payload.as_ref().ok()));
    let mut response = match fault {
        Some(fault) if fault.body != FaultBody::NoContentAfterApply => fault.respond(&ids),
        fault => {
            let outcome = payload.and_then(|payload| dispatch(&emulator, &parts, &payload));
            match outcome {
                Ok(response) if fault.is_some() && response.status().is_success() => {
                    reply::empty(StatusCode::NO_CONTENT)
                }
                Ok(response) => response,
                Err(error) => ids.error(&error),
            }
        }
    };
    ids.stamp(&mut response);
    response
}

fn record(parts: &Parts, payload: Option<&Payload>) -> RecordedRequest {
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &axum::http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    RecordedRequest {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
        client_request_id: header(CLIENT_REQUEST_ID),
        authorization: header(AUTHORIZATION),
        body: payload.and_then(Payload::recorded),
    }
}

/// What a Graph path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Collection,
    Task(String),
    UpdateStatus(String),
}

fn dispatch(emulator: &Emulator, parts: &Parts, payload: &Payload) -> Result<Response, GraphError> {
    let origin = origin(parts);
    let method = &parts.method;
    let refuse = |allow| {
        let uri = format!("{}{}", origin.0, parts.uri.path());
        Err(GraphError::method_not_allowed(&uri, method.as_str(), allow))
    };
    match resolve(parts.uri.path())? {
        Target::Collection => match *method {
            Method::GET => tasks::list(emulator, &origin, parts.uri.query()),
            Method::POST => tasks::create(emulator, &origin, payload),
            _ => refuse("GET, POST"),
        },
        Target::Task(id) => match *method {
            Method::GET => tasks::get(emulator, &origin, &id),
            Method::PATCH => tasks::update(emulator, &origin, &id, payload),
            Method::DELETE => tasks::delete(emulator, &id),
            _ => refuse("GET, PATCH, DELETE"),
        },
        Target::UpdateStatus(id) => match *method {
            Method::POST => tasks::update_status(emulator, &id, payload),
            _ => refuse("POST"),
        },
    }
}

/// Maps a path under `/beta` to its target. Segments match case-insensitively
/// and a trailing slash is ignored, as on Graph.
fn resolve(path: &str) -> Result<Target, GraphError> {
    let rest = path.strip_prefix("/beta").unwrap_or(path);
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let is = |segment: &String, name: &str| segment.eq_ignore_ascii_case(name);
    match segments.as_slice() {
        [app, tasks, rest @ ..]
            if is(app, "deviceAppManagement") && is(tasks, "deviceAppManagementTasks") =>
        {
            match rest {
                [] => Ok(Target::Collection),
                [id] => Ok(Target::Task(id.clone())),
                [id, action]
                    if is(action, "updateStatus") || is(action, "microsoft.graph.updateStatus") =>
                {
                    Ok(Target::UpdateStatus(id.clone()))
                }
                [_, other, ..] => Err(GraphError::unknown_segment(other)),
            }
        }
        [app, other, ..] if is(app, "deviceAppManagement") => {
            Err(GraphError::unknown_segment(other))
        }
        [first, ..] => Err(GraphError::unknown_segment(first)),
        [] => Err(GraphError::unknown_segment("beta")),
    }
}

/// `http://` plus the Host header (or the URI authority HTTP/2 carries).
fn origin(parts: &Parts) -> Origin {
    let host = parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(ToString::to_string))
        .unwrap_or_else(|| "localhost".to_owned());
    Origin(format!("http://{host}"))
}

/// `POST /_emulator/faults`: a JSON array of faults (a single object is
/// accepted too). All are validated before any is queued.
async fn post_faults(State(emulator): State<Emulator>, body: Bytes) -> Response {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Faults {
        Many(Vec<Fault>),
        One(Fault),
    }
    let faults = match serde_json::from_slice(&body) {
        Ok(Faults::Many(faults)) => faults,
        Ok(Faults::One(fault)) => vec![fault],
        Err(error) => return control_error(&format!("expected a JSON array of faults: {error}")),
    };
    if let Some(problem) = faults.iter().find_map(Fault::problem) {
        return control_error(&problem);
    }
    let queued = faults.len();
    emulator.push_faults(faults);
    control_json(
        StatusCode::OK,
        &json!({"queued": queued, "pending": emulator.pending_faults()}),
    )
}

/// `GET /_emulator/requests`: `{"received": N}`; with `?log=true` also
/// `"requests"`, the request log.
async fn get_requests(State(emulator): State<Emulator>, RawQuery(query): RawQuery) -> Response {
    let want_log = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "log" && (v == "true" || v == "1"));
    let mut body = json!({"received": emulator.received()});
    if want_log {
        body["requests"] = json!(emulator.requests());
    }
    control_json(StatusCode::OK, &body)
}

/// `POST /_emulator/reset`.
async fn post_reset(State(emulator): State<Emulator>) -> Response {
    emulator.reset();
    reply::empty(StatusCode::NO_CONTENT)
}

fn control_json(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    reply::with_body(status, "application/json", body)
}

fn control_error(message: &str) -> Response {
    control_json(StatusCode::BAD_REQUEST, &json!({"error": message}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_graph_paths() {
        let base = "/beta/deviceAppManagement/deviceAppManagementTasks";
        assert_eq!(resolve(base), Ok(Target::Collection));
        assert_eq!(resolve(&format!("{base}/")), Ok(Target::Collection));
        assert_eq!(
            resolve("/beta/deviceappmanagement/DEVICEAPPMANAGEMENTTASKS/a%20b"),
            Ok(Target::Task("a b".into()))
        );
        assert_eq!(
            resolve(&format!("{base}/x/microsoft.graph.updateStatus")),
            Ok(Target::UpdateStatus("x".into()))
        );
        for (path, segment) in [
            ("/beta", "beta"),
            ("/beta/users", "users"),
            ("/beta/deviceAppManagement/mobileApps", "mobileApps"),
            (&format!("{base}/x/assign") as &str, "assign"),
        ] {
            let error = resolve(path).expect_err(path);
            assert_eq!(error.code, "BadRequest");
            assert!(
                error.message.contains(&format!("'{segment}'")),
                "{}",
                error.message
            );
        }
    }
}

//! HTTP surface: Graph routes under `/beta` and control routes under
//! `/_emulator`.
//!
//! Graph routes are resolved by hand rather than by the axum router so every
//! miss gets Graph's own answer (400 for an unknown segment, 405 for a wrong
//! method) with request ids, and so each request is logged and meets its
//! scripted fault and chaos draw in exactly one place.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::header::{HeaderValue, AUTHORIZATION, HOST, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Bearer};
use super::body::{self, Payload};
use super::error::GraphError;
use super::faults::{Fault, ScriptedFault};
use super::intune_limits::ANONYMOUS_APP;
use super::journal::{redact_authorization, RecordedRequest};
use super::options::{Chaos, EmulatorOptions};
use super::reply::{self, RequestIds, CLIENT_REQUEST_ID};
use super::schema::TaskType;
use super::tasks::{self, Origin};
use super::throttle::ANONYMOUS_TENANT;
use super::Emulator;

pub fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/beta", any(graph))
        .route("/beta/", any(graph))
        .route("/beta/{*rest}", any(graph))
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token_endpoint))
        .route("/_emulator/faults", post(post_faults))
        .route("/_emulator/token-faults", post(post_token_faults))
        .route("/_emulator/requests", get(get_requests))
        .route("/_emulator/token-requests", get(get_token_requests))
        .route("/_emulator/stats", get(get_stats))
        .route("/_emulator/intune-limits", get(get_intune_limits))
        .route("/_emulator/options", get(get_options).put(put_options))
        .route("/_emulator/expire-tokens", post(post_expire_tokens))
        .route("/_emulator/reset", post(post_reset))
        .with_state(emulator)
}

/// Every request under `/beta`; see the module doc of `emulator` for the
/// order of checks.
async fn graph(State(emulator): State<Emulator>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let ids = RequestIds::new(&parts.headers);
    let payload = body::read(&parts.headers, body).await;
    let (admission, options) = emulator.admit(|| record(&parts, payload.as_ref().ok()));
    let delay = admission
        .fault
        .as_ref()
        .map_or(Duration::ZERO, ScriptedFault::delay);
    let fault = admission.fault.map(|scripted| scripted.fault);
    let mut response = match &fault {
        Some(fault) if !fault.body.applies() => fault.respond(&ids),
        _ => {
            let chaos = if fault.is_some() {
                None
            } else {
                admission.chaos
            };
            let real = match gate(&emulator, &options, &parts, &ids, chaos) {
                Some(refusal) => refusal,
                None => payload
                    .and_then(|payload| dispatch(&emulator, &parts, &payload))
                    .unwrap_or_else(|error| ids.error(&error)),
            };
            match &fault {
                Some(fault) => fault.body.finish(real).await,
                None => real,
            }
        }
    };
    let wait = options.latency.saturating_add(delay);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    ids.stamp(&mut response);
    response
}

/// The answer of whatever stops a request before processing: a missing or
/// bad bearer, a full Intune limit, a spent tenant budget, a chaos draw.
fn gate(
    emulator: &Emulator,
    options: &EmulatorOptions,
    parts: &Parts,
    ids: &RequestIds,
    chaos: Option<u16>,
) -> Option<Response> {
    let now = Instant::now();
    let bearer = if options.require_auth
        || options.tenant_budget.is_some()
        || options.intune_limits.is_some()
    {
        emulator
            .auth()
            .bearer(auth::authorization(&parts.headers), now)
    } else {
        Bearer::Missing
    };
    if options.require_auth {
        if let Some(refusal) = bearer.refusal(ids, &host(parts)) {
            return Some(refusal);
        }
    }
    if let Some(limits) = &options.intune_limits {
        // A token this emulator issued names its tenant and app, whether or
        // not `require_auth` is on (as for the tenant budget).
        let tenant = bearer.tenant().unwrap_or(ANONYMOUS_TENANT);
        let app = bearer.client_id().unwrap_or(ANONYMOUS_APP);
        let verdict = emulator.meter_intune(limits, tenant, app, is_write(&parts.method));
        if let Err(refusal) = verdict {
            let mut response = ids.error(&refusal.error());
            response
                .headers_mut()
                .insert(RETRY_AFTER, refusal.retry_after_header());
            return Some(response);
        }
    }
    if let Some(budget) = &options.tenant_budget {
        let tenant = bearer.tenant().unwrap_or(ANONYMOUS_TENANT);
        let verdict = emulator.windows().admit(tenant, budget, now);
        if let Err(retry_after) = verdict {
            let error = GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                format!(
                    "Too many requests for tenant '{tenant}'. Retry after {retry_after} seconds."
                ),
            );
            let mut response = ids.error(&error);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            return Some(response);
        }
    }
    let status = chaos?;
    emulator.count_chaos_fault();
    Some(chaos_fault(status, options.chaos.as_ref()).respond(ids))
}

/// Whether Intune's limits count `method` as a write.
fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The Graph error a chaos draw answers with.
fn chaos_fault(status: u16, chaos: Option<&Chaos>) -> Fault {
    let fault = Fault::new(status).with_message(format!(
        "{} (injected by the Graph emulator's chaos option).",
        super::error::default_message(status).trim_end_matches('.')
    ));
    match chaos.and_then(|c| c.retry_after.clone()) {
        Some(retry_after) if matches!(status, 429 | 503) => fault.with_retry_after(retry_after),
        _ => fault,
    }
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
        authorization: parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| redact_authorization(v.as_bytes())),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = if name == AUTHORIZATION {
                    redact_authorization(value.as_bytes())
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: payload.and_then(Payload::recorded),
    }
}

/// What a Graph path names. Besides the collection and its tasks, the OData
/// segments a loose id could reach: a type cast of the collection (a
/// collection of that type), `$count` (a plain-text number), and a task's
/// `$ref` (its entity reference) and `$value` (refused: a task is no media
/// entity).
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Collection,
    /// `.../deviceAppManagementTasks/microsoft.graph.X`.
    Cast(TaskType),
    /// `.../$count`, or `.../microsoft.graph.X/$count`.
    Count(Option<TaskType>),
    Task(String),
    /// `.../{id}/$ref`.
    Reference(String),
    /// `.../{id}/$value`.
    RawValue(String),
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
            Method::GET => tasks::list(emulator, &origin, parts.uri.query(), None),
            Method::POST => tasks::create(emulator, &origin, payload),
            _ => refuse("GET, POST"),
        },
        Target::Cast(task_type) => match *method {
            Method::GET => tasks::list(emulator, &origin, parts.uri.query(), Some(task_type)),
            _ => refuse("GET"),
        },
        Target::Count(task_type) => match *method {
            Method::GET => tasks::count(emulator, parts.uri.query(), task_type),
            _ => refuse("GET"),
        },
        Target::Reference(id) => match *method {
            Method::GET => tasks::reference(emulator, &origin, &id),
            _ => refuse("GET"),
        },
        Target::RawValue(_) => Err(GraphError::bad_request(
            "The $value segment can only follow a media entity or a primitive property;              deviceAppManagementTask is neither.",
        )),
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
                [count] if is(count, "$count") => Ok(Target::Count(None)),
                [cast] if is_qualified(cast) => Ok(Target::Cast(cast_type(cast)?)),
                [cast, count] if is_qualified(cast) && is(count, "$count") => {
                    Ok(Target::Count(Some(cast_type(cast)?)))
                }
                [option, ..] if option.starts_with('$') => Err(GraphError::unknown_segment(option)),
                [id] => Ok(Target::Task(id.clone())),
                [id, action]
                    if is(action, "updateStatus") || is(action, "microsoft.graph.updateStatus") =>
                {
                    Ok(Target::UpdateStatus(id.clone()))
                }
                [id, reference] if is(reference, "$ref") => Ok(Target::Reference(id.clone())),
                [id, value] if is(value, "$value") => Ok(Target::RawValue(id.clone())),
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

/// A namespace-qualified segment, which OData reads as a type cast.
fn is_qualified(segment: &str) -> bool {
    segment
        .get(..16)
        .is_some_and(|head| head.eq_ignore_ascii_case("microsoft.graph."))
}

/// The task type a cast segment names; Graph refuses any other type.
fn cast_type(segment: &str) -> Result<TaskType, GraphError> {
    TaskType::ALL
        .into_iter()
        .find(|t| t.qualified_name().eq_ignore_ascii_case(segment))
        .ok_or_else(|| {
            GraphError::bad_request(format!(
                "The type '{segment}' is not derived from microsoft.graph.deviceAppManagementTask,                  so it cannot cast the segment 'deviceAppManagementTasks'."
            ))
        })
}

/// `http://` plus the Host header (or the URI authority HTTP/2 carries).
fn origin(parts: &Parts) -> Origin {
    Origin(format!("http://{}", host(parts)))
}

fn host(parts: &Parts) -> String {
    parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(ToString::to_string))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A JSON array of scripted faults (a single object is accepted too), all
/// validated.
fn parse_faults(body: &[u8]) -> Result<Vec<ScriptedFault>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Faults {
        Many(Vec<ScriptedFault>),
        One(ScriptedFault),
    }
    let faults = match serde_json::from_slice(body) {
        Ok(Faults::Many(faults)) => faults,
        Ok(Faults::One(fault)) => vec![fault],
        Err(error) => return Err(format!("expected a JSON array of faults: {error}")),
    };
    match faults.iter().find_map(|f| f.fault.problem()) {
        Some(problem) => Err(problem),
        None => Ok(faults),
    }
}

/// `POST /_emulator/faults`: faults for the next Graph requests. All are
/// validated before any is queued.
async fn post_faults(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let faults = match parse_faults(&body) {
        Ok(faults) => faults,
        Err(problem) => return control_error(&problem),
    };
    let queued = faults.len();
    emulator.push_faults(faults);
    control_json(
        StatusCode::OK,
        &json!({"queued": queued, "pending": emulator.pending_faults()}),
    )
}

/// `POST /_emulator/token-faults`: faults for the next token requests.
async fn post_token_faults(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let faults = match parse_faults(&body) {
        Ok(faults) => faults,
        Err(problem) => return control_error(&problem),
    };
    let queued = faults.len();
    emulator.push_token_faults(faults);
    control_json(
        StatusCode::OK,
        &json!({"queued": queued, "pending": emulator.pending_token_faults()}),
    )
}

/// `GET /_emulator/token-requests`: `{"count": N, "requests": [...]}`.
async fn get_token_requests(State(emulator): State<Emulator>) -> Response {
    control_json(StatusCode::OK, &auth::token_requests_json(&emulator))
}

/// `GET /_emulator/stats`: every counter at once.
async fn get_stats(State(emulator): State<Emulator>) -> Response {
    control_json(
        StatusCode::OK,
        &json!({
            "received": emulator.received(),
            "token_requests": emulator.token_request_count(),
            "chaos_faults_injected": emulator.chaos_faults_injected(),
            "throttled": emulator.throttled(),
            "intune_throttled": emulator.intune_throttled(),
            "intune_admitted_requests": emulator.intune_admitted_requests(),
            "intune_admitted_writes": emulator.intune_admitted_writes(),
            "pending_faults": emulator.pending_faults(),
            "pending_token_faults": emulator.pending_token_faults(),
        }),
    )
}

/// `GET /_emulator/intune-limits`: what the Intune limits counted
/// ([`super::IntuneReport`]).
async fn get_intune_limits(State(emulator): State<Emulator>) -> Response {
    match serde_json::to_value(emulator.intune_usage()) {
        Ok(value) => control_json(StatusCode::OK, &value),
        Err(error) => control_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": error.to_string()}),
        ),
    }
}

/// `GET /_emulator/options`.
async fn get_options(State(emulator): State<Emulator>) -> Response {
    options_json(&emulator)
}

/// `PUT /_emulator/options`: replaces the options whole (absent fields take
/// their defaults) and answers the options now in effect.
async fn put_options(State(emulator): State<Emulator>, body: Bytes) -> Response {
    // A JSON object only: serde would also take a struct from an array.
    let options = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) if value.is_object() => serde_json::from_value::<EmulatorOptions>(value),
        Ok(_) => return control_error("expected a JSON object of emulator options"),
        Err(error) => Err(error),
    };
    let options = match options {
        Ok(options) => options,
        Err(error) => return control_error(&format!("invalid emulator options: {error}")),
    };
    if let Some(problem) = options.problem() {
        return control_error(&problem);
    }
    emulator.set_options(options);
    options_json(&emulator)
}

fn options_json(emulator: &Emulator) -> Response {
    match serde_json::to_value(emulator.options()) {
        Ok(value) => control_json(StatusCode::OK, &value),
        Err(error) => control_json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": error.to_string()}),
        ),
    }
}

/// `POST /_emulator/expire-tokens`.
async fn post_expire_tokens(State(emulator): State<Emulator>) -> Response {
    emulator.expire_tokens();
    reply::empty(StatusCode::NO_CONTENT)
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
        assert_eq!(
            resolve(&format!("{base}/microsoft.graph.securityConfigurationTask")),
            Ok(Target::Cast(TaskType::SecurityConfiguration))
        );
        assert_eq!(
            resolve(&format!(
                "{base}/Microsoft.Graph.AppVulnerabilityTask/$COUNT"
            )),
            Ok(Target::Count(Some(TaskType::AppVulnerability)))
        );
        assert_eq!(resolve(&format!("{base}/$count")), Ok(Target::Count(None)));
        assert_eq!(
            resolve(&format!("{base}/x/$ref")),
            Ok(Target::Reference("x".into()))
        );
        assert_eq!(
            resolve(&format!("{base}/x/$value")),
            Ok(Target::RawValue("x".into()))
        );
        for (path, segment) in [
            ("/beta", "beta"),
            ("/beta/users", "users"),
            ("/beta/deviceAppManagement/mobileApps", "mobileApps"),
            (&format!("{base}/x/assign") as &str, "assign"),
            (&format!("{base}/$ref"), "$ref"),
            (&format!("{base}/$value"), "$value"),
            (&format!("{base}/$metadata"), "$metadata"),
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

//! HTTP surface: Graph routes under `/beta` and control routes under
//! `/_emulator`.
//!
//! Graph routes are resolved by hand rather than by the axum router so every
//! miss gets Graph's own answer (400 for an unknown segment, 405 for a wrong
//! method) with request ids, and so each request is logged and meets its
//! scripted fault and chaos draw in exactly one place: [`handle`], which a
//! request sent alone and each item of a `$batch` (see [`super::batch`])
//! go through alike, followed by [`deliver`].

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
use uuid::Uuid;

use super::auth::{self, Bearer};
use super::batch::{self, Answer, Envelope};
use super::body::{self, Payload};
use super::error::GraphError;
use super::faults::{Fault, FaultBody, ScriptedFault};
use super::intune_limits::ANONYMOUS_APP;
use super::journal::{redact_authorization, RecordedRequest, RequestKind};
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
/// order of checks. `POST /beta/$batch` is an envelope whose items go
/// through [`handle`] and [`deliver`] one by one, exactly as requests sent
/// alone do.
async fn graph(State(emulator): State<Emulator>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let payload = body::read(&parts.headers, body).await;
    if parts.method == Method::POST && is_batch(parts.uri.path()) {
        return serve_batch(&emulator, parts, payload).await;
    }
    let handled = handle(&emulator, &parts, payload, RequestKind::Single);
    deliver(handled).await
}

/// A Graph request admitted and processed (or answered by its fault), its
/// answer not yet delivered.
struct Handled {
    ids: RequestIds,
    response: Response,
    /// The scripted fault of an applied request, which shapes how its
    /// answer is delivered.
    fault: Option<Fault>,
    /// Latency plus the fault's delay.
    wait: Duration,
}

/// The synchronous half of every Graph request, alone or in a batch: counts
/// and logs it, draws its scripted fault and chaos, checks it (`gate`) and
/// processes it. Batch items pass here one after another in the order they
/// are listed, so faults, chaos draws, Intune metering and changes to the
/// store follow that order whatever happens next.
fn handle(
    emulator: &Emulator,
    parts: &Parts,
    payload: Result<Payload, GraphError>,
    kind: RequestKind,
) -> Handled {
    let ids = RequestIds::new(&parts.headers);
    let (admission, options) = emulator.admit(|| record(parts, payload.as_ref().ok(), kind));
    let delay = admission
        .fault
        .as_ref()
        .map_or(Duration::ZERO, ScriptedFault::delay);
    let wait = options.latency.saturating_add(delay);
    let fault = admission.fault.map(|scripted| scripted.fault);
    match fault {
        Some(fault) if !fault.body.applies() => Handled {
            response: fault.respond(&ids),
            ids,
            fault: None,
            wait,
        },
        fault => {
            let chaos = if fault.is_some() {
                None
            } else {
                admission.chaos
            };
            let response = match gate(emulator, &options, parts, &ids, chaos) {
                Some(refusal) => refusal,
                None => payload
                    .and_then(|payload| dispatch(emulator, parts, &payload))
                    .unwrap_or_else(|error| ids.error(&error)),
            };
            Handled {
                ids,
                response,
                fault,
                wait,
            }
        }
    }
}

/// The asynchronous half: the fault shapes the answer, latency and delay
/// hold it back, the request ids are stamped on it.
async fn deliver(handled: Handled) -> Response {
    let Handled {
        ids,
        response,
        fault,
        wait,
    } = handled;
    let mut response = match &fault {
        Some(fault) => fault.finish_in(response, &ids).await,
        None => response,
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    ids.stamp(&mut response);
    response
}

/// `/beta/$batch` (any case, trailing slash ignored, `$` maybe escaped).
fn is_batch(path: &str) -> bool {
    matches!(resolve(path), Ok(Target::Batch))
}

/// `POST /beta/$batch`. The envelope is counted and logged and meets the
/// next envelope fault (never a chaos draw); a fault that replaces the
/// answer is sent before anything runs. Otherwise the envelope's bearer is
/// checked (with `require_auth`; the envelope itself is not metered by the
/// Intune limits or the tenant budget, its items are), the envelope is read
/// (400 for the whole batch when Graph would refuse it), and its items run
/// as requests of their own. The answer is held back until at least one
/// latency after the envelope arrived: items run in parallel, each held
/// back by the latency, so a batch costs about one latency, not one per
/// item (with `dependsOn` they run one after another, one latency each).
async fn serve_batch(
    emulator: &Emulator,
    parts: Parts,
    payload: Result<Payload, GraphError>,
) -> Response {
    let arrived = Instant::now();
    let ids = RequestIds::new(&parts.headers);
    let kind = RequestKind::Batch {
        request_id: ids.request_id.clone(),
    };
    let (scripted, options) = emulator.admit_batch(|| record(&parts, payload.as_ref().ok(), kind));
    let delay = scripted
        .as_ref()
        .map_or(Duration::ZERO, ScriptedFault::delay);
    let fault = scripted.map(|scripted| scripted.fault);
    let mut response = match &fault {
        Some(fault) if !fault.body.applies() => fault.respond(&ids),
        _ => {
            let body = fault.as_ref().map(|fault| &fault.body);
            let real = run_batch(emulator, &options, &parts, payload, &ids, body).await;
            match &fault {
                Some(fault) => fault.finish_in(real, &ids).await,
                None => real,
            }
        }
    };
    let wait = options
        .latency
        .saturating_sub(arrived.elapsed())
        .saturating_add(delay);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    ids.stamp(&mut response);
    response
}

/// The envelope's answer once no fault replaced it: 401 for its bearer,
/// 400 for its shape, else 200 with every item's answer in the seeded
/// order (shaped by an `OmitResponse` or `UnknownResponseId` fault).
async fn run_batch(
    emulator: &Emulator,
    options: &EmulatorOptions,
    parts: &Parts,
    payload: Result<Payload, GraphError>,
    ids: &RequestIds,
    fault: Option<&FaultBody>,
) -> Response {
    if options.require_auth {
        let bearer = emulator
            .auth()
            .bearer(auth::authorization(&parts.headers), Instant::now());
        if let Some(refusal) = bearer.refusal(ids, &host(parts)) {
            return refusal;
        }
    }
    let envelope = match payload.and_then(|payload| Envelope::parse(&payload)) {
        Ok(envelope) => envelope,
        Err(error) => return ids.error(&error),
    };
    let answers = if envelope.sequential() {
        run_in_sequence(emulator, parts, &envelope, &ids.request_id).await
    } else {
        run_in_parallel(emulator, parts, &envelope, &ids.request_id).await
    };
    let order = emulator.batch_order(answers.len());
    let mut answers = batch::reorder(answers, &order);
    // An accepted envelope holds at least one request.
    let first = envelope.items.first().map_or("", |item| item.id.as_str());
    match fault {
        Some(FaultBody::OmitResponse) => answers.retain(|answer| answer.id != first),
        Some(FaultBody::UnknownResponseId) => {
            let unknown = batch::unknown_id(first, &envelope.items);
            for answer in answers.iter_mut().filter(|answer| answer.id == first) {
                answer.id.clone_from(&unknown);
            }
        }
        _ => {}
    }
    reply::json(StatusCode::OK, &batch::answer_body(&answers))
}

/// Handles each item in the order listed, then delivers them all at once;
/// answers in the order listed.
async fn run_in_parallel(
    emulator: &Emulator,
    parts: &Parts,
    envelope: &Envelope,
    batch_request_id: &str,
) -> Vec<Answer> {
    let mut running = Vec::with_capacity(envelope.items.len());
    for item in &envelope.items {
        let id = item.id.clone();
        match item_request(emulator, parts, item, batch_request_id) {
            Ok(handled) => running.push((
                id.clone(),
                tokio::spawn(
                    async move { Answer::from_response(&id, deliver(handled).await).await },
                ),
            )),
            Err(answer) => running.push((id, tokio::spawn(async move { answer }))),
        }
    }
    let mut answers = Vec::with_capacity(running.len());
    for (id, task) in running {
        answers.push(task.await.unwrap_or_else(|_| Answer::internal(&id)));
    }
    answers
}

/// Runs each item to its answer before the next; an item one of whose
/// dependencies did not succeed is not run (424).
async fn run_in_sequence(
    emulator: &Emulator,
    parts: &Parts,
    envelope: &Envelope,
    batch_request_id: &str,
) -> Vec<Answer> {
    let mut answers: Vec<Answer> = Vec::with_capacity(envelope.items.len());
    for item in &envelope.items {
        let failed = item
            .depends_on
            .iter()
            .any(|&i| answers.get(i).is_none_or(|answer| !answer.succeeded()));
        let answer = if failed {
            Answer::failed_dependency(&item.id, &Uuid::new_v4().to_string())
        } else {
            match item_request(emulator, parts, item, batch_request_id) {
                Ok(handled) => Answer::from_response(&item.id, deliver(handled).await).await,
                Err(answer) => answer,
            }
        };
        answers.push(answer);
    }
    answers
}

/// An item through [`handle`]; `Err` with its 400 when its URL makes no
/// request (it is then neither counted nor logged: it never reached a
/// route).
fn item_request(
    emulator: &Emulator,
    envelope: &Parts,
    item: &batch::Item,
    batch_request_id: &str,
) -> Result<Handled, Answer> {
    let kind = RequestKind::BatchItem {
        id: item.id.clone(),
        batch_request_id: batch_request_id.to_owned(),
    };
    match item.request(envelope) {
        Ok((parts, payload)) => Ok(handle(emulator, &parts, Ok(payload), kind)),
        Err(error) => Err(Answer::from_error(
            &item.id,
            &RequestIds::new(&item.headers),
            &error,
        )),
    }
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

fn record(parts: &Parts, payload: Option<&Payload>, kind: RequestKind) -> RecordedRequest {
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
        kind,
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
    /// `/$batch`, right under the version root.
    Batch,
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
        // A POST reaches here only as an item of a batch.
        Target::Batch => match *method {
            Method::POST => Err(GraphError::bad_request(
                "A $batch request cannot be sent inside a batch.",
            )),
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
        [batch] if is(batch, "$batch") => Ok(Target::Batch),
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
    match faults.iter().find_map(ScriptedFault::problem) {
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

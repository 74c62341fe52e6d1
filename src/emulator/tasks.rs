//! The operations on `deviceAppManagementTasks`, each answering as Graph does.
//!
//! Locks are taken inside each operation and released before the response
//! is serialised; nothing here awaits.

use axum::http::header::{HeaderValue, LOCATION};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use uuid::Uuid;

use super::body::Payload;
use super::datetime;
use super::error::GraphError;
use super::query::ListQuery;
use super::reply;
use super::schema::{self, TaskType};
use super::Emulator;

/// Path of the collection, also used in links.
pub const COLLECTION_PATH: &str = "/beta/deviceAppManagement/deviceAppManagementTasks";

/// Where the client reached the emulator (`http://host:port`), for absolute
/// links built from its Host header as Graph builds them from its own.
pub struct Origin(pub String);

impl Origin {
    fn context(&self, suffix: &str) -> String {
        format!(
            "{}/beta/$metadata#deviceAppManagement/deviceAppManagementTasks{suffix}",
            self.0
        )
    }
}

/// A page of the collection, or with `cast` of the tasks of that type (the
/// collection cast to it, `.../deviceAppManagementTasks/microsoft.graph.X`).
pub fn list(
    emulator: &Emulator,
    origin: &Origin,
    query: Option<&str>,
    cast: Option<TaskType>,
) -> Result<Response, GraphError> {
    let query = ListQuery::parse(query)?;
    let keep = |task: &Value| {
        cast.is_none_or(|t| TaskType::of(task) == Some(t))
            && query.filter.as_ref().is_none_or(|(_, f)| f.matches(task))
    };
    let page = emulator.store_read().page(query.after, query.top, keep);
    let suffix = cast.map_or_else(String::new, |t| format!("/{}", t.qualified_name()));
    let mut body = serde_json::Map::new();
    body.insert("@odata.context".into(), origin.context(&suffix).into());
    if let Some(seq) = page.resume_after {
        let path = format!("{COLLECTION_PATH}{suffix}");
        let link = query.next_link(&origin.0, &path, seq);
        body.insert("@odata.nextLink".into(), link.into());
    }
    body.insert("value".into(), Value::Array(page.items));
    Ok(reply::json(StatusCode::OK, &Value::Object(body)))
}

/// `$count`: how many tasks (of the cast type, matching the filter) there
/// are, as a plain-text number.
pub fn count(
    emulator: &Emulator,
    query: Option<&str>,
    cast: Option<TaskType>,
) -> Result<Response, GraphError> {
    let query = ListQuery::parse(query)?;
    let n = emulator.store_read().count(|task| {
        cast.is_none_or(|t| TaskType::of(task) == Some(t))
            && query.filter.as_ref().is_none_or(|(_, f)| f.matches(task))
    });
    Ok(reply::with_body(
        StatusCode::OK,
        "text/plain",
        n.to_string().into_bytes(),
    ))
}

/// `{id}/$ref`: the task's entity reference, not the task.
pub fn reference(emulator: &Emulator, origin: &Origin, id: &str) -> Result<Response, GraphError> {
    if emulator.store_read().get(id).is_none() {
        return Err(GraphError::item_not_found(id));
    }
    let body = serde_json::json!({
        "@odata.context": format!("{}/beta/$metadata#$ref", origin.0),
        "@odata.id": format!("{}{COLLECTION_PATH}/{id}", origin.0),
    });
    Ok(reply::json(StatusCode::OK, &body))
}

pub fn get(emulator: &Emulator, origin: &Origin, id: &str) -> Result<Response, GraphError> {
    let task = emulator
        .store_read()
        .get(id)
        .cloned()
        .ok_or_else(|| GraphError::item_not_found(id))?;
    Ok(entity(StatusCode::OK, origin, task))
}

pub fn create(
    emulator: &Emulator,
    origin: &Origin,
    payload: &Payload,
) -> Result<Response, GraphError> {
    let id = Uuid::new_v4().to_string();
    let task = schema::build_created(payload.json()?, &id, &datetime::now_created())
        .map_err(GraphError::invalid_request)?;
    emulator.store_write().put(id.clone(), task.clone());
    let mut response = entity(StatusCode::CREATED, origin, task);
    let location = format!("{}{COLLECTION_PATH}/{id}", origin.0);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    Ok(response)
}

pub fn update(
    emulator: &Emulator,
    origin: &Origin,
    id: &str,
    payload: &Payload,
) -> Result<Response, GraphError> {
    let body = payload.json();
    let updated = {
        let mut store = emulator.store_write();
        let task = store
            .get_mut(id)
            .ok_or_else(|| GraphError::item_not_found(id))?;
        let changes = schema::validate_update(stored_type(task)?, body?)
            .map_err(GraphError::invalid_request)?;
        if let Some(object) = task.as_object_mut() {
            object.extend(changes);
        }
        task.clone()
    };
    Ok(entity(StatusCode::OK, origin, updated))
}

pub fn delete(emulator: &Emulator, id: &str) -> Result<Response, GraphError> {
    if emulator.store_write().remove(id) {
        Ok(reply::empty(StatusCode::NO_CONTENT))
    } else {
        Err(GraphError::item_not_found(id))
    }
}

pub fn update_status(
    emulator: &Emulator,
    id: &str,
    payload: &Payload,
) -> Result<Response, GraphError> {
    let body = payload.json();
    let mut store = emulator.store_write();
    let task = store
        .get_mut(id)
        .ok_or_else(|| GraphError::item_not_found(id))?;
    let update = schema::validate_update_status(body?).map_err(GraphError::invalid_request)?;
    if let Some(object) = task.as_object_mut() {
        object.insert("status".into(), update.status.into());
    }
    // Kept, as Graph keeps it, but outside the task: no answer carries it.
    store.add_note(id, update.note);
    Ok(reply::empty(StatusCode::NO_CONTENT))
}

/// The type a PATCH is validated against. Only a task stored through
/// [`Emulator::insert`] without a known `@odata.type` can lack one.
fn stored_type(task: &Value) -> Result<TaskType, GraphError> {
    TaskType::of(task).ok_or_else(|| {
        GraphError::invalid_request(
            "The stored task has no known '@odata.type', so the emulator cannot validate an \
             update to it.",
        )
    })
}

/// A single task with its `@odata.context`, as Graph answers GET/POST/PATCH.
fn entity(status: StatusCode, origin: &Origin, mut task: Value) -> Response {
    if let Some(object) = task.as_object_mut() {
        object.insert("@odata.context".into(), origin.context("/$entity").into());
    }
    reply::json(status, &task)
}

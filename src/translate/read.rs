//! Graph JSON -> `SecurityConfigurationTask`.
//!
//! Tolerant the way a client of an evolving API must be: unknown properties
//! are ignored, `null` and missing properties read as unset, and an enum
//! member this gateway does not know reads as UNSPECIFIED (reported, so it can
//! be counted) instead of failing the call.

use super::enums::{self, GraphEnum};
use super::error::{quoted, ResponseError, Unexpected};
use super::timestamp;
use super::ODATA_TYPE;
use crate::proto::v1::{KeyValuePair, SecurityConfigurationTask};
use serde::Deserialize;
use std::borrow::Cow;

/// An enum member Graph sent that this gateway does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEnumValue {
    /// The Graph enum type, e.g. `deviceAppManagementTaskStatus`.
    pub graph_type: &'static str,
    /// The member Graph sent.
    pub value: String,
}

/// A task read from Graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedTask {
    pub task: SecurityConfigurationTask,
    pub unknown_enum_values: Vec<UnknownEnumValue>,
}

/// A page of the task collection, with other task types left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedPage {
    pub tasks: Vec<SecurityConfigurationTask>,
    pub unknown_enum_values: Vec<UnknownEnumValue>,
    /// Graph's `@odata.nextLink`, when more pages remain.
    pub next_link: Option<String>,
    /// How many tasks of other types the page held.
    pub other_types_skipped: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphTask<'a> {
    #[serde(rename = "@odata.type", borrow, default)]
    odata_type: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(borrow, default)]
    created_date_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    due_date_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    priority: Option<Cow<'a, str>>,
    #[serde(default)]
    creator: Option<String>,
    #[serde(default)]
    creator_notes: Option<String>,
    #[serde(default)]
    assigned_to: Option<String>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    applicable_platform: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    endpoint_security_policy: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    endpoint_security_policy_profile: Option<Cow<'a, str>>,
    #[serde(default)]
    insights: Option<String>,
    #[serde(default)]
    managed_device_count: Option<i64>,
    #[serde(default)]
    intended_settings: Option<Vec<Option<GraphKeyValue>>>,
}

#[derive(Deserialize)]
struct GraphKeyValue {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct GraphPage<'a> {
    #[serde(borrow)]
    value: Vec<GraphTask<'a>>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

/// Reads one task, whatever its id, tolerating a missing `@odata.type`.
pub fn task_from_graph(body: &[u8]) -> Result<DecodedTask, ResponseError> {
    let raw: GraphTask<'_> = parse_object(body)?;
    decode(raw)
}

/// Reads the answer to a request for the task `asked` (a GET, or a PATCH
/// answered with the task): it must say what it is (`@odata.type`) and be
/// that task (its `id`), or a `{}` or another task's body would pass for it.
/// GUIDs are compared without regard to case, as Graph compares them.
pub fn task_answer(body: &[u8], asked: &str) -> Result<DecodedTask, ResponseError> {
    let raw: GraphTask<'_> = parse_object(body)?;
    if raw.odata_type.is_none() {
        return Err(ResponseError::NotTheTask(Unexpected::NoODataType));
    }
    match raw.id.as_deref() {
        None => return Err(ResponseError::NotTheTask(Unexpected::NoId)),
        Some(id) if !id.eq_ignore_ascii_case(asked) => {
            return Err(ResponseError::NotTheTask(Unexpected::OtherId {
                asked: quoted(asked),
                got: quoted(id),
            }))
        }
        Some(_) => {}
    }
    decode(raw)
}

fn decode(raw: GraphTask<'_>) -> Result<DecodedTask, ResponseError> {
    if let Some(other) = raw.odata_type.as_deref().filter(|t| *t != ODATA_TYPE) {
        return Err(ResponseError::NotSecurityTask {
            odata_type: other.to_owned(),
        });
    }
    let mut unknown = Vec::new();
    let task = convert(raw, &mut unknown)?;
    Ok(DecodedTask {
        task,
        unknown_enum_values: unknown,
    })
}

/// Reads a page of the task collection, keeping only securityConfigurationTasks.
pub fn page_from_graph(body: &[u8]) -> Result<DecodedPage, ResponseError> {
    let raw: GraphPage<'_> = parse_object(body)?;
    let mut page = DecodedPage {
        next_link: raw.next_link,
        ..DecodedPage::default()
    };
    for item in raw.value {
        // In the shared collection the type is what tells tasks apart, so an
        // item without it cannot be claimed as a securityConfigurationTask.
        if item.odata_type.as_deref() != Some(ODATA_TYPE) {
            page.other_types_skipped += 1;
            continue;
        }
        page.tasks
            .push(convert(item, &mut page.unknown_enum_values)?);
    }
    Ok(page)
}

/// Parses a JSON object; serde would also read a struct from an array.
fn parse_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ResponseError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ResponseError::Malformed("not a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))
}

fn convert(
    raw: GraphTask<'_>,
    unknown: &mut Vec<UnknownEnumValue>,
) -> Result<SecurityConfigurationTask, ResponseError> {
    let mut member = |table: &GraphEnum, value: Option<Cow<'_, str>>| -> i32 {
        let Some(value) = value else { return 0 };
        table.from_graph(&value).unwrap_or_else(|| {
            unknown.push(UnknownEnumValue {
                graph_type: table.graph_type,
                value: value.into_owned(),
            });
            0
        })
    };
    let category = member(&enums::CATEGORY, raw.category);
    let priority = member(&enums::PRIORITY, raw.priority);
    let status = member(&enums::STATUS, raw.status);
    let applicable_platform = member(&enums::APPLICABLE_PLATFORM, raw.applicable_platform);
    let endpoint_security_policy = member(
        &enums::ENDPOINT_SECURITY_POLICY,
        raw.endpoint_security_policy,
    );
    let endpoint_security_policy_profile = member(
        &enums::ENDPOINT_SECURITY_POLICY_PROFILE,
        raw.endpoint_security_policy_profile,
    );
    let date = |name: &str, value: Option<Cow<'_, str>>| match value {
        None => Ok(None),
        Some(v) => timestamp::from_graph(&v).map(Some).ok_or_else(|| {
            ResponseError::Malformed(format!("{name} is not a DateTimeOffset: {v:?}"))
        }),
    };
    let managed_device_count = raw
        .managed_device_count
        .map(|n| {
            i32::try_from(n).map_err(|_| {
                ResponseError::Malformed(format!("managedDeviceCount {n} is not an Int32"))
            })
        })
        .transpose()?;
    Ok(SecurityConfigurationTask {
        id: raw.id.unwrap_or_default(),
        display_name: raw.display_name,
        description: raw.description,
        created_date_time: date("createdDateTime", raw.created_date_time)?,
        due_date_time: date("dueDateTime", raw.due_date_time)?,
        category,
        priority,
        creator: raw.creator,
        creator_notes: raw.creator_notes,
        assigned_to: raw.assigned_to,
        status,
        applicable_platform,
        endpoint_security_policy,
        endpoint_security_policy_profile,
        insights: raw.insights,
        managed_device_count,
        intended_settings: raw
            .intended_settings
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .map(|kv| KeyValuePair {
                name: kv.name.unwrap_or_default(),
                value: kv.value,
            })
            .collect(),
    })
}

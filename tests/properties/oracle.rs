//! The update rules as the README states them, written out independently of
//! the translation code: which requests are invalid (and which fields say
//! so), which fields a valid one sends, and what Graph must hold afterwards.
//!
//! Limits are the documented numbers, not the crate's constants, so a change
//! to either side shows up here. Graph names are derived from proto names
//! (snake_case to camelCase), enum members from the proto's enum names, and
//! the date range from the `time` crate's calendar.

use graph_grpc_gateway::proto::v1 as pb;
use graph_grpc_gateway::proto::v1::{
    KeyValuePair, SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use prost_types::Timestamp;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;

/// "strings at most 16 KiB".
pub const MAX_STRING_BYTES: usize = 16 * 1024;
/// "at most 1000 `intended_settings`".
pub const MAX_INTENDED_SETTINGS: usize = 1000;
/// "`managed_device_count` in 0..=65536".
pub const MAX_MANAGED_DEVICE_COUNT: i32 = 65_536;
/// "ids are GUIDs": 36 characters.
pub const GUID_LEN: usize = 36;
/// "timestamps in 0001..9999".
pub const MIN_SECONDS: i64 = datetime!(0001-01-01 00:00:00 UTC).unix_timestamp();
pub const MAX_SECONDS: i64 = datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();

const TASK: &str = "security_configuration_task";
const MASK: &str = "update_mask";

/// Every field of `SecurityConfigurationTask`, by proto name (checked
/// against the descriptor in `descriptor.rs`).
pub const PROTO_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "description",
    "created_date_time",
    "due_date_time",
    "category",
    "priority",
    "creator",
    "creator_notes",
    "assigned_to",
    "status",
    "applicable_platform",
    "endpoint_security_policy",
    "endpoint_security_policy_profile",
    "insights",
    "managed_device_count",
    "intended_settings",
];

/// The nullable string fields.
pub const STRING_FIELDS: [&str; 6] = [
    "display_name",
    "description",
    "creator",
    "creator_notes",
    "assigned_to",
    "insights",
];

/// The enum fields and how many members (past UNSPECIFIED) each proto enum has.
pub const ENUM_FIELDS: [(&str, i32); 6] = [
    ("category", 2),
    ("priority", 3),
    ("status", 5),
    ("applicable_platform", 4),
    ("endpoint_security_policy", 7),
    ("endpoint_security_policy_profile", 15),
];

pub fn is_output_only(path: &str) -> bool {
    matches!(path, "id" | "created_date_time")
}

/// `endpoint_security_policy_profile` -> `endpointSecurityPolicyProfile`.
pub fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// "An id is a GUID as Graph gives it: 32 hexadecimal digits, either case,
/// hyphenated 8-4-4-4-12, without braces."
pub fn id_is_valid(id: &str) -> bool {
    id.len() == GUID_LEN
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// In 0001..9999 and a whole number of 100 ns ticks.
pub fn timestamp_is_valid(ts: &Timestamp) -> bool {
    (MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds)
        && (0..1_000_000_000).contains(&ts.nanos)
        && ts.nanos % 100 == 0
}

fn enum_value(task: &SecurityConfigurationTask, field: &str) -> i32 {
    match field {
        "category" => task.category,
        "priority" => task.priority,
        "status" => task.status,
        "applicable_platform" => task.applicable_platform,
        "endpoint_security_policy" => task.endpoint_security_policy,
        "endpoint_security_policy_profile" => task.endpoint_security_policy_profile,
        other => unreachable!("{other} is not an enum field"),
    }
}

fn string_value<'a>(task: &'a SecurityConfigurationTask, field: &str) -> Option<&'a str> {
    match field {
        "display_name" => task.display_name.as_deref(),
        "description" => task.description.as_deref(),
        "creator" => task.creator.as_deref(),
        "creator_notes" => task.creator_notes.as_deref(),
        "assigned_to" => task.assigned_to.as_deref(),
        "insights" => task.insights.as_deref(),
        other => unreachable!("{other} is not a string field"),
    }
}

/// The mask as the caller wrote it: `None` means "every populated field".
fn named(req: &UpdateSecurityConfigurationTaskRequest) -> Option<&[String]> {
    req.update_mask
        .as_ref()
        .map(|m| m.paths.as_slice())
        .filter(|p| !p.is_empty())
}

fn populated(task: &SecurityConfigurationTask, field: &str) -> bool {
    match field {
        "due_date_time" => task.due_date_time.is_some(),
        "managed_device_count" => task.managed_device_count.is_some(),
        "intended_settings" => !task.intended_settings.is_empty(),
        f if STRING_FIELDS.contains(&f) => string_value(task, f).is_some(),
        f => enum_value(task, f) != 0,
    }
}

/// The writable fields a request sends (or clears), in proto order.
pub fn selected(req: &UpdateSecurityConfigurationTaskRequest) -> Vec<&'static str> {
    let Some(task) = &req.security_configuration_task else {
        return Vec::new();
    };
    let mask = named(req);
    PROTO_FIELDS
        .iter()
        .copied()
        .filter(|f| !is_output_only(f))
        .filter(|f| match mask {
            None => populated(task, f),
            Some(paths) => paths.iter().any(|p| p == f || p == "*"),
        })
        .collect()
}

fn enum_in_range(value: i32, members: i32) -> bool {
    (1..=members).contains(&value)
}

/// The violation field paths an invalid request must be answered with,
/// sorted; empty for a valid request.
pub fn expected_violations(req: &UpdateSecurityConfigurationTaskRequest) -> Vec<String> {
    let Some(task) = &req.security_configuration_task else {
        return vec![TASK.to_owned()];
    };
    let path = |f: &str| format!("{TASK}.{f}");
    let mut out = Vec::new();
    if !id_is_valid(&task.id) {
        out.push(path("id"));
    }
    let paths = named(req).unwrap_or_default();
    for (i, p) in paths.iter().enumerate() {
        let known = p == "*" || PROTO_FIELDS.contains(&p.as_str());
        if !known {
            out.push(MASK.to_owned());
        }
        // "a path named twice is refused": once per path repeated.
        let first = paths.iter().position(|q| q == p) == Some(i);
        if known && first && paths[i + 1..].contains(p) {
            out.push(MASK.to_owned());
        }
    }
    let chosen = selected(req);
    for &field in &chosen {
        let bad = match field {
            "due_date_time" => !task.due_date_time.as_ref().is_some_and(timestamp_is_valid),
            "managed_device_count" => !task
                .managed_device_count
                .is_some_and(|n| (0..=MAX_MANAGED_DEVICE_COUNT).contains(&n)),
            "intended_settings" => {
                setting_violations(&path(field), &task.intended_settings, &mut out);
                task.intended_settings.len() > MAX_INTENDED_SETTINGS
            }
            f if STRING_FIELDS.contains(&f) => {
                string_value(task, f).is_some_and(|s| s.len() > MAX_STRING_BYTES)
            }
            f => {
                let members = ENUM_FIELDS.iter().find(|(n, _)| *n == f).map(|e| e.1);
                !members.is_some_and(|m| enum_in_range(enum_value(task, f), m))
            }
        };
        if bad {
            out.push(path(field));
        }
    }
    if chosen.is_empty() && out.is_empty() {
        out.push(if named(req).is_some() { MASK } else { TASK }.to_owned());
    }
    out.sort();
    out
}

fn setting_violations(path: &str, items: &[KeyValuePair], out: &mut Vec<String>) {
    for (i, kv) in items.iter().enumerate().take(MAX_INTENDED_SETTINGS) {
        if kv.name.is_empty() || kv.name.len() > MAX_STRING_BYTES {
            out.push(format!("{path}[{i}].name"));
        }
        if kv
            .value
            .as_ref()
            .is_some_and(|v| v.len() > MAX_STRING_BYTES)
        {
            out.push(format!("{path}[{i}].value"));
        }
    }
}

/// The proto enum member's name without its type prefix, in lower case and
/// without underscores: `..._APPLICABLE_PLATFORM_MAC_OS` -> `macos`.
fn enum_key(field: &str, value: i32) -> Option<String> {
    fn name<E: TryFrom<i32>>(value: i32, f: fn(&E) -> &'static str) -> Option<&'static str> {
        E::try_from(value).ok().map(|e| f(&e))
    }
    let names = match field {
        "category" => (
            name(0, pb::DeviceAppManagementTaskCategory::as_str_name),
            name(value, pb::DeviceAppManagementTaskCategory::as_str_name),
        ),
        "priority" => (
            name(0, pb::DeviceAppManagementTaskPriority::as_str_name),
            name(value, pb::DeviceAppManagementTaskPriority::as_str_name),
        ),
        "status" => (
            name(0, pb::DeviceAppManagementTaskStatus::as_str_name),
            name(value, pb::DeviceAppManagementTaskStatus::as_str_name),
        ),
        "applicable_platform" => (
            name(
                0,
                pb::EndpointSecurityConfigurationApplicablePlatform::as_str_name,
            ),
            name(
                value,
                pb::EndpointSecurityConfigurationApplicablePlatform::as_str_name,
            ),
        ),
        "endpoint_security_policy" => (
            name(0, pb::EndpointSecurityConfigurationType::as_str_name),
            name(value, pb::EndpointSecurityConfigurationType::as_str_name),
        ),
        "endpoint_security_policy_profile" => (
            name(0, pb::EndpointSecurityConfigurationProfileType::as_str_name),
            name(
                value,
                pb::EndpointSecurityConfigurationProfileType::as_str_name,
            ),
        ),
        _ => return None,
    };
    let prefix = names.0?.strip_suffix("UNSPECIFIED")?;
    let member = names.1?.strip_prefix(prefix)?;
    Some(member.replace('_', "").to_lowercase())
}

/// Whether `json` is what Graph must hold for `field` after the update.
pub fn holds(task: &SecurityConfigurationTask, field: &str, json: &Value) -> Result<(), String> {
    let ok = match field {
        f if STRING_FIELDS.contains(&f) => match string_value(task, f) {
            Some(s) => json.as_str() == Some(s),
            None => json.is_null(),
        },
        "due_date_time" => {
            let parsed = json
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            match (parsed, &task.due_date_time) {
                (Some(at), Some(ts)) => {
                    at.unix_timestamp() == ts.seconds
                        && i64::from(at.nanosecond()) == i64::from(ts.nanos)
                }
                _ => false,
            }
        }
        "managed_device_count" => {
            json.as_i64().is_some() && json.as_i64() == task.managed_device_count.map(i64::from)
        }
        "intended_settings" => json.as_array().is_some_and(|items| {
            items.len() == task.intended_settings.len()
                && items.iter().zip(&task.intended_settings).all(|(j, kv)| {
                    j["name"].as_str() == Some(kv.name.as_str())
                        && match &kv.value {
                            Some(v) => j["value"].as_str() == Some(v.as_str()),
                            None => j["value"].is_null(),
                        }
                        && j.get("@odata.type")
                            .and_then(Value::as_str)
                            .is_none_or(|t| {
                                t.trim_start_matches('#') == "microsoft.graph.keyValuePair"
                            })
                })
        }),
        f => match (json.as_str(), enum_key(f, enum_value(task, f))) {
            (Some(member), Some(key)) => member.to_lowercase() == key,
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{field} holds {json}, not what the request set"))
    }
}

//! `UpdateSecurityConfigurationTaskRequest` -> Graph PATCH (AIP-134/AIP-161).
//!
//! With an update mask exactly the named fields are sent: a named nullable
//! string that is unset is sent as `null` (Graph clears it), a named
//! non-nullable field that is unset is refused. Without a mask every populated
//! field is sent. Every problem is collected so that one answer names them all.

use super::enums::{self, EnumValueError, GraphEnum};
use super::error::{quoted, InvalidRequest};
use super::fields::{Field, FieldSet};
use super::ids::IdSegment;
use super::timestamp::GraphDateTime;
use super::ODATA_TYPE;
use crate::proto::v1::{
    KeyValuePair, SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use prost_types::FieldMask;
use serde::{Serialize, Serializer};

/// The longest string property accepted, in bytes.
pub const MAX_STRING_BYTES: usize = 16 * 1024;
/// The most `intended_settings` entries accepted.
pub const MAX_INTENDED_SETTINGS: usize = 1000;
/// The highest `managed_device_count` Graph documents.
pub const MAX_MANAGED_DEVICE_COUNT: i32 = 65_536;

const TASK: &str = "security_configuration_task";
const MASK: &str = "update_mask";

/// A validated PATCH, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRequest {
    /// The task id as one encoded path segment.
    pub id: IdSegment,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The fields the body sets or clears.
    pub fields: FieldSet,
}

/// Which fields the caller asked to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mask {
    /// No mask: every populated field.
    Populated,
    /// These fields exactly.
    Named(FieldSet),
}

impl Mask {
    fn parse(mask: Option<&FieldMask>, errors: &mut InvalidRequest) -> Self {
        let Some(mask) = mask.filter(|m| !m.paths.is_empty()) else {
            return Mask::Populated;
        };
        let mut set = FieldSet::default();
        // Every path named so far (output-only ones too) and those already
        // reported as repeated, so a path named thrice is reported once.
        let (mut named, mut repeated) = (FieldSet::default(), FieldSet::default());
        let (mut star, mut star_repeated) = (false, false);
        for path in &mask.paths {
            if path == "*" {
                if star && !std::mem::replace(&mut star_repeated, true) {
                    errors.push(MASK, duplicate_path(path));
                }
                star = true;
                set = FieldSet::writable();
                continue;
            }
            let Some(f) = Field::from_proto_name(path) else {
                errors.push(MASK, unknown_path(path));
                continue;
            };
            if named.contains(f) {
                if !repeated.contains(f) {
                    repeated.insert(f);
                    errors.push(MASK, duplicate_path(path));
                }
                continue;
            }
            named.insert(f);
            if !f.is_output_only() {
                set.insert(f); // AIP-161: output-only fields are ignored
            }
        }
        Mask::Named(set)
    }

    fn selects(self, field: Field, populated: bool) -> bool {
        match self {
            Mask::Populated => populated,
            Mask::Named(set) => set.contains(field),
        }
    }
}

/// A path the mask names more than once: refused rather than read as
/// once, since the caller may have meant another field.
fn duplicate_path(path: &str) -> String {
    format!("path {} is named more than once", quoted(path))
}

/// What is wrong with a mask path; the path is quoted short, since a
/// caller may send megabytes of it.
fn unknown_path(path: &str) -> String {
    let shown = quoted(path);
    let head = path.split(['.', '[']).next().unwrap_or(path);
    if head != path && Field::from_proto_name(head).is_some() {
        return format!("path {shown}: nested or indexed paths are not supported; name the whole field \"{head}\"");
    }
    match Field::from_graph_name(path) {
        Some(f) => format!(
            "unknown path {shown}; update_mask paths use proto names: \"{}\"",
            f.proto_name()
        ),
        None => format!("unknown path {shown}"),
    }
}

/// A JSON property: left out, `null`, or a value.
#[derive(Debug, Clone, Copy)]
enum Slot<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Slot<T> {
    fn is_absent(&self) -> bool {
        matches!(self, Slot::Absent)
    }
}

impl<T: Serialize> Serialize for Slot<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Slot::Set(v) => v.serialize(s),
            Slot::Absent | Slot::Null => s.serialize_none(),
        }
    }
}

/// A Graph `keyValuePair` as sent.
#[derive(Serialize)]
struct GraphKeyValue<'a> {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    name: &'a str,
    value: Option<&'a str>,
}

struct Settings<'a>(&'a [KeyValuePair]);

impl Serialize for Settings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|kv| GraphKeyValue {
            odata_type: "microsoft.graph.keyValuePair",
            name: &kv.name,
            value: kv.value.as_deref(),
        }))
    }
}

/// The PATCH body, properties in Graph's documented order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PatchBody<'a> {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    display_name: Slot<&'a str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    description: Slot<&'a str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    due_date_time: Slot<GraphDateTime>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    category: Slot<&'static str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    priority: Slot<&'static str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    creator: Slot<&'a str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    creator_notes: Slot<&'a str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    assigned_to: Slot<&'a str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    status: Slot<&'static str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    endpoint_security_policy: Slot<&'static str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    applicable_platform: Slot<&'static str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    endpoint_security_policy_profile: Slot<&'static str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    insights: Slot<&'a str>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    managed_device_count: Slot<i32>,
    #[serde(skip_serializing_if = "Slot::is_absent")]
    intended_settings: Slot<Settings<'a>>,
}

/// Builds the slots of one request, remembering what is sent and what is wrong.
struct Builder {
    mask: Mask,
    sent: FieldSet,
    errors: InvalidRequest,
}

impl Builder {
    fn path(field: Field) -> String {
        format!("{TASK}.{}", field.proto_name())
    }

    fn select(&mut self, field: Field, populated: bool) -> bool {
        let selected = self.mask.selects(field, populated);
        if selected {
            self.sent.insert(field);
        }
        selected
    }

    fn not_nullable(&mut self, field: Field) {
        self.errors.push(
            Self::path(field),
            format!(
                "named in update_mask but unset; Graph's {} cannot be cleared",
                field.graph_name()
            ),
        );
    }

    fn string<'a>(&mut self, field: Field, value: Option<&'a str>) -> Slot<&'a str> {
        if !self.select(field, value.is_some()) {
            return Slot::Absent;
        }
        match value {
            None => Slot::Null,
            Some(s) => {
                if s.len() > MAX_STRING_BYTES {
                    self.errors.push(
                        Self::path(field),
                        format!("longer than {MAX_STRING_BYTES} bytes"),
                    );
                }
                Slot::Set(s)
            }
        }
    }

    fn enumeration(&mut self, field: Field, table: &GraphEnum, value: i32) -> Slot<&'static str> {
        if !self.select(field, value != 0) {
            return Slot::Absent;
        }
        match table.to_graph(value) {
            Ok(member) => Slot::Set(member),
            Err(EnumValueError::Unspecified) => {
                self.not_nullable(field);
                Slot::Absent
            }
            Err(EnumValueError::OutOfRange) => {
                self.errors.push(
                    Self::path(field),
                    format!("{value} is not a member of {}", table.graph_type),
                );
                Slot::Absent
            }
        }
    }

    fn date(
        &mut self,
        field: Field,
        value: Option<&prost_types::Timestamp>,
    ) -> Slot<GraphDateTime> {
        if !self.select(field, value.is_some()) {
            return Slot::Absent;
        }
        let Some(ts) = value else {
            self.not_nullable(field);
            return Slot::Absent;
        };
        match GraphDateTime::from_proto(ts) {
            Ok(d) => Slot::Set(d),
            Err(e) => {
                self.errors.push(Self::path(field), e.to_string());
                Slot::Absent
            }
        }
    }

    fn count(&mut self, field: Field, value: Option<i32>) -> Slot<i32> {
        if !self.select(field, value.is_some()) {
            return Slot::Absent;
        }
        match value {
            None => {
                self.not_nullable(field);
                Slot::Absent
            }
            Some(n) if !(0..=MAX_MANAGED_DEVICE_COUNT).contains(&n) => {
                self.errors.push(
                    Self::path(field),
                    format!("{n} is outside 0..={MAX_MANAGED_DEVICE_COUNT}"),
                );
                Slot::Absent
            }
            Some(n) => Slot::Set(n),
        }
    }

    fn settings<'a>(&mut self, field: Field, items: &'a [KeyValuePair]) -> Slot<Settings<'a>> {
        if !self.select(field, !items.is_empty()) {
            return Slot::Absent;
        }
        if items.len() > MAX_INTENDED_SETTINGS {
            self.errors.push(
                Self::path(field),
                format!("{} entries; at most {MAX_INTENDED_SETTINGS}", items.len()),
            );
        }
        for (i, kv) in items.iter().enumerate().take(MAX_INTENDED_SETTINGS) {
            let at = |part: &str| format!("{}[{i}].{part}", Self::path(field));
            if kv.name.is_empty() {
                self.errors.push(at("name"), "required");
            }
            if kv.name.len() > MAX_STRING_BYTES {
                self.errors
                    .push(at("name"), format!("longer than {MAX_STRING_BYTES} bytes"));
            }
            if kv
                .value
                .as_ref()
                .is_some_and(|v| v.len() > MAX_STRING_BYTES)
            {
                self.errors
                    .push(at("value"), format!("longer than {MAX_STRING_BYTES} bytes"));
            }
        }
        Slot::Set(Settings(items))
    }
}

/// Validates an update and builds its PATCH. Nothing is sent when this fails.
pub fn patch_request(
    req: &UpdateSecurityConfigurationTaskRequest,
) -> Result<PatchRequest, InvalidRequest> {
    let Some(task) = req.security_configuration_task.as_ref() else {
        return Err(InvalidRequest::single(TASK, "required"));
    };
    let mut errors = InvalidRequest::default();
    let id = IdSegment::new(&task.id)
        .map_err(|why| errors.push(format!("{TASK}.id"), why))
        .ok();
    let mask = Mask::parse(req.update_mask.as_ref(), &mut errors);
    let mut b = Builder {
        mask,
        sent: FieldSet::default(),
        errors,
    };
    let body = body(&mut b, task);
    if b.sent.is_empty() && b.errors.violations.is_empty() {
        let why = match mask {
            Mask::Populated => {
                "nothing to update: set the fields to change, or name them in update_mask"
            }
            Mask::Named(_) => "nothing to update: update_mask names only output-only fields",
        };
        b.errors
            .push(if mask == Mask::Populated { TASK } else { MASK }, why);
    }
    let Builder { sent, errors, .. } = b;
    let id = errors
        .or_ok(id)?
        .ok_or_else(|| InvalidRequest::single(format!("{TASK}.id"), "required"))?;
    let mut out = Vec::with_capacity(body_capacity(task));
    serde_json::to_writer(&mut out, &body)
        .map_err(|e| InvalidRequest::single(TASK, format!("cannot be written as JSON: {e}")))?;
    let body = out;
    Ok(PatchRequest {
        id,
        body,
        fields: sent,
    })
}

/// Room for every property's name, punctuation and enum member.
const BODY_FIXED_BYTES: usize = 512;
/// Room for one intended setting's `@odata.type`, names and punctuation.
const SETTING_FIXED_BYTES: usize = 72;

/// Enough room for a body without escapes, so that writing it does not
/// regrow (and copy) the buffer several times over.
fn body_capacity(t: &SecurityConfigurationTask) -> usize {
    let strings: usize = [
        &t.display_name,
        &t.description,
        &t.creator,
        &t.creator_notes,
        &t.assigned_to,
        &t.insights,
    ]
    .into_iter()
    .flatten()
    .map(String::len)
    .sum();
    let settings: usize = t
        .intended_settings
        .iter()
        .take(MAX_INTENDED_SETTINGS)
        .map(|kv| SETTING_FIXED_BYTES + kv.name.len() + kv.value.as_ref().map_or(0, String::len))
        .sum();
    BODY_FIXED_BYTES + strings + settings
}

fn body<'a>(b: &mut Builder, t: &'a SecurityConfigurationTask) -> PatchBody<'a> {
    PatchBody {
        odata_type: ODATA_TYPE,
        display_name: b.string(Field::DisplayName, t.display_name.as_deref()),
        description: b.string(Field::Description, t.description.as_deref()),
        due_date_time: b.date(Field::DueDateTime, t.due_date_time.as_ref()),
        category: b.enumeration(Field::Category, &enums::CATEGORY, t.category),
        priority: b.enumeration(Field::Priority, &enums::PRIORITY, t.priority),
        creator: b.string(Field::Creator, t.creator.as_deref()),
        creator_notes: b.string(Field::CreatorNotes, t.creator_notes.as_deref()),
        assigned_to: b.string(Field::AssignedTo, t.assigned_to.as_deref()),
        status: b.enumeration(Field::Status, &enums::STATUS, t.status),
        endpoint_security_policy: b.enumeration(
            Field::EndpointSecurityPolicy,
            &enums::ENDPOINT_SECURITY_POLICY,
            t.endpoint_security_policy,
        ),
        applicable_platform: b.enumeration(
            Field::ApplicablePlatform,
            &enums::APPLICABLE_PLATFORM,
            t.applicable_platform,
        ),
        endpoint_security_policy_profile: b.enumeration(
            Field::EndpointSecurityPolicyProfile,
            &enums::ENDPOINT_SECURITY_POLICY_PROFILE,
            t.endpoint_security_policy_profile,
        ),
        insights: b.string(Field::Insights, t.insights.as_deref()),
        managed_device_count: b.count(Field::ManagedDeviceCount, t.managed_device_count),
        intended_settings: b.settings(Field::IntendedSettings, &t.intended_settings),
    }
}

/// Every populated writable field of `task` as a JSON body, under the same
/// per-field rules as a PATCH without a mask (Create sends this); output-only
/// fields are never written. Returns the body and the fields it sets.
pub(super) fn populated_body(
    task: &SecurityConfigurationTask,
) -> Result<(Vec<u8>, FieldSet), InvalidRequest> {
    let mut b = Builder {
        mask: Mask::Populated,
        sent: FieldSet::default(),
        errors: InvalidRequest::default(),
    };
    let body = body(&mut b, task);
    let Builder { sent, errors, .. } = b;
    errors.or_ok(())?;
    let mut out = Vec::with_capacity(body_capacity(task));
    serde_json::to_writer(&mut out, &body)
        .map_err(|e| InvalidRequest::single(TASK, format!("cannot be written as JSON: {e}")))?;
    Ok((out, sent))
}

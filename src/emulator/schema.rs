//! The task types the emulator knows, their properties, and request-body
//! validation that answers the way Graph's OData layer does.
//!
//! The property tables are the single source of truth: validation, defaults
//! for new tasks and `$filter` type checks all read them.

use serde_json::{Map, Value};

use super::datetime;

/// An enum type and its wire strings, in Graph's declared order.
///
/// Written out here rather than shared with `translate::enums` on purpose:
/// the emulator stands in for Graph, so it keeps its own copy of Graph's
/// contract and a mistake in the gateway's tables cannot hide in both.
#[derive(Debug)]
pub struct EnumType {
    pub name: &'static str,
    pub members: &'static [&'static str],
}

pub const CATEGORY: EnumType = EnumType {
    name: "microsoft.graph.deviceAppManagementTaskCategory",
    members: &["unknown", "advancedThreatProtection"],
};
pub const PRIORITY: EnumType = EnumType {
    name: "microsoft.graph.deviceAppManagementTaskPriority",
    members: &["none", "high", "low"],
};
pub const STATUS: EnumType = EnumType {
    name: "microsoft.graph.deviceAppManagementTaskStatus",
    members: &["unknown", "pending", "active", "completed", "rejected"],
};
pub const PLATFORM: EnumType = EnumType {
    name: "microsoft.graph.endpointSecurityConfigurationApplicablePlatform",
    members: &[
        "unknown",
        "macOS",
        "windows10AndLater",
        "windows10AndWindowsServer",
    ],
};
pub const POLICY: EnumType = EnumType {
    name: "microsoft.graph.endpointSecurityConfigurationType",
    members: &[
        "unknown",
        "antivirus",
        "diskEncryption",
        "firewall",
        "endpointDetectionAndResponse",
        "attackSurfaceReduction",
        "accountProtection",
    ],
};
pub const PROFILE: EnumType = EnumType {
    name: "microsoft.graph.endpointSecurityConfigurationProfileType",
    members: &[
        "unknown",
        "antivirus",
        "windowsSecurity",
        "bitLocker",
        "fileVault",
        "firewall",
        "firewallRules",
        "endpointDetectionAndResponse",
        "deviceControl",
        "appAndBrowserIsolation",
        "exploitProtection",
        "webProtection",
        "applicationControl",
        "attackSurfaceReductionRules",
        "accountProtection",
    ],
};

/// What a property holds on the wire.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    String,
    DateTimeOffset,
    Int32,
    Enum(&'static EnumType),
    /// `Collection(microsoft.graph.keyValuePair)`.
    KeyValuePairs,
    /// A collection of complex values the emulator does not inspect.
    Objects,
}

impl Kind {
    /// The EDM type name used in Graph-style messages.
    pub fn edm_name(self) -> &'static str {
        match self {
            Kind::String => "Edm.String",
            Kind::DateTimeOffset => "Edm.DateTimeOffset",
            Kind::Int32 => "Edm.Int32",
            Kind::Enum(e) => e.name,
            Kind::KeyValuePairs => "Collection(microsoft.graph.keyValuePair)",
            Kind::Objects => "Collection(microsoft.graph.unmanagedDevice)",
        }
    }
}

pub struct Property {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    pub read_only: bool,
}

const fn prop(name: &'static str, kind: Kind, nullable: bool) -> Property {
    Property {
        name,
        kind,
        nullable,
        read_only: false,
    }
}

/// entity + deviceAppManagementTask properties, shared by every task type.
const BASE: &[Property] = &[
    Property {
        name: "id",
        kind: Kind::String,
        nullable: false,
        read_only: true,
    },
    prop("displayName", Kind::String, true),
    prop("description", Kind::String, true),
    Property {
        name: "createdDateTime",
        kind: Kind::DateTimeOffset,
        nullable: false,
        read_only: true,
    },
    prop("dueDateTime", Kind::DateTimeOffset, false),
    prop("category", Kind::Enum(&CATEGORY), false),
    prop("priority", Kind::Enum(&PRIORITY), false),
    prop("creator", Kind::String, true),
    prop("creatorNotes", Kind::String, true),
    prop("assignedTo", Kind::String, true),
    prop("status", Kind::Enum(&STATUS), false),
];

const SECURITY_CONFIGURATION: &[Property] = &[
    prop("applicablePlatform", Kind::Enum(&PLATFORM), false),
    prop("endpointSecurityPolicy", Kind::Enum(&POLICY), false),
    prop("endpointSecurityPolicyProfile", Kind::Enum(&PROFILE), false),
    prop("insights", Kind::String, true),
    prop("managedDeviceCount", Kind::Int32, false),
    // OData collections are never null: a client sends [] to clear one.
    prop("intendedSettings", Kind::KeyValuePairs, false),
];

const APP_VULNERABILITY: &[Property] = &[
    prop("appName", Kind::String, true),
    prop("appPublisher", Kind::String, true),
    prop("appVersion", Kind::String, true),
    prop("insights", Kind::String, true),
    prop("managedDeviceCount", Kind::Int32, false),
    prop("mobileAppCount", Kind::Int32, false),
    prop("mitigationType", Kind::String, true),
    prop("remediation", Kind::String, true),
];

const UNMANAGED_DEVICE_DISCOVERY: &[Property] = &[prop("unmanagedDevices", Kind::Objects, false)];

/// The concrete task types in the collection, told apart by `@odata.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskType {
    SecurityConfiguration,
    AppVulnerability,
    UnmanagedDeviceDiscovery,
}

/// Qualified name of the abstract base type (matches every task in `isof`).
pub const BASE_TYPE_NAME: &str = "microsoft.graph.deviceAppManagementTask";

impl TaskType {
    pub const ALL: [TaskType; 3] = [
        TaskType::SecurityConfiguration,
        TaskType::AppVulnerability,
        TaskType::UnmanagedDeviceDiscovery,
    ];

    /// Qualified name without the leading `#`.
    pub fn qualified_name(self) -> &'static str {
        match self {
            TaskType::SecurityConfiguration => "microsoft.graph.securityConfigurationTask",
            TaskType::AppVulnerability => "microsoft.graph.appVulnerabilityTask",
            TaskType::UnmanagedDeviceDiscovery => "microsoft.graph.unmanagedDeviceDiscoveryTask",
        }
    }

    /// The `@odata.type` value Graph writes.
    pub fn odata_type(self) -> &'static str {
        match self {
            TaskType::SecurityConfiguration => "#microsoft.graph.securityConfigurationTask",
            TaskType::AppVulnerability => "#microsoft.graph.appVulnerabilityTask",
            TaskType::UnmanagedDeviceDiscovery => "#microsoft.graph.unmanagedDeviceDiscoveryTask",
        }
    }

    /// Reads an `@odata.type` value; OData accepts it with or without `#`.
    pub fn from_odata_type(text: &str) -> Option<TaskType> {
        let name = text.strip_prefix('#').unwrap_or(text);
        TaskType::ALL
            .into_iter()
            .find(|t| t.qualified_name() == name)
    }

    /// The type of a stored task, if its `@odata.type` names a known one.
    pub fn of(task: &Value) -> Option<TaskType> {
        task.get("@odata.type")
            .and_then(Value::as_str)
            .and_then(TaskType::from_odata_type)
    }

    fn own_properties(self) -> &'static [Property] {
        match self {
            TaskType::SecurityConfiguration => SECURITY_CONFIGURATION,
            TaskType::AppVulnerability => APP_VULNERABILITY,
            TaskType::UnmanagedDeviceDiscovery => UNMANAGED_DEVICE_DISCOVERY,
        }
    }

    /// Every property of the type, base ones first (Graph's order).
    pub fn properties(self) -> impl Iterator<Item = &'static Property> {
        BASE.iter().chain(self.own_properties())
    }

    pub fn property(self, name: &str) -> Option<&'static Property> {
        self.properties().find(|p| p.name == name)
    }
}

/// Finds a property on any task type; `$filter` runs over the whole
/// collection, so a derived property is fair game (tasks lacking it never match).
pub fn any_property(name: &str) -> Option<&'static Property> {
    TaskType::ALL.into_iter().find_map(|t| t.property(name))
}

/// Checks a PATCH body against the stored task's type and returns the
/// properties to merge (annotations dropped). `Err` carries Graph's message.
pub fn validate_update(task_type: TaskType, body: &Value) -> Result<Map<String, Value>, String> {
    let object = body.as_object().ok_or_else(not_an_object)?;
    if let Some(given) = object.get("@odata.type") {
        let same = given
            .as_str()
            .and_then(TaskType::from_odata_type)
            .is_some_and(|t| t == task_type);
        if !same {
            return Err(format!(
                "The property '@odata.type' has value {given}, which does not match the type \
                 '{}' of the task being updated. A task's type cannot be changed.",
                task_type.qualified_name()
            ));
        }
    }
    validate_properties(task_type, object)
}

/// Checks a POST body and builds the new task: every property of its type,
/// Graph's defaults where the body is silent, plus `id` and `createdDateTime`.
pub fn build_created(body: &Value, id: &str, created: &str) -> Result<Value, String> {
    let object = body.as_object().ok_or_else(not_an_object)?;
    let task_type = match object.get("@odata.type") {
        None => {
            return Err(format!(
                "The property '@odata.type' is required: {BASE_TYPE_NAME} is abstract; name one \
                 of {}.",
                type_list()
            ))
        }
        Some(given) => given
            .as_str()
            .and_then(TaskType::from_odata_type)
            .ok_or_else(|| {
                format!(
                    "The property '@odata.type' has value {given}, which is not a task type. \
                     Expected one of {}.",
                    type_list()
                )
            })?,
    };
    let supplied = validate_properties(task_type, object)?;
    let mut task = Map::new();
    task.insert("@odata.type".into(), task_type.odata_type().into());
    for property in task_type.properties() {
        let value = match property.name {
            "id" => id.into(),
            "createdDateTime" => created.into(),
            name => supplied
                .get(name)
                .cloned()
                .unwrap_or_else(|| default_value(property)),
        };
        task.insert(property.name.into(), value);
    }
    Ok(Value::Object(task))
}

/// What an `updateStatus` action asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The new status, a member of `deviceAppManagementTaskStatus`.
    pub status: String,
    /// The note; `""` when it is missing or null.
    pub note: String,
}

/// Checks `{"status": ..., "note": ...}` for the updateStatus action.
pub fn validate_update_status(body: &Value) -> Result<StatusUpdate, String> {
    let object = body.as_object().ok_or_else(not_an_object)?;
    for (name, value) in object {
        match name.as_str() {
            "status" => {}
            "note" => {
                if !(value.is_string() || value.is_null()) {
                    return Err(wrong_type("note", Kind::String, value));
                }
            }
            annotation if is_annotation(annotation) => {}
            other => {
                return Err(format!(
                    "The parameter '{other}' in the request payload is not a valid parameter \
                     for the operation 'updateStatus'."
                ))
            }
        }
    }
    let status = object
        .get("status")
        .ok_or_else(|| "The parameter 'status' is missing from the request payload.".to_owned())?;
    check_value(&BASE_STATUS, status)?;
    Ok(StatusUpdate {
        status: status.as_str().unwrap_or_default().to_owned(),
        note: object
            .get("note")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

const BASE_STATUS: Property = prop("status", Kind::Enum(&STATUS), false);

fn validate_properties(
    task_type: TaskType,
    object: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let mut accepted = Map::new();
    for (name, value) in object {
        if is_annotation(name) {
            continue;
        }
        let property = task_type.property(name).ok_or_else(|| {
            format!(
                "The property '{name}' does not exist on type '{}'. Make sure to only use \
                 property names that are defined by the type.",
                task_type.qualified_name()
            )
        })?;
        if property.read_only {
            return Err(format!(
                "The property '{name}' is read-only and cannot be set in a request."
            ));
        }
        check_value(property, value)?;
        accepted.insert(name.clone(), value.clone());
    }
    Ok(accepted)
}

/// Instance annotations (`@odata.type`, `@odata.context`, `x@odata.type`...)
/// are not properties; OData readers skip them.
fn is_annotation(name: &str) -> bool {
    name.contains('@')
}

fn check_value(property: &Property, value: &Value) -> Result<(), String> {
    let name = property.name;
    if value.is_null() {
        return if property.nullable {
            Ok(())
        } else {
            let edm = property.kind.edm_name();
            Err(format!(
                "A null value was found for the property named '{name}', which has the expected \
                 type '{edm}[Nullable=False]'. The expected type '{edm}[Nullable=False]' does \
                 not allow null values."
            ))
        };
    }
    match property.kind {
        Kind::String => expect_string(name, property.kind, value).map(drop),
        Kind::DateTimeOffset => {
            let text = expect_string(name, property.kind, value)?;
            match datetime::parse(text) {
                Some(_) => Ok(()),
                None => Err(format!(
                    "The value '{text}' of property '{name}' is not a valid Edm.DateTimeOffset: \
                     expected RFC 3339 with an offset and at most 7 fractional digits."
                )),
            }
        }
        Kind::Int32 => {
            let fits = value.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
            if fits {
                Ok(())
            } else if value.is_number() {
                Err(format!(
                    "Cannot convert the literal '{value}' of property '{name}' to the expected \
                     type 'Edm.Int32'."
                ))
            } else {
                Err(wrong_type(name, property.kind, value))
            }
        }
        Kind::Enum(enum_type) => {
            let text = expect_string(name, property.kind, value)?;
            if enum_type.members.contains(&text) {
                Ok(())
            } else {
                Err(format!(
                    "The value '{text}' of property '{name}' is not a member of enum type '{}'. \
                     Valid values: {}.",
                    enum_type.name,
                    enum_type.members.join(", ")
                ))
            }
        }
        Kind::KeyValuePairs => check_key_value_pairs(name, value),
        Kind::Objects => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong_type(name, property.kind, value))?;
            match items.iter().position(|item| !item.is_object()) {
                None => Ok(()),
                Some(index) => Err(format!(
                    "The item at index {index} of property '{name}' must be a JSON object."
                )),
            }
        }
    }
}

fn check_key_value_pairs(name: &str, value: &Value) -> Result<(), String> {
    let items = value
        .as_array()
        .ok_or_else(|| wrong_type(name, Kind::KeyValuePairs, value))?;
    for (index, item) in items.iter().enumerate() {
        let fields = item.as_object().ok_or_else(|| {
            format!(
                "The item at index {index} of property '{name}' must be a \
                 microsoft.graph.keyValuePair object."
            )
        })?;
        for (field, field_value) in fields {
            let ok = match field.as_str() {
                "@odata.type" => field_value
                    .as_str()
                    .is_some_and(|t| t.trim_start_matches('#') == "microsoft.graph.keyValuePair"),
                "name" => field_value.is_string(),
                "value" => field_value.is_string() || field_value.is_null(),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "Invalid '{field}' ({field_value}) in the item at index {index} of property \
                     '{name}': a microsoft.graph.keyValuePair has a string 'name' and a string or \
                     null 'value'."
                ));
            }
        }
        if !fields.contains_key("name") {
            return Err(format!(
                "The item at index {index} of property '{name}' has no 'name'."
            ));
        }
    }
    Ok(())
}

fn expect_string<'v>(name: &str, kind: Kind, value: &'v Value) -> Result<&'v str, String> {
    value.as_str().ok_or_else(|| wrong_type(name, kind, value))
}

fn wrong_type(name: &str, kind: Kind, value: &Value) -> String {
    format!(
        "The property '{name}' expects a value of type '{}' but the request gave a JSON {}.",
        kind.edm_name(),
        json_kind(value)
    )
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn not_an_object() -> String {
    "The request body must be a JSON object.".to_owned()
}

fn type_list() -> String {
    TaskType::ALL
        .iter()
        .map(|t| t.odata_type())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What Graph stores for a property the creating client left out.
fn default_value(property: &Property) -> Value {
    match property.kind {
        _ if property.nullable => Value::Null,
        Kind::String => Value::String(String::new()),
        Kind::DateTimeOffset => "0001-01-01T00:00:00Z".into(),
        Kind::Int32 => 0.into(),
        Kind::Enum(enum_type) => enum_type
            .members
            .first()
            .copied()
            .unwrap_or_default()
            .into(),
        Kind::KeyValuePairs | Kind::Objects => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCT: TaskType = TaskType::SecurityConfiguration;

    #[test]
    fn odata_type_with_or_without_hash() {
        assert_eq!(
            TaskType::from_odata_type("microsoft.graph.appVulnerabilityTask"),
            Some(TaskType::AppVulnerability)
        );
        assert_eq!(
            TaskType::from_odata_type("#microsoft.graph.securityConfigurationTask"),
            Some(SCT)
        );
        assert_eq!(TaskType::from_odata_type("#microsoft.graph.user"), None);
    }

    #[test]
    fn update_accepts_full_example_without_read_only() {
        let body = json!({"@odata.type":"#microsoft.graph.securityConfigurationTask",
            "displayName":"x","dueDateTime":"2017-01-01T00:02:18.1994089-08:00",
            "managedDeviceCount":2,"intendedSettings":[{"@odata.type":"microsoft.graph.keyValuePair","name":"n","value":null}]});
        let merged = validate_update(SCT, &body).expect("valid");
        assert!(!merged.contains_key("@odata.type"));
        assert_eq!(merged.len(), 4);
    }

    #[test]
    fn update_messages_name_the_property() {
        let cases = [
            (json!({"bogus": 1}), "bogus"),
            (json!({"displayName": 5}), "displayName"),
            (json!({"status": "done"}), "status"),
            (json!({"priority": null}), "priority"),
            (json!({"id": "x"}), "id"),
            (
                json!({"createdDateTime": "2017-01-01T00:00:00Z"}),
                "createdDateTime",
            ),
            (
                json!({"@odata.type": "#microsoft.graph.appVulnerabilityTask"}),
                "@odata.type",
            ),
            (json!({"dueDateTime": "tomorrow"}), "dueDateTime"),
            (
                json!({"managedDeviceCount": 2147483648_i64}),
                "managedDeviceCount",
            ),
            (json!({"managedDeviceCount": 1.5}), "managedDeviceCount"),
            (
                json!({"intendedSettings": [{"name": 1}]}),
                "intendedSettings",
            ),
            (
                json!({"intendedSettings": [{"value": "v"}]}),
                "intendedSettings",
            ),
            (json!({"intendedSettings": {}}), "intendedSettings"),
            (json!({"intendedSettings": null}), "intendedSettings"),
        ];
        for (body, property) in cases {
            let message = validate_update(SCT, &body).expect_err(&body.to_string());
            assert!(message.contains(property), "{message}");
        }
        assert!(validate_update(SCT, &json!([1])).is_err());
    }

    #[test]
    fn created_task_has_every_property() {
        let body = json!({"@odata.type":"microsoft.graph.unmanagedDeviceDiscoveryTask",
            "unmanagedDevices":[{"deviceName":"pc"}]});
        let task = build_created(&body, "id-1", "2020-01-01T00:00:00.0000000Z").expect("valid");
        assert_eq!(
            task["@odata.type"],
            "#microsoft.graph.unmanagedDeviceDiscoveryTask"
        );
        assert_eq!(task["id"], "id-1");
        assert_eq!(task["priority"], "none");
        assert_eq!(task["displayName"], Value::Null);
        assert_eq!(task["unmanagedDevices"][0]["deviceName"], "pc");
        assert!(build_created(&json!({"displayName":"x"}), "i", "c").is_err());
    }

    #[test]
    fn update_status_body() {
        let update = |status: &str, note: &str| {
            Ok(StatusUpdate {
                status: status.to_owned(),
                note: note.to_owned(),
            })
        };
        assert_eq!(
            validate_update_status(&json!({"status":"active","note":"n"})),
            update("active", "n")
        );
        for member in ["unknown", "pending", "active", "completed", "rejected"] {
            assert_eq!(
                validate_update_status(&json!({"status": member, "note": ""})),
                update(member, "")
            );
        }
        // The note may be left out or null.
        assert_eq!(
            validate_update_status(&json!({"status":"completed"})),
            update("completed", "")
        );
        assert_eq!(
            validate_update_status(&json!({"status":"rejected","note":null})),
            update("rejected", "")
        );
        assert_eq!(
            validate_update_status(
                &json!({"@odata.type":"#microsoft.graph.x","status":"pending","note":"x"})
            ),
            update("pending", "x")
        );
        for bad in [
            json!({"status":"nope"}),
            json!({"status":"Active"}),
            json!({"status":3}),
            json!({"status":null}),
            json!({"note":"n"}),
            json!({"status":"active","extra":1}),
            json!({"status":"active","note":5}),
            json!({"status":"active","note":["a"]}),
            json!(["active"]),
        ] {
            assert!(validate_update_status(&bad).is_err(), "{bad}");
        }
        let message = validate_update_status(&json!({"status":"finished"})).expect_err("member");
        assert!(message.contains("finished"), "{message}");
    }
}

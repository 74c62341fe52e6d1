//! `CreateSecurityConfigurationTaskRequest` -> Graph POST on the collection
//! (AIP-133).
//!
//! The body names the type (`@odata.type`, which Graph requires: the
//! collection holds every task type) and every populated writable field, under
//! the same per-field rules as an update (see [`super::update`]): the same
//! JSON names, enum members, timestamp and range checks. `id` and
//! `created_date_time` are Graph's to set: ignored, never sent. An enum left
//! UNSPECIFIED and an unset optional are not sent, so Graph applies its
//! defaults. Every problem is collected so that one answer names them all.

use super::error::{InvalidRequest, ResponseError, Unexpected};
use super::fields::FieldSet;
use super::read::{task_from_graph, DecodedTask};
use super::update::populated_body;
use crate::proto::v1::{CreateSecurityConfigurationTaskRequest, SecurityConfigurationTask};
use serde::Deserialize;
use std::borrow::Cow;

const TASK: &str = "security_configuration_task";

/// A validated POST, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The JSON body.
    pub body: Vec<u8>,
    /// The fields the body sets.
    pub fields: FieldSet,
}

/// Validates a create and builds its POST. Nothing is sent when this fails.
pub fn create_request(
    req: &CreateSecurityConfigurationTaskRequest,
) -> Result<CreateRequest, InvalidRequest> {
    let Some(task) = req.security_configuration_task.as_ref() else {
        return Err(InvalidRequest::single(TASK, "required"));
    };
    let (body, fields) = populated_body(task)?;
    Ok(CreateRequest { body, fields })
}

/// The task as a create would send it: what a dry run (`validate_only`)
/// answers. The output-only fields are cleared, since Graph sets them.
pub fn as_sent(task: &SecurityConfigurationTask) -> SecurityConfigurationTask {
    SecurityConfigurationTask {
        id: String::new(),
        created_date_time: None,
        ..task.clone()
    }
}

/// Reads Graph's answer to a create: the new task, which must say what it
/// is (`@odata.type`, a securityConfigurationTask) and carry the id Graph
/// gave it, or a `{}` or another body would pass for it.
pub fn created_task(body: &[u8]) -> Result<DecodedTask, ResponseError> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "@odata.type", borrow, default)]
        odata_type: Option<Cow<'a, str>>,
    }
    // Checks the object, its type when named, and every field.
    let decoded = task_from_graph(body)?;
    let head: Head<'_> =
        serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    if head.odata_type.is_none() {
        return Err(ResponseError::NotTheTask(Unexpected::NoODataType));
    }
    if decoded.task.id.is_empty() {
        return Err(ResponseError::NotTheTask(Unexpected::NoId));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{
        DeviceAppManagementTaskCategory as Category, DeviceAppManagementTaskPriority as Priority,
        DeviceAppManagementTaskStatus as Status,
        EndpointSecurityConfigurationApplicablePlatform as Platform,
        EndpointSecurityConfigurationProfileType as Profile,
        EndpointSecurityConfigurationType as Policy, KeyValuePair,
    };
    use crate::translate::fields::Field;
    use crate::translate::update::{MAX_INTENDED_SETTINGS, MAX_STRING_BYTES};
    use crate::translate::ODATA_TYPE;
    use prost_types::Timestamp;
    use serde_json::{json, Value};

    fn full_task() -> SecurityConfigurationTask {
        SecurityConfigurationTask {
            id: "5d630f12-0f12-5d63-120f-635d120f635d".into(),
            display_name: Some("Display Name value".into()),
            description: Some("Description value".into()),
            created_date_time: Some(Timestamp {
                seconds: 1_483_257_763,
                nanos: 577_596_500,
            }),
            due_date_time: Some(Timestamp {
                seconds: 1_483_257_738,
                nanos: 199_408_900,
            }),
            category: Category::AdvancedThreatProtection as i32,
            priority: Priority::High as i32,
            creator: Some("Creator value".into()),
            creator_notes: Some("Creator Notes value".into()),
            assigned_to: Some("Assigned To value".into()),
            status: Status::Pending as i32,
            applicable_platform: Platform::MacOs as i32,
            endpoint_security_policy: Policy::Antivirus as i32,
            endpoint_security_policy_profile: Profile::Antivirus as i32,
            insights: Some("Insights value".into()),
            managed_device_count: Some(2),
            intended_settings: vec![KeyValuePair {
                name: "Name value".into(),
                value: Some("Value value".into()),
            }],
        }
    }

    fn create(task: SecurityConfigurationTask) -> CreateSecurityConfigurationTaskRequest {
        CreateSecurityConfigurationTaskRequest {
            security_configuration_task: Some(task),
            ..Default::default()
        }
    }

    fn body_of(req: &CreateSecurityConfigurationTaskRequest) -> Value {
        let sent = create_request(req).expect("valid request");
        serde_json::from_slice(&sent.body).expect("json body")
    }

    fn violations(req: &CreateSecurityConfigurationTaskRequest) -> Vec<(String, String)> {
        create_request(req)
            .expect_err("invalid request")
            .violations
            .into_iter()
            .map(|v| (v.field, v.description))
            .collect()
    }

    fn field_names(fields: FieldSet) -> Vec<&'static str> {
        fields.iter().map(Field::proto_name).collect()
    }

    #[test]
    fn every_writable_field_is_sent_with_graph_names_and_members() {
        let body = body_of(&create(full_task()));
        assert_eq!(
            body,
            json!({"@odata.type":"#microsoft.graph.securityConfigurationTask","displayName":"Display Name value",
             "description":"Description value","dueDateTime":"2017-01-01T08:02:18.1994089Z",
             "category":"advancedThreatProtection","priority":"high","creator":"Creator value",
             "creatorNotes":"Creator Notes value","assignedTo":"Assigned To value","status":"pending",
             "endpointSecurityPolicy":"antivirus","applicablePlatform":"macOS","endpointSecurityPolicyProfile":"antivirus",
             "insights":"Insights value","managedDeviceCount":2,
             "intendedSettings":[{"@odata.type":"microsoft.graph.keyValuePair","name":"Name value","value":"Value value"}]})
        );
        let sent = create_request(&create(full_task())).expect("valid");
        assert_eq!(sent.fields, FieldSet::writable());
    }

    #[test]
    fn id_and_created_date_time_are_never_sent() {
        let body = body_of(&create(full_task()));
        let object = body.as_object().expect("object");
        assert!(!object.contains_key("id"), "{body}");
        assert!(!object.contains_key("createdDateTime"), "{body}");
        let sent = create_request(&create(full_task())).expect("valid");
        assert!(!sent.fields.contains(Field::Id));
        assert!(!sent.fields.contains(Field::CreatedDateTime));
        // An id that is not a GUID does not matter: it is not read.
        let odd = SecurityConfigurationTask {
            id: "not a guid \u{0}".into(),
            ..full_task()
        };
        assert!(create_request(&create(odd)).is_ok());
    }

    #[test]
    fn unset_optionals_and_unspecified_enums_are_left_out() {
        let sent = create_request(&create(SecurityConfigurationTask::default())).expect("valid");
        assert_eq!(
            serde_json::from_slice::<Value>(&sent.body).expect("json"),
            json!({"@odata.type": ODATA_TYPE}),
            "only the type: Graph applies its defaults"
        );
        assert!(sent.fields.is_empty());

        let some = SecurityConfigurationTask {
            display_name: Some("n".into()),
            priority: Priority::Low as i32,
            managed_device_count: Some(0),
            ..Default::default()
        };
        let sent = create_request(&create(some)).expect("valid");
        assert_eq!(
            serde_json::from_slice::<Value>(&sent.body).expect("json"),
            json!({"@odata.type": ODATA_TYPE, "displayName": "n", "priority": "low", "managedDeviceCount": 0})
        );
        assert_eq!(
            field_names(sent.fields),
            ["display_name", "priority", "managed_device_count"]
        );
    }

    #[test]
    fn an_empty_string_is_sent_as_set() {
        let t = SecurityConfigurationTask {
            description: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(body_of(&create(t))["description"], json!(""));
    }

    #[test]
    fn a_missing_task_is_a_field_violation() {
        let req = CreateSecurityConfigurationTaskRequest::default();
        assert_eq!(
            violations(&req),
            [(
                "security_configuration_task".to_owned(),
                "required".to_owned()
            )]
        );
    }

    #[test]
    fn every_bad_field_is_named_under_the_task() {
        let bad = SecurityConfigurationTask {
            display_name: Some("x".repeat(MAX_STRING_BYTES + 1)),
            due_date_time: Some(Timestamp {
                seconds: 1,
                nanos: 1,
            }),
            category: 99,
            priority: -1,
            status: 42,
            applicable_platform: 17,
            endpoint_security_policy: 77,
            endpoint_security_policy_profile: 1000,
            managed_device_count: Some(65_537),
            intended_settings: vec![
                KeyValuePair {
                    name: String::new(),
                    value: None,
                },
                KeyValuePair {
                    name: "ok".into(),
                    value: Some("v".repeat(MAX_STRING_BYTES + 1)),
                },
            ],
            ..Default::default()
        };
        let fields: Vec<String> = violations(&create(bad))
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "security_configuration_task.display_name",
                "security_configuration_task.due_date_time",
                "security_configuration_task.category",
                "security_configuration_task.priority",
                "security_configuration_task.status",
                "security_configuration_task.endpoint_security_policy",
                "security_configuration_task.applicable_platform",
                "security_configuration_task.endpoint_security_policy_profile",
                "security_configuration_task.managed_device_count",
                "security_configuration_task.intended_settings[0].name",
                "security_configuration_task.intended_settings[1].value",
            ]
        );
    }

    #[test]
    fn ranges_follow_graph() {
        for (n, ok) in [(0, true), (65_536, true), (65_537, false), (-1, false)] {
            let t = SecurityConfigurationTask {
                managed_device_count: Some(n),
                ..Default::default()
            };
            assert_eq!(create_request(&create(t)).is_ok(), ok, "{n}");
        }
        let too_many = SecurityConfigurationTask {
            intended_settings: vec![
                KeyValuePair {
                    name: "n".into(),
                    value: None,
                };
                MAX_INTENDED_SETTINGS + 1
            ],
            ..Default::default()
        };
        assert_eq!(
            violations(&create(too_many)),
            [(
                "security_configuration_task.intended_settings".to_owned(),
                format!(
                    "{} entries; at most {MAX_INTENDED_SETTINGS}",
                    MAX_INTENDED_SETTINGS + 1
                )
            )]
        );
        // A timestamp past what Graph's DateTimeOffset can hold.
        let far = SecurityConfigurationTask {
            due_date_time: Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            violations(&create(far))[0].0,
            "security_configuration_task.due_date_time"
        );
    }

    #[test]
    fn a_setting_without_a_value_is_sent_as_null() {
        let t = SecurityConfigurationTask {
            intended_settings: vec![KeyValuePair {
                name: "n".into(),
                value: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            body_of(&create(t))["intendedSettings"],
            json!([{"@odata.type":"microsoft.graph.keyValuePair","name":"n","value":null}])
        );
    }

    #[test]
    fn a_created_answer_must_be_a_security_task_with_an_id() {
        let good = json!({"@odata.type": ODATA_TYPE, "id": "5d630f12-0f12-5d63-120f-635d120f635d",
            "createdDateTime": "2017-01-01T00:02:43.5775965-08:00", "displayName": "n", "status": "pending"});
        let task = created_task(good.to_string().as_bytes())
            .expect("the task")
            .task;
        assert_eq!(task.id, "5d630f12-0f12-5d63-120f-635d120f635d");
        assert_eq!(
            task.created_date_time,
            Some(Timestamp {
                seconds: 1_483_257_763,
                nanos: 577_596_500
            })
        );
        assert_eq!(task.status, Status::Pending as i32);
        for (body, want) in [
            (
                json!({"id": "x"}),
                ResponseError::NotTheTask(Unexpected::NoODataType),
            ),
            (
                json!({"@odata.type": ODATA_TYPE}),
                ResponseError::NotTheTask(Unexpected::NoId),
            ),
            (
                json!({"@odata.type": ODATA_TYPE, "id": ""}),
                ResponseError::NotTheTask(Unexpected::NoId),
            ),
            (
                json!({"@odata.type": "#microsoft.graph.appVulnerabilityTask", "id": "x"}),
                ResponseError::NotSecurityTask {
                    odata_type: "#microsoft.graph.appVulnerabilityTask".into(),
                },
            ),
        ] {
            assert_eq!(
                created_task(body.to_string().as_bytes()).expect_err("refused"),
                want,
                "{body}"
            );
        }
        for broken in [&b""[..], b"[]", b"{\"id\":", b"<html></html>"] {
            assert!(matches!(
                created_task(broken),
                Err(ResponseError::Malformed(_))
            ));
        }
    }

    #[test]
    fn as_sent_clears_only_the_output_only_fields() {
        let task = full_task();
        let sent = as_sent(&task);
        assert_eq!(sent.id, "");
        assert_eq!(sent.created_date_time, None);
        assert_eq!(
            SecurityConfigurationTask {
                id: task.id.clone(),
                created_date_time: task.created_date_time,
                ..sent
            },
            task
        );
    }
}

//! A validated change applied to a task as the gateway read it: what a dry
//! run (`validate_only`) answers, the task as it would be once Graph took
//! the change, without sending it.
//!
//! The change is the one [`super::patch_request`] accepted: the fields it
//! names, with the values of the request's task. A named nullable string
//! that is unset clears the property; `intended_settings` is replaced whole,
//! as a PATCH of a collection property replaces it in Graph.

use super::fields::{Field, FieldSet};
use crate::proto::v1::SecurityConfigurationTask;

/// `current` with every field of `fields` taken from `change`. Output-only
/// fields (`id`, `created_date_time`) are never taken: the change cannot
/// name them.
pub fn apply_change(
    current: &SecurityConfigurationTask,
    change: &SecurityConfigurationTask,
    fields: FieldSet,
) -> SecurityConfigurationTask {
    let mut task = current.clone();
    for field in fields.iter() {
        let t = &mut task;
        match field {
            Field::Id | Field::CreatedDateTime => {}
            Field::DisplayName => t.display_name.clone_from(&change.display_name),
            Field::Description => t.description.clone_from(&change.description),
            Field::DueDateTime => t.due_date_time = change.due_date_time,
            Field::Category => t.category = change.category,
            Field::Priority => t.priority = change.priority,
            Field::Creator => t.creator.clone_from(&change.creator),
            Field::CreatorNotes => t.creator_notes.clone_from(&change.creator_notes),
            Field::AssignedTo => t.assigned_to.clone_from(&change.assigned_to),
            Field::Status => t.status = change.status,
            Field::ApplicablePlatform => t.applicable_platform = change.applicable_platform,
            Field::EndpointSecurityPolicy => {
                t.endpoint_security_policy = change.endpoint_security_policy;
            }
            Field::EndpointSecurityPolicyProfile => {
                t.endpoint_security_policy_profile = change.endpoint_security_policy_profile;
            }
            Field::Insights => t.insights.clone_from(&change.insights),
            Field::ManagedDeviceCount => t.managed_device_count = change.managed_device_count,
            Field::IntendedSettings => t.intended_settings.clone_from(&change.intended_settings),
        }
    }
    task
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{
        DeviceAppManagementTaskCategory, DeviceAppManagementTaskPriority,
        DeviceAppManagementTaskStatus, EndpointSecurityConfigurationApplicablePlatform,
        EndpointSecurityConfigurationProfileType, EndpointSecurityConfigurationType, KeyValuePair,
        UpdateSecurityConfigurationTaskRequest,
    };
    use crate::translate::{patch_request, EXAMPLE_ID};
    use prost_types::{FieldMask, Timestamp};

    fn kv(name: &str, value: Option<&str>) -> KeyValuePair {
        KeyValuePair {
            name: name.into(),
            value: value.map(Into::into),
        }
    }

    fn current() -> SecurityConfigurationTask {
        SecurityConfigurationTask {
            id: EXAMPLE_ID.into(),
            display_name: Some("Display Name value".into()),
            description: Some("Description value".into()),
            created_date_time: Some(Timestamp {
                seconds: 1_483_258_963,
                nanos: 577_596_500,
            }),
            due_date_time: Some(Timestamp {
                seconds: 1_483_258_938,
                nanos: 199_408_900,
            }),
            category: DeviceAppManagementTaskCategory::AdvancedThreatProtection as i32,
            priority: DeviceAppManagementTaskPriority::High as i32,
            creator: Some("Creator value".into()),
            creator_notes: Some("Creator Notes value".into()),
            assigned_to: Some("Assigned To value".into()),
            status: DeviceAppManagementTaskStatus::Pending as i32,
            applicable_platform: EndpointSecurityConfigurationApplicablePlatform::MacOs as i32,
            endpoint_security_policy: EndpointSecurityConfigurationType::Antivirus as i32,
            endpoint_security_policy_profile: EndpointSecurityConfigurationProfileType::Antivirus
                as i32,
            insights: Some("Insights value".into()),
            managed_device_count: Some(2),
            intended_settings: vec![kv("Name value", Some("Value value"))],
        }
    }

    /// The change as an update request would make it: validated by
    /// `patch_request`, whose field set is what gets applied.
    fn applied(change: SecurityConfigurationTask, mask: &[&str]) -> SecurityConfigurationTask {
        let req = UpdateSecurityConfigurationTaskRequest {
            security_configuration_task: Some(SecurityConfigurationTask {
                id: EXAMPLE_ID.into(),
                ..change
            }),
            update_mask: (!mask.is_empty()).then(|| FieldMask {
                paths: mask.iter().map(|p| (*p).to_owned()).collect(),
            }),
            ..Default::default()
        };
        let patch = patch_request(&req).expect("valid update");
        apply_change(
            &current(),
            req.security_configuration_task.as_ref().expect("task"),
            patch.fields,
        )
    }

    #[test]
    fn strings_are_set_and_others_kept() {
        let got = applied(
            SecurityConfigurationTask {
                display_name: Some("new".into()),
                insights: Some(String::new()),
                ..Default::default()
            },
            &[],
        );
        let want = SecurityConfigurationTask {
            display_name: Some("new".into()),
            insights: Some(String::new()),
            ..current()
        };
        assert_eq!(got, want);
    }

    #[test]
    fn nullable_strings_named_in_the_mask_and_unset_are_cleared() {
        let got = applied(
            SecurityConfigurationTask::default(),
            &[
                "description",
                "creator",
                "creator_notes",
                "assigned_to",
                "insights",
                "display_name",
            ],
        );
        let want = SecurityConfigurationTask {
            display_name: None,
            description: None,
            creator: None,
            creator_notes: None,
            assigned_to: None,
            insights: None,
            ..current()
        };
        assert_eq!(got, want);
    }

    #[test]
    fn enums_dates_and_counts_are_set() {
        let due = Timestamp {
            seconds: 1_800_000_000,
            nanos: 100,
        };
        let got = applied(
            SecurityConfigurationTask {
                due_date_time: Some(due),
                category: DeviceAppManagementTaskCategory::Unknown as i32,
                priority: DeviceAppManagementTaskPriority::Low as i32,
                status: DeviceAppManagementTaskStatus::Completed as i32,
                applicable_platform:
                    EndpointSecurityConfigurationApplicablePlatform::Windows10AndLater as i32,
                endpoint_security_policy: EndpointSecurityConfigurationType::Firewall as i32,
                endpoint_security_policy_profile:
                    EndpointSecurityConfigurationProfileType::BitLocker as i32,
                managed_device_count: Some(0),
                ..Default::default()
            },
            &[],
        );
        let want = SecurityConfigurationTask {
            due_date_time: Some(due),
            category: DeviceAppManagementTaskCategory::Unknown as i32,
            priority: DeviceAppManagementTaskPriority::Low as i32,
            status: DeviceAppManagementTaskStatus::Completed as i32,
            applicable_platform: EndpointSecurityConfigurationApplicablePlatform::Windows10AndLater
                as i32,
            endpoint_security_policy: EndpointSecurityConfigurationType::Firewall as i32,
            endpoint_security_policy_profile: EndpointSecurityConfigurationProfileType::BitLocker
                as i32,
            managed_device_count: Some(0),
            ..current()
        };
        assert_eq!(got, want);
    }

    #[test]
    fn intended_settings_are_replaced_whole() {
        let settings = vec![kv("b", None), kv("a", Some("1"))];
        let got = applied(
            SecurityConfigurationTask {
                intended_settings: settings.clone(),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(got.intended_settings, settings);
        // Named in the mask and empty: the collection is emptied.
        let got = applied(SecurityConfigurationTask::default(), &["intended_settings"]);
        assert!(got.intended_settings.is_empty());
        assert_eq!(
            got,
            SecurityConfigurationTask {
                intended_settings: Vec::new(),
                ..current()
            }
        );
    }

    #[test]
    fn fields_not_in_the_mask_are_not_taken() {
        let got = applied(
            SecurityConfigurationTask {
                display_name: Some("not named".into()),
                insights: Some("named".into()),
                ..Default::default()
            },
            &["insights"],
        );
        assert_eq!(got.display_name, current().display_name);
        assert_eq!(got.insights.as_deref(), Some("named"));
    }

    #[test]
    fn output_only_fields_are_never_taken() {
        let change = SecurityConfigurationTask {
            id: "other".into(),
            created_date_time: Some(Timestamp::default()),
            ..Default::default()
        };
        let all = Field::all().collect::<FieldSet>();
        let got = apply_change(&current(), &change, all);
        assert_eq!(got.id, EXAMPLE_ID);
        assert_eq!(got.created_date_time, current().created_date_time);
        assert_eq!(got.display_name, None);
        // A mask naming an output-only path beside a writable one: the
        // writable one is taken, the creation time stays.
        let got = applied(
            SecurityConfigurationTask {
                created_date_time: Some(Timestamp::default()),
                display_name: Some("x".into()),
                ..Default::default()
            },
            &["created_date_time", "display_name"],
        );
        assert_eq!(got.created_date_time, current().created_date_time);
        assert_eq!(got.display_name.as_deref(), Some("x"));
    }

    #[test]
    fn every_writable_field_named_by_star_is_taken() {
        let change = SecurityConfigurationTask {
            id: EXAMPLE_ID.into(),
            display_name: Some("d".into()),
            due_date_time: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            category: 1,
            priority: 1,
            status: 1,
            applicable_platform: 1,
            endpoint_security_policy: 1,
            endpoint_security_policy_profile: 1,
            managed_device_count: Some(7),
            ..Default::default()
        };
        let got = applied(change.clone(), &["*"]);
        assert_eq!(
            got,
            SecurityConfigurationTask {
                created_date_time: current().created_date_time,
                ..change
            }
        );
    }
}

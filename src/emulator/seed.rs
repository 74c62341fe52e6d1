//! The sample tasks a fresh emulator holds, with fixed ids and dates so tests
//! elsewhere can name them.
//!
//! The order mixes types (security, app vulnerability, security, unmanaged
//! device discovery, security) so that paging and `isof` filters meet every
//! type.

use serde_json::{json, Value};

/// The Graph docs' example securityConfigurationTask.
pub const EXAMPLE_TASK_ID: &str = "5d630f12-0f12-5d63-120f-635d120f635d";
/// An appVulnerabilityTask.
pub const APP_VULNERABILITY_TASK_ID: &str = "0b7a3f4e-2c1d-4e8f-9a6b-5c4d3e2f1a01";
/// A windows10AndLater firewall securityConfigurationTask with two intendedSettings.
pub const FIREWALL_TASK_ID: &str = "7c1e9d2a-4b3f-4a5e-8d6c-1f2e3a4b5c02";
/// An unmanagedDeviceDiscoveryTask.
pub const UNMANAGED_DEVICE_DISCOVERY_TASK_ID: &str = "3e5f7a9b-6d8c-4b1a-a2e3-9f8e7d6c5b03";
/// A completed BitLocker securityConfigurationTask.
pub const COMPLETED_TASK_ID: &str = "9a8b7c6d-5e4f-4a3b-b2c1-0d9e8f7a6b04";

/// Every seeded id, in collection order.
pub const ALL_TASK_IDS: [&str; 5] = [
    EXAMPLE_TASK_ID,
    APP_VULNERABILITY_TASK_ID,
    FIREWALL_TASK_ID,
    UNMANAGED_DEVICE_DISCOVERY_TASK_ID,
    COMPLETED_TASK_ID,
];

/// The seeded securityConfigurationTask ids, in collection order.
pub const SECURITY_CONFIGURATION_TASK_IDS: [&str; 3] =
    [EXAMPLE_TASK_ID, FIREWALL_TASK_ID, COMPLETED_TASK_ID];

/// The seeded tasks, in collection order, as Graph returns them.
pub fn tasks() -> Vec<Value> {
    vec![
        example_task(),
        app_vulnerability_task(),
        firewall_task(),
        unmanaged_device_discovery_task(),
        completed_task(),
    ]
}

fn example_task() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "id": EXAMPLE_TASK_ID,
        "displayName": "Display Name value",
        "description": "Description value",
        "createdDateTime": "2017-01-01T00:02:43.5775965-08:00",
        "dueDateTime": "2017-01-01T00:02:18.1994089-08:00",
        "category": "advancedThreatProtection",
        "priority": "high",
        "creator": "Creator value",
        "creatorNotes": "Creator Notes value",
        "assignedTo": "Assigned To value",
        "status": "pending",
        "applicablePlatform": "macOS",
        "endpointSecurityPolicy": "antivirus",
        "endpointSecurityPolicyProfile": "antivirus",
        "insights": "Insights value",
        "managedDeviceCount": 2,
        "intendedSettings": [
            {"@odata.type": "microsoft.graph.keyValuePair", "name": "Name value", "value": "Value value"}
        ]
    })
}

fn app_vulnerability_task() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.appVulnerabilityTask",
        "id": APP_VULNERABILITY_TASK_ID,
        "displayName": "Update vulnerable 7-Zip",
        "description": "7-Zip below 23.01 allows remote code execution.",
        "createdDateTime": "2023-03-14T09:26:53.5897932Z",
        "dueDateTime": "2023-04-01T00:00:00Z",
        "category": "advancedThreatProtection",
        "priority": "high",
        "creator": "secops@contoso.com",
        "creatorNotes": "Raised from Defender vulnerability management.",
        "assignedTo": "Endpoint team",
        "status": "active",
        "appName": "7-Zip",
        "appPublisher": "Igor Pavlov",
        "appVersion": "22.01",
        "insights": "Exploit code is publicly available.",
        "managedDeviceCount": 42,
        "mobileAppCount": 1,
        "mitigationType": "update",
        "remediation": "Update 7-Zip to 23.01 or later."
    })
}

fn firewall_task() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "id": FIREWALL_TASK_ID,
        "displayName": "Turn on Windows Defender Firewall",
        "description": "Devices found with the firewall off in the domain profile.",
        "createdDateTime": "2023-05-02T13:45:10.1234567+02:00",
        "dueDateTime": "2023-05-16T17:00:00+02:00",
        "category": "advancedThreatProtection",
        "priority": "low",
        "creator": "secops@contoso.com",
        "creatorNotes": null,
        "assignedTo": "Windows team",
        "status": "active",
        "applicablePlatform": "windows10AndLater",
        "endpointSecurityPolicy": "firewall",
        "endpointSecurityPolicyProfile": "firewall",
        "insights": "12 devices expose SMB on public networks.",
        "managedDeviceCount": 12,
        "intendedSettings": [
            {"@odata.type": "microsoft.graph.keyValuePair", "name": "EnableFirewall", "value": "true"},
            {"@odata.type": "microsoft.graph.keyValuePair", "name": "DefaultInboundAction", "value": "block"}
        ]
    })
}

fn unmanaged_device_discovery_task() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.unmanagedDeviceDiscoveryTask",
        "id": UNMANAGED_DEVICE_DISCOVERY_TASK_ID,
        "displayName": "Onboard unmanaged devices",
        "description": "Devices seen on the network but not enrolled.",
        "createdDateTime": "2023-06-20T08:00:00.0000000Z",
        "dueDateTime": "2023-07-20T08:00:00Z",
        "category": "unknown",
        "priority": "none",
        "creator": "secops@contoso.com",
        "creatorNotes": null,
        "assignedTo": null,
        "status": "pending",
        "unmanagedDevices": [
            {
                "deviceName": "LAPTOP-7F3K2",
                "os": "Windows",
                "osVersion": "10.0.19045",
                "lastLoggedOnUser": "adele@contoso.com",
                "lastSeenDateTime": "2023-06-19T17:42:00Z",
                "ipAddress": "10.0.0.23",
                "macAddress": "00-15-5D-01-02-03"
            }
        ]
    })
}

fn completed_task() -> Value {
    json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "id": COMPLETED_TASK_ID,
        "displayName": "Encrypt OS drives with BitLocker",
        "description": null,
        "createdDateTime": "2022-11-08T22:10:05.0000001-05:00",
        "dueDateTime": "2022-12-01T00:00:00-05:00",
        "category": "advancedThreatProtection",
        "priority": "none",
        "creator": "secops@contoso.com",
        "creatorNotes": "Closed after the rollout.",
        "assignedTo": "Windows team",
        "status": "completed",
        "applicablePlatform": "windows10AndWindowsServer",
        "endpointSecurityPolicy": "diskEncryption",
        "endpointSecurityPolicyProfile": "bitLocker",
        "insights": null,
        "managedDeviceCount": 0,
        "intendedSettings": []
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::schema::{validate_update, TaskType};

    /// Seed tasks must themselves pass the emulator's own validation, minus the
    /// read-only properties, or they would teach clients the wrong shape.
    #[test]
    fn seed_tasks_are_valid_and_complete() {
        for (task, id) in tasks().iter().zip(ALL_TASK_IDS) {
            assert_eq!(task["id"], id);
            let task_type = TaskType::of(task).expect("known type");
            let mut writable = task.clone();
            if let Some(object) = writable.as_object_mut() {
                object.remove("id");
                object.remove("createdDateTime");
            }
            validate_update(task_type, &writable).expect("seed task validates");
            for property in task_type.properties() {
                assert!(
                    task.get(property.name).is_some(),
                    "{id} lacks {}",
                    property.name
                );
            }
        }
    }
}

//! Whether a task read back holds what an update sent.
//!
//! When a PATCH got no answer (a timeout, a connection lost after the request
//! was written), Graph may or may not have applied it. Rather than send it
//! blindly again, the service reads the task back: if every property the
//! PATCH body named holds the value sent, the change is taken as applied.
//!
//! What a read-back cannot tell apart: another writer that, between the
//! PATCH and the read, set the same values (the PATCH may never have landed,
//! yet reads as applied), or changed them (the PATCH landed and was
//! overwritten, yet reads as not applied, so it is sent once more, over the
//! other writer's change).

use super::timestamp;
use serde_json::{Map, Value};

/// True when the task JSON `current` holds every property of the PATCH body
/// `sent` (`null` matching an absent property, timestamps compared as
/// instants, `@odata.type` annotations ignored). False when either body is
/// not a JSON object.
pub fn holds_patch(sent: &[u8], current: &[u8]) -> bool {
    let (Ok(Value::Object(sent)), Ok(Value::Object(current))) = (
        serde_json::from_slice::<Value>(sent),
        serde_json::from_slice::<Value>(current),
    ) else {
        return false;
    };
    holds(&sent, &current)
}

fn holds(sent: &Map<String, Value>, current: &Map<String, Value>) -> bool {
    sent.iter()
        .filter(|(name, _)| name.as_str() != "@odata.type")
        .all(|(name, value)| same(name, value, current.get(name).unwrap_or(&Value::Null)))
}

fn same(name: &str, sent: &Value, held: &Value) -> bool {
    match (sent, held) {
        (Value::String(s), Value::String(h)) if name.ends_with("DateTime") => {
            match (timestamp::from_graph(s), timestamp::from_graph(h)) {
                (Some(s), Some(h)) => s == h,
                _ => s == h,
            }
        }
        (Value::Array(s), Value::Array(h)) => {
            s.len() == h.len() && s.iter().zip(h).all(|(s, h)| same(name, s, h))
        }
        (Value::Object(s), Value::Object(h)) => {
            holds(s, h)
                && h.iter()
                    .filter(|(k, v)| k.as_str() != "@odata.type" && !v.is_null())
                    .all(|(k, _)| s.contains_key(k))
        }
        (s, h) => s == h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(sent: Value, current: Value) -> bool {
        holds_patch(
            &serde_json::to_vec(&sent).expect("json"),
            &serde_json::to_vec(&current).expect("json"),
        )
    }

    const TYPE: &str = "#microsoft.graph.securityConfigurationTask";

    #[test]
    fn the_properties_sent_must_hold_the_values_sent() {
        let task = json!({"@odata.type": TYPE, "id": "t", "displayName": "a", "insights": "i", "status": "active"});
        assert!(check(
            json!({"@odata.type": TYPE, "insights": "i"}),
            task.clone()
        ));
        assert!(check(
            json!({"@odata.type": TYPE, "insights": "i", "status": "active"}),
            task.clone()
        ));
        // Properties not sent may hold anything.
        assert!(check(json!({"displayName": "a"}), task.clone()));
        assert!(!check(json!({"insights": "other"}), task.clone()));
        assert!(!check(json!({"creator": "c"}), task.clone()));
        assert!(!check(json!({"managedDeviceCount": 3}), task.clone()));
    }

    #[test]
    fn a_cleared_property_matches_null_or_absent() {
        let task = json!({"@odata.type": TYPE, "id": "t", "description": null});
        assert!(check(json!({"description": null}), task.clone()));
        assert!(check(json!({"creatorNotes": null}), task.clone()));
        assert!(!check(
            json!({"description": null}),
            json!({"description": "x"})
        ));
    }

    #[test]
    fn timestamps_are_compared_as_instants() {
        let sent = json!({"dueDateTime": "2026-12-01T10:00:00Z"});
        for held in [
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00.0000000Z",
            "2026-12-01T11:00:00+01:00",
            "2026-12-01T02:00:00.000-08:00",
        ] {
            assert!(check(sent.clone(), json!({"dueDateTime": held})), "{held}");
        }
        assert!(!check(
            sent.clone(),
            json!({"dueDateTime": "2026-12-01T10:00:00.0000001Z"})
        ));
        assert!(!check(sent, json!({"dueDateTime": null})));
    }

    #[test]
    fn settings_are_compared_in_order_without_annotations() {
        let sent = json!({"intendedSettings": [
            {"@odata.type": "microsoft.graph.keyValuePair", "name": "a", "value": "1"},
            {"@odata.type": "microsoft.graph.keyValuePair", "name": "b", "value": null}
        ]});
        assert!(check(
            sent.clone(),
            json!({"intendedSettings": [{"name": "a", "value": "1"}, {"name": "b"}]})
        ));
        assert!(!check(
            sent.clone(),
            json!({"intendedSettings": [{"name": "b"}, {"name": "a", "value": "1"}]})
        ));
        assert!(!check(
            sent.clone(),
            json!({"intendedSettings": [{"name": "a", "value": "1"}]})
        ));
        assert!(!check(
            sent,
            json!({"intendedSettings": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]})
        ));
        assert!(check(
            json!({"intendedSettings": []}),
            json!({"intendedSettings": []})
        ));
    }

    #[test]
    fn bodies_that_are_not_objects_hold_nothing() {
        assert!(!holds_patch(b"{}", b"[]"));
        assert!(!holds_patch(b"[]", b"{}"));
        assert!(!holds_patch(b"{}", b"<html>"));
        assert!(holds_patch(b"{}", b"{}"));
    }
}

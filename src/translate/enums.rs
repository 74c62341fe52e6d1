//! The Graph enums and their wire strings.
//!
//! Each proto enum numbers Graph's members in Graph's declared order after a
//! zero `*_UNSPECIFIED`, so proto value `n` (n >= 1) is `members[n - 1]`. One
//! table per enum keeps both directions in step.

/// One Graph enum: its Graph type name and members in declared order.
#[derive(Debug)]
pub struct GraphEnum {
    /// The Graph type name, e.g. `deviceAppManagementTaskStatus`.
    pub graph_type: &'static str,
    /// The wire strings, in Graph's declared order.
    pub members: &'static [&'static str],
}

/// Why a proto enum value cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumValueError {
    /// Zero: the field is not set.
    Unspecified,
    /// A number this gateway's proto does not define.
    OutOfRange,
}

impl GraphEnum {
    /// The Graph string for a proto value.
    pub fn to_graph(&self, value: i32) -> Result<&'static str, EnumValueError> {
        match value {
            0 => Err(EnumValueError::Unspecified),
            n if n > 0 => usize::try_from(n - 1)
                .ok()
                .and_then(|i| self.members.get(i).copied())
                .ok_or(EnumValueError::OutOfRange),
            _ => Err(EnumValueError::OutOfRange),
        }
    }

    /// The proto value for a Graph string; `None` for a member this gateway
    /// does not know (Graph adds members over time).
    pub fn from_graph(&self, member: &str) -> Option<i32> {
        self.members
            .iter()
            .position(|m| *m == member)
            .and_then(|i| i32::try_from(i + 1).ok())
    }
}

/// `deviceAppManagementTaskCategory`.
pub const CATEGORY: GraphEnum = GraphEnum {
    graph_type: "deviceAppManagementTaskCategory",
    members: &["unknown", "advancedThreatProtection"],
};

/// `deviceAppManagementTaskPriority`.
pub const PRIORITY: GraphEnum = GraphEnum {
    graph_type: "deviceAppManagementTaskPriority",
    members: &["none", "high", "low"],
};

/// `deviceAppManagementTaskStatus`.
pub const STATUS: GraphEnum = GraphEnum {
    graph_type: "deviceAppManagementTaskStatus",
    members: &["unknown", "pending", "active", "completed", "rejected"],
};

/// `endpointSecurityConfigurationApplicablePlatform`.
pub const APPLICABLE_PLATFORM: GraphEnum = GraphEnum {
    graph_type: "endpointSecurityConfigurationApplicablePlatform",
    members: &[
        "unknown",
        "macOS",
        "windows10AndLater",
        "windows10AndWindowsServer",
    ],
};

/// `endpointSecurityConfigurationType`.
pub const ENDPOINT_SECURITY_POLICY: GraphEnum = GraphEnum {
    graph_type: "endpointSecurityConfigurationType",
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

/// `endpointSecurityConfigurationProfileType`.
pub const ENDPOINT_SECURITY_POLICY_PROFILE: GraphEnum = GraphEnum {
    graph_type: "endpointSecurityConfigurationProfileType",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as pb;

    /// `windows10AndLater` -> `WINDOWS10_AND_LATER`, `macOS` -> `MAC_OS`.
    fn upper_snake(member: &str) -> String {
        let mut out = String::new();
        let mut prev_lower_or_digit = false;
        for c in member.chars() {
            if c.is_ascii_uppercase() && prev_lower_or_digit {
                out.push('_');
            }
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// Checks one table against the generated proto enum, member by member,
    /// both ways, so the two can never drift apart.
    fn check(table: &GraphEnum, proto_prefix: &str, proto_name: impl Fn(i32) -> Option<String>) {
        assert_eq!(
            proto_name(0).as_deref(),
            Some(format!("{proto_prefix}_UNSPECIFIED").as_str())
        );
        for (i, member) in table.members.iter().enumerate() {
            let value = i32::try_from(i + 1).expect("small enum");
            assert_eq!(table.to_graph(value), Ok(*member));
            assert_eq!(table.from_graph(member), Some(value));
            assert_eq!(
                proto_name(value),
                Some(format!("{proto_prefix}_{}", upper_snake(member))),
                "{} member {member}",
                table.graph_type
            );
        }
        let past_end = i32::try_from(table.members.len() + 1).expect("small enum");
        assert_eq!(
            proto_name(past_end),
            None,
            "proto has more members than Graph"
        );
        assert_eq!(table.to_graph(past_end), Err(EnumValueError::OutOfRange));
        assert_eq!(table.to_graph(-1), Err(EnumValueError::OutOfRange));
        assert_eq!(table.to_graph(0), Err(EnumValueError::Unspecified));
        assert_eq!(table.from_graph("someFutureMember"), None);
        assert_eq!(table.from_graph(""), None);
    }

    macro_rules! name_of {
        ($ty:ty) => {
            |v: i32| <$ty>::try_from(v).ok().map(|e| e.as_str_name().to_owned())
        };
    }

    #[test]
    fn every_member_maps_both_ways() {
        check(
            &CATEGORY,
            "DEVICE_APP_MANAGEMENT_TASK_CATEGORY",
            name_of!(pb::DeviceAppManagementTaskCategory),
        );
        check(
            &PRIORITY,
            "DEVICE_APP_MANAGEMENT_TASK_PRIORITY",
            name_of!(pb::DeviceAppManagementTaskPriority),
        );
        check(
            &STATUS,
            "DEVICE_APP_MANAGEMENT_TASK_STATUS",
            name_of!(pb::DeviceAppManagementTaskStatus),
        );
        check(
            &APPLICABLE_PLATFORM,
            "ENDPOINT_SECURITY_CONFIGURATION_APPLICABLE_PLATFORM",
            name_of!(pb::EndpointSecurityConfigurationApplicablePlatform),
        );
        check(
            &ENDPOINT_SECURITY_POLICY,
            "ENDPOINT_SECURITY_CONFIGURATION_TYPE",
            name_of!(pb::EndpointSecurityConfigurationType),
        );
        check(
            &ENDPOINT_SECURITY_POLICY_PROFILE,
            "ENDPOINT_SECURITY_CONFIGURATION_PROFILE_TYPE",
            name_of!(pb::EndpointSecurityConfigurationProfileType),
        );
    }

    #[test]
    fn upper_snake_follows_proto_style() {
        assert_eq!(upper_snake("windows10AndLater"), "WINDOWS10_AND_LATER");
        assert_eq!(upper_snake("macOS"), "MAC_OS");
        assert_eq!(upper_snake("bitLocker"), "BIT_LOCKER");
    }
}

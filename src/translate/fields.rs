//! The securityConfigurationTask fields: proto name, Graph name and what
//! Graph allows for each, in one table that the mask, the PATCH body and the
//! tests all read.

/// One field of `SecurityConfigurationTask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Id,
    DisplayName,
    Description,
    CreatedDateTime,
    DueDateTime,
    Category,
    Priority,
    Creator,
    CreatorNotes,
    AssignedTo,
    Status,
    ApplicablePlatform,
    EndpointSecurityPolicy,
    EndpointSecurityPolicyProfile,
    Insights,
    ManagedDeviceCount,
    IntendedSettings,
}

/// (field, proto name, Graph name), in proto field-number order.
const TABLE: [(Field, &str, &str); 17] = [
    (Field::Id, "id", "id"),
    (Field::DisplayName, "display_name", "displayName"),
    (Field::Description, "description", "description"),
    (
        Field::CreatedDateTime,
        "created_date_time",
        "createdDateTime",
    ),
    (Field::DueDateTime, "due_date_time", "dueDateTime"),
    (Field::Category, "category", "category"),
    (Field::Priority, "priority", "priority"),
    (Field::Creator, "creator", "creator"),
    (Field::CreatorNotes, "creator_notes", "creatorNotes"),
    (Field::AssignedTo, "assigned_to", "assignedTo"),
    (Field::Status, "status", "status"),
    (
        Field::ApplicablePlatform,
        "applicable_platform",
        "applicablePlatform",
    ),
    (
        Field::EndpointSecurityPolicy,
        "endpoint_security_policy",
        "endpointSecurityPolicy",
    ),
    (
        Field::EndpointSecurityPolicyProfile,
        "endpoint_security_policy_profile",
        "endpointSecurityPolicyProfile",
    ),
    (Field::Insights, "insights", "insights"),
    (
        Field::ManagedDeviceCount,
        "managed_device_count",
        "managedDeviceCount",
    ),
    (
        Field::IntendedSettings,
        "intended_settings",
        "intendedSettings",
    ),
];

impl Field {
    /// Every field, in proto order.
    pub fn all() -> impl Iterator<Item = Field> {
        TABLE.iter().map(|(f, _, _)| *f)
    }

    fn row(self) -> &'static (Field, &'static str, &'static str) {
        &TABLE[self as usize]
    }

    /// The proto (snake_case) name, as used in update masks.
    pub fn proto_name(self) -> &'static str {
        self.row().1
    }

    /// The Graph (camelCase) JSON property name.
    pub fn graph_name(self) -> &'static str {
        self.row().2
    }

    /// Set by Graph and refused in a PATCH: never sent.
    pub fn is_output_only(self) -> bool {
        matches!(self, Field::Id | Field::CreatedDateTime)
    }

    /// The field with this proto name.
    pub fn from_proto_name(name: &str) -> Option<Field> {
        TABLE
            .iter()
            .find(|(_, p, _)| *p == name)
            .map(|(f, _, _)| *f)
    }

    /// The field with this Graph name.
    pub fn from_graph_name(name: &str) -> Option<Field> {
        TABLE
            .iter()
            .find(|(_, _, g)| *g == name)
            .map(|(f, _, _)| *f)
    }
}

/// A set of fields, as a bit set (17 fields fit a `u32`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    /// Every writable field: what the mask `*` names.
    pub fn writable() -> Self {
        Field::all().filter(|f| !f.is_output_only()).collect()
    }

    pub fn insert(&mut self, field: Field) {
        self.0 |= 1 << field as u32;
    }

    pub fn contains(self, field: Field) -> bool {
        self.0 & (1 << field as u32) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields in proto order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::all().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Field> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut set = FieldSet::default();
        for f in iter {
            set.insert(f);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_sit_at_their_discriminant() {
        for (i, (f, _, _)) in TABLE.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
    }

    #[test]
    fn names_round_trip() {
        for f in Field::all() {
            assert_eq!(Field::from_proto_name(f.proto_name()), Some(f));
            assert_eq!(Field::from_graph_name(f.graph_name()), Some(f));
        }
        assert_eq!(Field::from_proto_name("displayName"), None);
    }

    #[test]
    fn writable_excludes_output_only() {
        let w = FieldSet::writable();
        assert!(!w.contains(Field::Id));
        assert!(!w.contains(Field::CreatedDateTime));
        assert_eq!(w.iter().count(), 15);
    }
}

//! The task service's methods, written once: their gRPC names, and whether
//! they change Graph. The policy (which RPCs a caller may call), the access
//! layer (which route a path is), the audit (which calls get a record) and
//! the metrics (the `rpc` label) all read this table, so adding an RPC is
//! one row here and never a name spelt out again elsewhere.

use crate::proto::v1::security_configuration_task_service_server::SERVICE_NAME;

/// One RPC of `graphgateway.v1.SecurityConfigurationTaskService`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    List,
    Update,
    Create,
    Delete,
    SetStatus,
    BatchGet,
    BatchUpdate,
    BatchSetStatus,
}

/// A row of the table.
struct Row {
    method: Method,
    /// The RPC's name in the proto, as the policy and the metrics name it.
    name: &'static str,
    /// Whether the call can change Graph: audited, and refused by a policy
    /// that grants only reads.
    mutating: bool,
}

const TABLE: [Row; 9] = [
    Row {
        method: Method::Get,
        name: "GetSecurityConfigurationTask",
        mutating: false,
    },
    Row {
        method: Method::List,
        name: "ListSecurityConfigurationTasks",
        mutating: false,
    },
    Row {
        method: Method::Update,
        name: "UpdateSecurityConfigurationTask",
        mutating: true,
    },
    Row {
        method: Method::Create,
        name: "CreateSecurityConfigurationTask",
        mutating: true,
    },
    Row {
        method: Method::Delete,
        name: "DeleteSecurityConfigurationTask",
        mutating: true,
    },
    Row {
        method: Method::SetStatus,
        name: "SetSecurityConfigurationTaskStatus",
        mutating: true,
    },
    Row {
        method: Method::BatchGet,
        name: "BatchGetSecurityConfigurationTasks",
        mutating: false,
    },
    Row {
        method: Method::BatchUpdate,
        name: "BatchUpdateSecurityConfigurationTasks",
        mutating: true,
    },
    Row {
        method: Method::BatchSetStatus,
        name: "BatchSetSecurityConfigurationTaskStatus",
        mutating: true,
    },
];

/// A set of methods, one bit each (as [`Method::bit`] places them).
pub(crate) type MethodSet = u16;

// Every method needs a bit of the set.
const _: () = assert!(Method::ALL.len() <= MethodSet::BITS as usize);

/// The service's full gRPC name, from the generated code.
pub const SERVICE: &str = SERVICE_NAME;

impl Method {
    /// Every method, in the table's order.
    pub const ALL: [Method; 9] = [
        TABLE[0].method,
        TABLE[1].method,
        TABLE[2].method,
        TABLE[3].method,
        TABLE[4].method,
        TABLE[5].method,
        TABLE[6].method,
        TABLE[7].method,
        TABLE[8].method,
    ];

    fn row(self) -> &'static Row {
        // The table lists the variants in declaration order (checked by a test).
        &TABLE[self as usize]
    }

    /// The RPC's name in the proto, e.g. `GetSecurityConfigurationTask`.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The method a name (as the policy writes it) stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        TABLE.iter().find(|r| r.name == name).map(|r| r.method)
    }

    /// The method an HTTP/2 `:path` calls, e.g.
    /// `/graphgateway.v1.SecurityConfigurationTaskService/GetSecurityConfigurationTask`.
    pub fn from_path(path: &str) -> Option<Self> {
        let rest = path.strip_prefix('/')?.strip_prefix(SERVICE)?;
        Self::from_name(rest.strip_prefix('/')?)
    }

    /// Calls that change Graph, and so are audited.
    pub fn is_mutating(self) -> bool {
        self.row().mutating
    }

    /// The method's bit in a caller's set of allowed methods.
    pub(crate) fn bit(self) -> MethodSet {
        1 << (self as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::FILE_DESCRIPTOR_SET;
    use prost::Message;

    #[test]
    fn every_method_has_a_bit_of_its_own() {
        let all = Method::ALL.iter().fold(0 as MethodSet, |set, m| {
            assert_eq!(set & m.bit(), 0, "{m:?}");
            set | m.bit()
        });
        assert_eq!(all.count_ones() as usize, Method::ALL.len());
    }

    #[test]
    fn the_table_is_in_declaration_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.method as usize, i, "{}", row.name);
            assert_eq!(Method::ALL[i], row.method);
        }
    }

    /// Every RPC of the proto is in the table and nothing else is, so the
    /// policy cannot name a method that does not exist, nor miss one.
    #[test]
    fn the_table_lists_exactly_the_protos_rpcs() {
        let fds =
            prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set");
        let service = fds
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| (f.package(), s)))
            .find(|(package, s)| format!("{package}.{}", s.name()) == SERVICE)
            .map(|(_, s)| s)
            .expect("the task service is in the descriptor set");
        let mut in_proto: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        let mut in_table: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        in_proto.sort_unstable();
        in_table.sort_unstable();
        assert_eq!(in_proto, in_table);
    }

    #[test]
    fn paths_and_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.name()), Some(m));
            let path = format!("/{SERVICE}/{}", m.name());
            assert_eq!(Method::from_path(&path), Some(m));
        }
        assert_eq!(Method::from_name("DeleteEverything"), None);
        assert_eq!(
            Method::from_path("/graphgateway.v1.SecurityConfigurationTaskService/DeleteEverything"),
            None
        );
        assert_eq!(
            Method::from_path("/other.Service/GetSecurityConfigurationTask"),
            None
        );
        assert_eq!(
            Method::from_path(
                "/graphgateway.v1.SecurityConfigurationTaskServiceX/GetSecurityConfigurationTask"
            ),
            None
        );
    }

    #[test]
    fn reads_are_not_mutating() {
        let mutating: Vec<_> = Method::ALL
            .into_iter()
            .filter(|m| m.is_mutating())
            .collect();
        assert_eq!(
            mutating,
            [
                Method::Update,
                Method::Create,
                Method::Delete,
                Method::SetStatus,
                Method::BatchUpdate,
                Method::BatchSetStatus
            ]
        );
    }
}

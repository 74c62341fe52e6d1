//! The request messages as the compiled proto describes them, to check that
//! a field violation names a field a caller can actually find.

use graph_grpc_gateway::proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use std::sync::OnceLock;

fn messages() -> &'static [(String, DescriptorProto)] {
    static MESSAGES: OnceLock<Vec<(String, DescriptorProto)>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        set.file
            .into_iter()
            .flat_map(|file| {
                let package = file.package.unwrap_or_default();
                file.message_type
                    .into_iter()
                    .map(move |m| (format!(".{package}.{}", m.name()), m))
            })
            .collect()
    })
}

fn message(full_name: &str) -> Option<&'static DescriptorProto> {
    messages()
        .iter()
        .find(|(name, _)| name == full_name)
        .map(|(_, m)| m)
}

/// The field names of a message, e.g. `.graphgateway.v1.SecurityConfigurationTask`.
pub fn field_names(full_name: &str) -> Vec<String> {
    message(full_name)
        .map(|m| m.field.iter().map(|f| f.name().to_owned()).collect())
        .unwrap_or_default()
}

/// Whether `path` (`a.b[3].c`) walks real fields from `root`: each step a
/// field of the message reached so far, an index only on a repeated field.
pub fn names_field(root: &str, path: &str) -> bool {
    let mut current = match message(root) {
        Some(m) => m,
        None => return false,
    };
    let mut steps = path.split('.').peekable();
    while let Some(step) = steps.next() {
        let (name, indexed) = match step.split_once('[') {
            Some((name, rest)) => {
                let Some(digits) = rest.strip_suffix(']') else {
                    return false;
                };
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return false;
                }
                (name, true)
            }
            None => (step, false),
        };
        let Some(field) = current.field.iter().find(|f| f.name() == name) else {
            return false;
        };
        if indexed && field.label() != Label::Repeated {
            return false;
        }
        if steps.peek().is_none() {
            return true;
        }
        if field.r#type() != Type::Message {
            return false;
        }
        current = match message(field.type_name()) {
            Some(m) => m,
            None => return false,
        };
    }
    false
}

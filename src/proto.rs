//! The generated protobuf types and the descriptor set served by reflection.
#![allow(missing_docs, clippy::all)]

pub mod v1 {
    tonic::include_proto!("graphgateway.v1");
}

/// The encoded `FileDescriptorSet` of the gateway's proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/graphgateway_descriptor.bin"));

//! graph-grpc-gateway: a gRPC front for Microsoft Intune securityConfigurationTask
//! objects on Microsoft Graph beta.
#![forbid(unsafe_code)]

pub mod emulator;
pub mod proto;

//! graph-grpc-gateway: a gRPC front for Microsoft Intune securityConfigurationTask
//! objects on Microsoft Graph beta.
#![forbid(unsafe_code)]

pub mod proto;
pub mod translate;

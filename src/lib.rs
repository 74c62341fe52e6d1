//! graph-grpc-gateway: a gRPC front for Microsoft Intune securityConfigurationTask
//! objects on Microsoft Graph beta.
//!
//! Data flows one way: [`service`] validates a call and asks [`translate`]
//! for the Graph request, [`graph`] sends it (to Graph or the [`emulator`]),
//! and the answer or error comes back through [`translate`] and [`status`].
//! [`security`] decides who may call at all, before any of that.
//! No unsafe code but one forwarding call, in [`telemetry`]'s layer wrapper.
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod budget;
pub mod cli;
pub mod config;
pub mod emulator;
pub mod graph;
pub mod idempotency;
pub mod listener;
pub mod load;
pub mod methods;
pub mod metrics;
pub mod proto;
pub mod secret;
pub mod security;
pub mod server;
pub mod service;
pub mod settings;
pub mod status;
pub mod telemetry;
pub mod translate;

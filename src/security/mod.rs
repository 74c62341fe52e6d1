//! Who may call the gateway: inbound TLS and mutual TLS, caller identities
//! from client certificates and bearer JWTs, the policy that says which
//! caller may call which RPC and how fast, and the layer that enforces it
//! before any Graph call.

pub mod access;
pub mod identity;
pub mod jwt;
pub mod policy;
pub mod rate;
pub mod tls;

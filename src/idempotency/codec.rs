//! A [`Remembered`] answer as bytes, for the memory shared in Redis: a
//! version byte, the first 8 bytes of the SHA-256 of the rest (so a
//! truncated or altered entry is told from a real one), then a protobuf
//! message (prost) with the answer (the response message as the service
//! encoded it, or the status: code, message, details and metadata), the
//! audit outcome and what the audit record named.
//!
//! [`decode`] checks everything it reads and refuses what this version does
//! not write (another version byte, a check that does not match, a code out
//! of range, an unknown outcome or status member, metadata that is not
//! valid metadata): an entry it refuses is never replayed (see `shared.rs`).
//! Decoding never panics.

use super::{Answer, Audited, AuditedItem, Remembered};
use crate::audit::Outcome;
use crate::translate::enums::STATUS;
use bytes::Bytes;
use prost::Message;
use tonic::metadata::{
    AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataKey, BinaryMetadataValue, KeyAndValueRef,
    MetadataMap,
};
use tonic::{Code, Status};

/// The first byte of every entry this version writes.
const VERSION: u8 = 1;
/// Bytes of the body's SHA-256 kept after the version.
const CHECK: usize = 8;

/// Why an entry could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the remembered answer could not be read: {0}")]
pub struct Undecodable(&'static str);

#[derive(Clone, PartialEq, Message)]
struct Wire {
    /// The call succeeded: `message` and `graph_request_id` are its answer.
    #[prost(bool, tag = "1")]
    ok: bool,
    #[prost(bytes = "bytes", tag = "2")]
    message: Bytes,
    #[prost(string, optional, tag = "3")]
    graph_request_id: Option<String>,
    /// The call failed with this status.
    #[prost(int32, tag = "4")]
    code: i32,
    #[prost(string, tag = "5")]
    status_message: String,
    #[prost(bytes = "bytes", tag = "6")]
    details: Bytes,
    #[prost(message, repeated, tag = "7")]
    metadata: Vec<Pair>,
    #[prost(string, tag = "8")]
    outcome: String,
    #[prost(string, optional, tag = "9")]
    task_id: Option<String>,
    #[prost(string, tag = "10")]
    fields: String,
    #[prost(string, optional, tag = "11")]
    status_member: Option<String>,
    #[prost(uint64, optional, tag = "12")]
    note_bytes: Option<u64>,
    /// A batch call's items, in request order.
    #[prost(message, repeated, tag = "13")]
    items: Vec<ItemWire>,
}

/// What one item of a batch call did, and its code.
#[derive(Clone, PartialEq, Message)]
struct ItemWire {
    #[prost(string, tag = "1")]
    outcome: String,
    #[prost(int32, tag = "2")]
    code: i32,
}

/// One metadata entry of a status; a `-bin` key's value is the raw bytes.
#[derive(Clone, PartialEq, Message)]
struct Pair {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

/// The bytes kept for `remembered`.
pub fn encode(remembered: &Remembered) -> Vec<u8> {
    let mut wire = Wire {
        outcome: remembered.outcome.as_str().to_owned(),
        task_id: remembered.audited.task_id.clone(),
        fields: remembered.audited.fields.clone(),
        status_member: remembered.audited.status.map(str::to_owned),
        note_bytes: remembered
            .audited
            .note_bytes
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
        items: remembered
            .audited
            .items
            .iter()
            .map(|item| ItemWire {
                outcome: item.outcome.as_str().to_owned(),
                code: item.code as i32,
            })
            .collect(),
        ..Wire::default()
    };
    match &remembered.answer {
        Ok(answer) => {
            wire.ok = true;
            wire.message = answer.message.clone();
            wire.graph_request_id = answer.request_id.clone();
        }
        Err(status) => {
            wire.code = status.code() as i32;
            wire.status_message = status.message().to_owned();
            wire.details = Bytes::copy_from_slice(status.details());
            wire.metadata = metadata_pairs(status.metadata());
        }
    }
    let body = wire.encode_to_vec();
    let mut out = Vec::with_capacity(1 + CHECK + body.len());
    out.push(VERSION);
    out.extend_from_slice(&check(&body));
    out.extend_from_slice(&body);
    out
}

/// The answer kept as `bytes`, or why it cannot be used.
pub fn decode(bytes: &[u8]) -> Result<Remembered, Undecodable> {
    let (&version, body) = bytes.split_first().ok_or(Undecodable("empty"))?;
    if version != VERSION {
        return Err(Undecodable("another version"));
    }
    if body.len() < CHECK {
        return Err(Undecodable("too short"));
    }
    let (sum, body) = body.split_at(CHECK);
    if sum != check(body) {
        return Err(Undecodable("the check does not match"));
    }
    let wire = Wire::decode(body).map_err(|_| Undecodable("not the entry's message"))?;
    let items = wire
        .items
        .iter()
        .map(|item| {
            Ok(AuditedItem {
                outcome: outcome(&item.outcome).ok_or(Undecodable("unknown item outcome"))?,
                code: match item.code {
                    0..=16 => Code::from_i32(item.code),
                    _ => return Err(Undecodable("item code out of range")),
                },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcome = outcome(&wire.outcome).ok_or(Undecodable("unknown outcome"))?;
    let status = match wire.status_member.as_deref() {
        None => None,
        Some(member) => Some(
            STATUS
                .members
                .iter()
                .copied()
                .find(|m| *m == member)
                .ok_or(Undecodable("unknown status member"))?,
        ),
    };
    let note_bytes = match wire.note_bytes {
        None => None,
        Some(n) => Some(usize::try_from(n).map_err(|_| Undecodable("note length"))?),
    };
    let answer = if wire.ok {
        if wire.code != 0 || !wire.status_message.is_empty() || !wire.metadata.is_empty() {
            return Err(Undecodable("a success with a status"));
        }
        Ok(Answer {
            message: wire.message,
            request_id: wire.graph_request_id,
        })
    } else {
        let code = match wire.code {
            1..=16 => Code::from_i32(wire.code),
            _ => return Err(Undecodable("status code out of range")),
        };
        Err(Status::with_details_and_metadata(
            code,
            wire.status_message,
            wire.details,
            metadata_map(wire.metadata)?,
        ))
    };
    Ok(Remembered {
        answer,
        outcome,
        audited: Audited {
            task_id: wire.task_id,
            fields: wire.fields,
            status,
            note_bytes,
            items,
        },
    })
}

fn check(body: &[u8]) -> [u8; CHECK] {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let mut sum = [0; CHECK];
    sum.copy_from_slice(&digest.as_ref()[..CHECK]);
    sum
}

fn outcome(name: &str) -> Option<Outcome> {
    [
        Outcome::Applied,
        Outcome::NotApplied,
        Outcome::Unknown,
        Outcome::Validated,
    ]
    .into_iter()
    .find(|o| o.as_str() == name)
}

fn metadata_pairs(md: &MetadataMap) -> Vec<Pair> {
    md.iter()
        .filter_map(|entry| match entry {
            KeyAndValueRef::Ascii(key, value) => Some(Pair {
                key: key.as_str().to_owned(),
                value: Bytes::copy_from_slice(value.as_bytes()),
            }),
            KeyAndValueRef::Binary(key, value) => value.to_bytes().ok().map(|value| Pair {
                key: key.as_str().to_owned(),
                value,
            }),
        })
        .collect()
}

fn metadata_map(pairs: Vec<Pair>) -> Result<MetadataMap, Undecodable> {
    let mut md = MetadataMap::new();
    for Pair { key, value } in pairs {
        if key.ends_with("-bin") {
            let key = BinaryMetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| Undecodable("metadata key"))?;
            md.append_bin(key, BinaryMetadataValue::from_bytes(&value));
        } else {
            let key = AsciiMetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| Undecodable("metadata key"))?;
            let value = AsciiMetadataValue::try_from(value.as_ref())
                .map_err(|_| Undecodable("metadata value"))?;
            md.append(key, value);
        }
    }
    Ok(md)
}

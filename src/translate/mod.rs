//! Proto <-> Graph JSON. Pure functions, no I/O: everything here is decided by
//! its inputs, so it is tested exhaustively without a network.

mod apply;
pub mod batch;
mod confirm;
pub mod create;
pub mod enums;
mod error;
pub mod fields;
pub mod filter;
pub mod ids;
pub mod list;
pub mod read;
pub mod status;
pub mod timestamp;
pub mod update;

#[cfg(test)]
mod tests;

pub use apply::apply_change;
pub use batch::{batch_ids, batch_items, ItemFields, MAX_BATCH_IDS};
pub use confirm::holds_patch;
pub use create::{create_request, created_task, CreateRequest};
pub use error::{FieldViolation, InvalidRequest, ResponseError, Unexpected, MAX_VIOLATIONS};
pub use ids::{is_guid, IdSegment, EXAMPLE_ID, MAX_ID_BYTES, NOT_A_GUID};
pub use list::{list_query, next_page_token};
pub use read::{
    page_from_graph, task_answer, task_from_graph, DecodedPage, DecodedTask, UnknownEnumValue,
};
pub use status::{status_change, StatusChange, MAX_NOTE_BYTES};
pub use update::{patch_request, PatchRequest};

/// The `@odata.type` of the one task type this gateway serves.
pub const ODATA_TYPE: &str = "#microsoft.graph.securityConfigurationTask";

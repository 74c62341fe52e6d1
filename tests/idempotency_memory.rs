//! What one entry of the `request_id` store costs in memory, measured with a
//! counting allocator (which is why this is a test binary of its own): the
//! store filled to `GATEWAY_IDEMPOTENCY_MAX_ENTRIES`'s default with typical
//! Update answers, each its own copy, as the gateway holds them.
//!
//! Run with `--nocapture` to see the figure; README.md and the setting's doc
//! comment quote it. The bound asserted is generous on purpose: it catches
//! an entry that grows by a multiple, not by a few bytes.

use bytes::Bytes;
use graph_grpc_gateway::audit::Outcome;
use graph_grpc_gateway::config::Retention;
use graph_grpc_gateway::idempotency::{
    Answer, Audited, Begin, Fingerprint, Idempotency, Key, Remembered,
};
use graph_grpc_gateway::methods::Method;
use graph_grpc_gateway::proto::v1::{
    DeviceAppManagementTaskCategory, DeviceAppManagementTaskPriority,
    DeviceAppManagementTaskStatus, KeyValuePair, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

/// Bytes allocated and not yet freed, by anyone in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; the
// counter only observes the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A securityConfigurationTask as Graph answers an update of it, with text
/// of the lengths Intune's tasks carry.
fn typical_task() -> SecurityConfigurationTask {
    SecurityConfigurationTask {
        id: "7c1e9d2a-4b3f-4a5e-8d6c-1f2e3a4b5c02".into(),
        display_name: Some("Turn on Microsoft Defender Firewall for all profiles".into()),
        description: Some(
            "Devices in the Finance group have the firewall off for the public profile.".into(),
        ),
        created_date_time: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 577_596_500,
        }),
        due_date_time: Some(prost_types::Timestamp {
            seconds: 1_702_000_000,
            nanos: 0,
        }),
        category: DeviceAppManagementTaskCategory::AdvancedThreatProtection as i32,
        priority: DeviceAppManagementTaskPriority::High as i32,
        creator: Some("secops@contoso.com".into()),
        creator_notes: Some("Raised from the Defender exposure score review.".into()),
        assigned_to: Some("intune-admins@contoso.com".into()),
        status: DeviceAppManagementTaskStatus::Active as i32,
        applicable_platform: 1,
        endpoint_security_policy: 1,
        endpoint_security_policy_profile: 1,
        insights: Some("12 devices are exposed to network attacks on public networks.".into()),
        managed_device_count: Some(12),
        intended_settings: vec![
            KeyValuePair {
                name: "EnableFirewallPublicProfile".into(),
                value: Some("true".into()),
            },
            KeyValuePair {
                name: "DefaultInboundActionPublicProfile".into(),
                value: Some("block".into()),
            },
        ],
    }
}

#[test]
fn an_entry_holding_a_typical_task_answer_takes_well_under_two_kib() {
    let entries = Retention::default().max_entries;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let task = typical_task();
    let message_bytes = task.encoded_len();
    let fingerprint = Fingerprint::of(&UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(task.clone()),
        ..Default::default()
    });
    // One caller name, shared by its entries as the gateway shares it.
    let caller: Arc<str> = "patcher".into();
    let store = Idempotency::new(Retention::default().window, entries);

    let before = LIVE.load(Ordering::Relaxed);
    runtime.block_on(async {
        for n in 0..entries {
            let key = Key {
                caller: caller.clone(),
                method: Method::Update,
                request_id: uuid::Uuid::from_u128(n as u128),
            };
            let Begin::Lead(lease) = store.begin(key, fingerprint).await else {
                panic!("entry {n} is new");
            };
            lease.remember(Remembered {
                answer: Ok(Answer {
                    message: Bytes::from(task.encode_to_vec()),
                    request_id: Some(uuid::Uuid::from_u128(!(n as u128)).to_string()),
                }),
                outcome: Outcome::Applied,
                audited: Audited {
                    fields: "display_name".into(),
                    ..Audited::default()
                },
            });
        }
    });
    let held = LIVE.load(Ordering::Relaxed) - before;
    assert_eq!(store.len(), entries);

    let per_entry = held as f64 / entries as f64;
    let bookkeeping = per_entry - message_bytes as f64 - 36.0;
    println!(
        "request_id store: {entries} entries hold {:.1} MiB: {per_entry:.0} bytes per entry, \
         of which {message_bytes} are the encoded task, 36 Graph's request-id and \
         {bookkeeping:.0} the store's own",
        held as f64 / (1024.0 * 1024.0)
    );
    assert!(per_entry < 2048.0, "{per_entry:.0} bytes per entry");
    // Everything is given back.
    drop(store);
    assert!(LIVE.load(Ordering::Relaxed) - before < 4096);
}

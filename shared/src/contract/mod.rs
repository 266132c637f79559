//! The port contract suite: the behaviour every adapter (SQLite, DynamoDB/SQS) must show.
//!
//! Each check takes a freshly made [`Backend`] (empty stores, empty queue) and panics with a
//! message naming the broken rule. [`contract_tests!`](crate::contract_tests) turns the whole
//! suite into one `#[tokio::test]` per check for a given constructor.
//!
//! Records must round-trip exactly: timestamps to the nanosecond, bodies byte for byte. Queue
//! checks only rely on what SQS guarantees: whole-second delays and visibility timeouts, receive
//! calls that may return fewer messages than are visible (or long-poll), and waits of several
//! seconds through polling loops rather than tight timing asserts.

mod bulk;
mod health;
mod intake;
mod partial;
mod queue;
mod rate;
mod stores;

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};

use crate::domain::{new_id, Attempt, DeliveryState, Event, Secret, Source, Subscription};
use crate::ports::Backend;
use crate::verify::VerifyConfig;

pub use bulk::*;
pub use health::*;
pub use intake::*;
pub use partial::*;
pub use queue::*;
pub use rate::*;
pub use stores::*;

/// Expands to one multi-threaded `#[tokio::test]` per contract check. The argument is called with
/// no arguments and awaited for each test; it yields a [`Backend`](crate::ports::Backend) or a
/// `(Backend, guard)` pair (see [`Fixture`]). The calling crate needs `tokio` with the `macros`
/// and `rt-multi-thread` features. Invoke it inside a `mod` to run it for several adapters.
///
/// ```ignore
/// async fn fresh_backend() -> hookhub::ports::Backend { /* … */ }
/// hookhub::contract_tests!(fresh_backend);
/// ```
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            sources_crud,
            subscriptions_crud,
            subscription_disable_in_place,
            health_outcomes_are_atomic,
            failing_past_disable_after_disables,
            rate_limit_reserves_slots,
            event_insert_and_get_byte_exact,
            event_duplicate_id_is_conflict,
            event_dedup_within_window,
            event_listing_and_paging,
            event_listing_returns_summaries,
            unenqueued_sweep,
            attempts_by_event_and_subscription,
            attempt_rerecord_is_idempotent,
            attempts_paged_by_subscription,
            planned_attempts_are_found_once_made,
            events_paged_by_id_range,
            queue_send_receive_ack,
            queue_delay_hides_message,
            queue_visibility_timeout_redelivers,
            queue_stale_receipt_ack_is_noop,
            queue_batch_send,
            queue_dead_letter_removes_message,
            queue_extend_keeps_a_message_hidden,
            concurrent_inserts_same_dedup_key_yield_one_event,
            intake_stores_enqueues_and_deduplicates,
            intake_completes_an_unenqueued_original,
            confirm_sent_finishes_the_store,
            intake_sent_first_stores_enqueues_and_deduplicates,
            stored_plans_find_their_attempts,
            minted_event_ids_are_fresh_and_listed,
        );
    };
    (@each $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                // Bound to a name so a guard in the fixture lives until the check is over.
                let fixture = ($make)().await;
                $crate::contract::$check($crate::contract::Fixture::backend(&fixture)).await;
            }
        )+
    };
}

/// What a contract constructor may return: the backend, or the backend with a guard that must
/// outlive the test (a temporary directory, a container handle, a table-dropping cleanup).
pub trait Fixture {
    fn backend(&self) -> &Backend;
}

impl Fixture for Backend {
    fn backend(&self) -> &Backend {
        self
    }
}

impl<G> Fixture for (Backend, G) {
    fn backend(&self) -> &Backend {
        &self.0
    }
}

/// A source that needs no verification secrets.
pub fn sample_source(id: &str) -> Source {
    Source {
        id: id.to_owned(),
        verify: VerifyConfig::None,
        dedup_config: None,
        created_at: Utc::now(),
    }
}

/// An enabled catch-all subscription with a fresh id.
pub fn sample_subscription() -> Subscription {
    let now = Utc::now();
    Subscription {
        label: Some("contract".to_owned()),
        ..Subscription::new(
            new_id("sub"),
            "https://example.com/hooks",
            Secret::new("whsec_contract"),
            now,
        )
    }
}

/// A JSON event received now, not yet enqueued, with a fresh id.
pub fn sample_event(source_id: &str, dedup_key: &str) -> Event {
    let headers = BTreeMap::from([
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "contract/1".to_owned()),
    ]);
    Event {
        id: new_id("evt"),
        source_id: source_id.to_owned(),
        event_type: "order.created".to_owned(),
        received_at: Utc::now(),
        content_type: Some("application/json".to_owned()),
        dedup_key: dedup_key.to_owned(),
        headers,
        body: Bytes::from_static(br#"{"id":"ord_1","total":42}"#),
        enqueued: false,
    }
}

/// `len` random bytes, which deflate cannot shrink: a body too large to travel in its dispatch
/// task even packed.
pub fn incompressible_body(len: usize) -> Bytes {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

/// A failed attempt (HTTP 500) scheduled for retry.
pub fn sample_attempt(event_id: &str, subscription_id: &str, attempt: u32) -> Attempt {
    let started_at = Utc::now();
    Attempt {
        event_id: event_id.to_owned(),
        subscription_id: subscription_id.to_owned(),
        attempt,
        url: "https://example.com/hooks".to_owned(),
        started_at,
        duration_ms: 120,
        status_code: Some(500),
        error: None,
        response_excerpt: Some("internal error".to_owned()),
        state: DeliveryState::Retrying,
        next_attempt_at: Some(started_at + TimeDelta::seconds(30)),
    }
}

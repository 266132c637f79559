//! The composed intake: [`StoreThenEnqueue`] and the [`Backend`] constructors that wire it in.
//! Kept apart from [`crate::ports`] (the traits) and [`crate::ingest`] (the receiver service) so
//! neither depends on the other through it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Event, InlineEvent, Task};
use crate::ports::{
    AttemptLog, Backend, EventStore, InsertOutcome, Intake, SourceStore, StoreError, StoreResult,
    Stored, SubscriptionStore, TaskQueue,
};

/// The [`Intake`] of adapters that keep events and the queue apart (DynamoDB and SQS): insert
/// (deduplicated), send the task, then mark the event enqueued. A failure after the insert leaves
/// the event unenqueued, for the provider's retry (a duplicate, enqueued then) or the sweep.
pub struct StoreThenEnqueue {
    events: Arc<dyn EventStore>,
    queue: Arc<dyn TaskQueue>,
}

impl StoreThenEnqueue {
    pub fn new(events: Arc<dyn EventStore>, queue: Arc<dyn TaskQueue>) -> Self {
        Self { events, queue }
    }
}

#[async_trait]
impl Intake for StoreThenEnqueue {
    async fn store_and_enqueue(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<Stored> {
        let (stored, duplicate) = match self.events.insert_event(event, dedup_window).await? {
            InsertOutcome::Inserted => (event.clone(), false),
            InsertOutcome::Duplicate(original) if original.enqueued => {
                return Ok(Stored {
                    event_id: original.id,
                    duplicate: true,
                })
            }
            // The original is what was stored, so it is what gets dispatched.
            InsertOutcome::Duplicate(original) => (*original, true),
        };
        enqueue_dispatch(&*self.events, &*self.queue, &stored).await?;
        Ok(Stored {
            event_id: stored.id,
            duplicate,
        })
    }
}

/// The largest dispatch task that carries its event inline, in bytes of JSON. SQS bills each
/// 64 KB chunk of a request as one request and the dispatcher receives batches of 10, so at
/// most 6 KB per message keeps a full receive batch in one chunk. Larger events go by
/// reference and are read back with a consistent `GetItem`, 1 RRU per 4 KB of item (17 for a
/// 64 KiB body, as `hookhub-bench cost` measures).
pub const INLINE_TASK_MAX_BYTES: usize = 6_000;

/// Whether a dispatch task of `task_len` bytes may carry its event inline.
pub fn fits_inline(task_len: usize) -> bool {
    task_len <= INLINE_TASK_MAX_BYTES
}

/// The dispatch task for a stored event: the event inline when the task stays within
/// [`INLINE_TASK_MAX_BYTES`], else by reference.
pub fn dispatch_task(event: &Event) -> Task {
    let inline = Task::Dispatch {
        event_id: event.id.clone(),
        event: Some(InlineEvent::new(event)),
    };
    if fits_inline(inline.to_json().len()) {
        inline
    } else {
        Task::Dispatch {
            event_id: event.id.clone(),
            event: None,
        }
    }
}

/// Sends the stored `event`'s dispatch task, then marks it enqueued.
pub(crate) async fn enqueue_dispatch(
    events: &dyn EventStore,
    queue: &dyn TaskQueue,
    event: &Event,
) -> Result<(), StoreError> {
    queue.send(&dispatch_task(event), Duration::ZERO).await?;
    events.mark_enqueued(&event.id).await
}

impl Backend {
    /// A backend from one adapter per port; the intake is composed from `events` and `queue`.
    pub fn from_parts(
        sources: Arc<dyn SourceStore>,
        subscriptions: Arc<dyn SubscriptionStore>,
        events: Arc<dyn EventStore>,
        attempts: Arc<dyn AttemptLog>,
        queue: Arc<dyn TaskQueue>,
    ) -> Self {
        let intake = Arc::new(StoreThenEnqueue::new(events.clone(), queue.clone()));
        Self {
            sources,
            subscriptions,
            events,
            attempts,
            queue,
            intake,
        }
    }

    /// One adapter value implementing every port (the SQLite database, for example).
    pub fn from_single<T>(adapter: Arc<T>) -> Self
    where
        T: SourceStore + SubscriptionStore + EventStore + AttemptLog + TaskQueue + 'static,
    {
        Self::from_parts(
            adapter.clone(),
            adapter.clone(),
            adapter.clone(),
            adapter.clone(),
            adapter,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_event() -> Event {
        Event {
            id: crate::domain::new_id("evt"),
            source_id: "github".into(),
            event_type: "push".into(),
            received_at: chrono::Utc::now(),
            content_type: Some("application/json".into()),
            dedup_key: "id:d1".into(),
            headers: Default::default(),
            body: bytes::Bytes::from_static(br#"{"ref":"main"}"#),
            enqueued: false,
        }
    }

    #[test]
    fn the_limit_is_inclusive() {
        for (len, fits) in [
            (0, true),
            (5_999, true),
            (6_000, true),
            (6_001, false),
            (64 * 1024, false),
        ] {
            assert_eq!(fits_inline(len), fits, "{len} bytes");
        }
    }

    /// A sample event whose inline dispatch task is exactly `len` bytes (padded through one
    /// header, whose value JSON writes as is).
    fn event_with_inline_task_of(len: usize) -> Event {
        let mut event = sample_event();
        event.headers.insert("x-pad".into(), String::new());
        let base = Task::Dispatch {
            event_id: event.id.clone(),
            event: Some(InlineEvent::new(&event)),
        }
        .to_json()
        .len();
        event.headers.insert("x-pad".into(), "p".repeat(len - base));
        event
    }

    #[test]
    fn events_inline_up_to_the_limit_and_by_reference_beyond() {
        for (len, inline) in [
            (1_000, true),
            (5_999, true),
            (6_000, true),
            (6_001, false),
            (7_000, false),
        ] {
            let event = event_with_inline_task_of(len);
            match dispatch_task(&event) {
                Task::Dispatch {
                    event_id,
                    event: carried,
                } => {
                    assert_eq!(event_id, event.id);
                    assert_eq!(carried.is_some(), inline, "task of {len} bytes");
                    if let Some(carried) = carried {
                        assert_eq!(carried.event().body, event.body);
                        assert_eq!(carried.event().headers, event.headers);
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_64_kib_body_goes_by_reference() {
        let mut event = sample_event();
        event.body = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
        let task = dispatch_task(&event);
        assert!(task.to_json().len() < 200, "{task:?}");
    }
}

//! The composed intake: [`StoreThenEnqueue`] and the [`Backend`] constructors that wire it in.
//! Kept apart from [`crate::ports`] (the traits) and [`crate::ingest`] (the receiver service) so
//! neither depends on the other through it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Event, InlineEvent, SentFirst, Task};
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
    fn new_event_id(&self) -> String {
        self.events.new_event_id()
    }

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

/// The AWS [`Intake`]: the queue is the outbox. An event whose task carries it inline goes on
/// the queue first (flagged [`SentFirst`]), then is stored (deduplicated) already marked
/// enqueued: no sweep index entry to enter and leave, no enqueued mark to write. Whatever the
/// store leaves undone (a 503, a crash, a request still storing when the task is taken) the
/// dispatcher finishes before delivering ([`EventStore::confirm_sent`]), and the task of a
/// duplicate is dropped there. An event too large to travel inline is stored, sent and
/// marked as [`StoreThenEnqueue`] does.
pub struct SendThenStore {
    events: Arc<dyn EventStore>,
    queue: Arc<dyn TaskQueue>,
}

impl SendThenStore {
    pub fn new(events: Arc<dyn EventStore>, queue: Arc<dyn TaskQueue>) -> Self {
        Self { events, queue }
    }
}

#[async_trait]
impl Intake for SendThenStore {
    fn new_event_id(&self) -> String {
        self.events.new_event_id()
    }

    async fn store_and_enqueue(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<Stored> {
        let Some(task) = sent_first_task(event, dedup_window) else {
            // Too large to travel: the task cannot stand in for the store.
            return StoreThenEnqueue::new(self.events.clone(), self.queue.clone())
                .store_and_enqueue(event, dedup_window)
                .await;
        };
        self.queue.send(&task, Duration::ZERO).await?;
        let sent = Event {
            enqueued: true,
            ..event.clone()
        };
        // A failure from here on is a 503 all the same: the provider's retry then gets the
        // duplicate answer, or wins the key if this copy never got it (the dispatcher drops
        // whichever task does not hold the key).
        match self.events.insert_event(&sent, dedup_window).await? {
            InsertOutcome::Inserted => Ok(Stored {
                event_id: event.id.clone(),
                duplicate: false,
            }),
            InsertOutcome::Duplicate(original) => {
                if !original.enqueued {
                    // Stored the other way (too large to travel) and never enqueued.
                    enqueue_dispatch(&*self.events, &*self.queue, &original).await?;
                }
                Ok(Stored {
                    event_id: original.id,
                    duplicate: true,
                })
            }
        }
    }
}

/// How long a receiver can possibly still be storing an event it sent first: the receiver
/// function's timeout (29 s) and the SDK's budget of 30 s per call are well inside. Past this
/// and past the dedup window, the dispatcher's check no longer stores a missing event itself
/// ([`EventStore::confirm_sent`]).
pub const RECEIVER_MAX: Duration = Duration::from_secs(300);

/// The largest dispatch task that carries its event inline as it is, in bytes of JSON. SQS
/// bills each 64 KB chunk of a request as one request and the dispatcher receives batches of
/// 10, so at most 6 KB per message keeps a full receive batch in one chunk. Larger events
/// travel packed ([`PACKED_TASK_MAX_BYTES`]).
pub const INLINE_TASK_MAX_BYTES: usize = 6_000;

/// The largest dispatch task that carries its event packed ([`InlineEvent::packed`]), in
/// bytes of JSON: one 64 KB SQS chunk for its send. A realistic 64 KiB JSON body packs to
/// ~16 KB of task; only bodies that barely compress (or over ~200 KiB of JSON) go by reference.
/// A receive of 10 such messages is billed by its chunks, up to 10 requests, still far below
/// what the older way costs a large event (its item rewritten whole by the enqueued mark, then
/// read back: 14 WRU + 4 RRU for 64 KiB).
pub const PACKED_TASK_MAX_BYTES: usize = 60_000;

/// Whether a dispatch task of `task_len` bytes may carry its event inline.
pub fn fits_inline(task_len: usize) -> bool {
    task_len <= INLINE_TASK_MAX_BYTES
}

/// How a dispatch task carries its event inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InlineForm {
    /// Headers as a map, body in base64 ([`InlineEvent::new`]).
    Plain,
    /// Headers and body deflated together ([`InlineEvent::packed`]).
    Packed,
}

/// The form of a dispatch task, from the lengths of its plain and packed forms: plain when it
/// fits [`INLINE_TASK_MAX_BYTES`] (no compression to pay), else packed within
/// [`PACKED_TASK_MAX_BYTES`], else by reference (`None`).
pub fn inline_form(plain_len: usize, packed_len: impl FnOnce() -> usize) -> Option<InlineForm> {
    if fits_inline(plain_len) {
        Some(InlineForm::Plain)
    } else if packed_len() <= PACKED_TASK_MAX_BYTES {
        Some(InlineForm::Packed)
    } else {
        None
    }
}

/// The dispatch task carrying `event` (plain or packed), if it fits.
fn inline_task(event: &Event, sent_first: Option<SentFirst>) -> Option<Task> {
    let task = |inline| Task::Dispatch {
        event_id: event.id.clone(),
        event: Some(inline),
        sent_first,
    };
    let plain = task(InlineEvent::new(event));
    let packed = || task(InlineEvent::packed(event));
    let plain_len = plain.to_json().len();
    // Packed twice (measured, then sent) only for events over ~3.5 KiB: ~1.4 ms per 64 KiB.
    match inline_form(plain_len, || packed().to_json().len())? {
        InlineForm::Plain => Some(plain),
        InlineForm::Packed => Some(packed()),
    }
}

/// The dispatch task for a stored event: the event inline when it fits (plain or packed),
/// else by reference.
pub fn dispatch_task(event: &Event) -> Task {
    inline_task(event, None).unwrap_or_else(|| Task::Dispatch {
        event_id: event.id.clone(),
        event: None,
        sent_first: None,
    })
}

/// The dispatch task [`SendThenStore`] sends ahead of the store, when the event fits inline.
pub fn sent_first_task(event: &Event, dedup_window: Duration) -> Option<Task> {
    inline_task(event, Some(SentFirst::new(dedup_window)))
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
            sent_first: None,
        }
        .to_json()
        .len();
        event.headers.insert("x-pad".into(), "p".repeat(len - base));
        event
    }

    #[test]
    fn the_form_is_plain_then_packed_then_by_reference() {
        let never = || -> usize { panic!("packed only when plain does not fit") };
        assert_eq!(inline_form(0, never), Some(InlineForm::Plain));
        assert_eq!(inline_form(6_000, never), Some(InlineForm::Plain));
        for (plain, packed, form) in [
            (6_001, 1_000, Some(InlineForm::Packed)),
            (90_000, 60_000, Some(InlineForm::Packed)),
            (90_000, 60_001, None),
            (300_000, 250_000, None),
        ] {
            assert_eq!(inline_form(plain, || packed), form, "{plain}/{packed}");
        }
    }

    /// The wire form of `dispatch_task(event)`: "plain", "packed" or "reference".
    fn form_of(event: &Event) -> &'static str {
        let task = dispatch_task(event);
        let json: serde_json::Value = serde_json::from_str(&task.to_json()).unwrap();
        let Task::Dispatch {
            event_id,
            event: carried,
            ..
        } = task
        else {
            panic!("{task:?}")
        };
        assert_eq!(event_id, event.id);
        let Some(carried) = carried else {
            return "reference";
        };
        assert_eq!(carried.event().body, event.body);
        assert_eq!(carried.event().headers, event.headers);
        if json["event"]["packed"].is_string() {
            "packed"
        } else {
            "plain"
        }
    }

    #[test]
    fn events_inline_plain_up_to_the_limit_then_packed_then_by_reference() {
        for (len, form) in [
            (1_000, "plain"),
            (5_999, "plain"),
            (6_000, "plain"),
            (6_001, "packed"),
            (70_000, "packed"),
        ] {
            assert_eq!(
                form_of(&event_with_inline_task_of(len)),
                form,
                "{len} bytes"
            );
        }
        // A body that does not compress and would not fit one SQS chunk goes by reference.
        let mut noise = sample_event();
        noise.body = (0..48 * 1024).map(|_| rand::random::<u8>()).collect();
        assert_eq!(form_of(&noise), "reference");
    }
}

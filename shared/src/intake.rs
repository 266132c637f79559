//! The composed intake: [`StoreThenEnqueue`] and the [`Backend`] constructors that wire it in.
//! Kept apart from [`crate::ports`] (the traits) and [`crate::ingest`] (the receiver service) so
//! neither depends on the other through it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Event, Task};
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
        let (event_id, duplicate) = match self.events.insert_event(event, dedup_window).await? {
            InsertOutcome::Inserted => (event.id.clone(), false),
            InsertOutcome::Duplicate(original) if original.enqueued => {
                return Ok(Stored {
                    event_id: original.id,
                    duplicate: true,
                })
            }
            InsertOutcome::Duplicate(original) => (original.id, true),
        };
        enqueue_dispatch(&*self.events, &*self.queue, &event_id).await?;
        Ok(Stored {
            event_id,
            duplicate,
        })
    }
}

pub(crate) async fn enqueue_dispatch(
    events: &dyn EventStore,
    queue: &dyn TaskQueue,
    event_id: &str,
) -> Result<(), StoreError> {
    let task = Task::Dispatch {
        event_id: event_id.to_string(),
    };
    queue.send(&task, Duration::ZERO).await?;
    events.mark_enqueued(event_id).await
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

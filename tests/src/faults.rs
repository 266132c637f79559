//! Fault injection: adapters that wrap real ones and fail on command, standing in for a table or
//! queue that is unreachable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookhub::domain::{Event, EventSummary, SentFirst, Task};
use hookhub::intake::SendThenStore;
use hookhub::ports::{
    Backend, Confirmed, EventQuery, EventRange, EventStore, InsertOutcome, ReceivedTask,
    StoreError, StoreResult, TaskQueue,
};

/// Switches that make the wrapped adapters fail.
#[derive(Default)]
pub struct Faults {
    pub queue_send_down: AtomicBool,
    pub event_insert_down: AtomicBool,
    pub mark_enqueued_down: AtomicBool,
}

impl Faults {
    pub fn set(flag: &AtomicBool, down: bool) {
        flag.store(down, Ordering::SeqCst);
    }

    /// Wraps the queue and event store of `backend`. The receiver then stores and enqueues in
    /// separate steps through them (the DynamoDB + SQS way), whatever `backend` would do, so
    /// each step can be failed on its own.
    pub fn wrap(self: &Arc<Self>, backend: Backend) -> Backend {
        Backend::from_parts(
            backend.sources,
            backend.subscriptions,
            Arc::new(FaultyEvents {
                inner: backend.events,
                faults: self.clone(),
            }),
            backend.attempts,
            Arc::new(FaultyQueue {
                inner: backend.queue,
                faults: self.clone(),
            }),
        )
    }
}

impl Faults {
    /// [`Faults::wrap`] with the send-first intake (the AWS one): the task goes on the queue
    /// before the event is stored, and the dispatcher's check finishes the store.
    pub fn wrap_sent_first(self: &Arc<Self>, backend: Backend) -> Backend {
        let wrapped = self.wrap(backend);
        let intake = Arc::new(SendThenStore::new(
            wrapped.events.clone(),
            wrapped.queue.clone(),
        ));
        wrapped.with_intake(intake)
    }
}

fn down(flag: &AtomicBool, what: &str) -> StoreResult<()> {
    if flag.load(Ordering::SeqCst) {
        Err(StoreError::Unavailable(format!(
            "{what} is down (injected)"
        )))
    } else {
        Ok(())
    }
}

struct FaultyQueue {
    inner: Arc<dyn TaskQueue>,
    faults: Arc<Faults>,
}

#[async_trait]
impl TaskQueue for FaultyQueue {
    async fn send(&self, task: &Task, delay: Duration) -> StoreResult<()> {
        down(&self.faults.queue_send_down, "queue")?;
        self.inner.send(task, delay).await
    }
    async fn send_batch(&self, tasks: &[(Task, Duration)]) -> StoreResult<()> {
        down(&self.faults.queue_send_down, "queue")?;
        self.inner.send_batch(tasks).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<ReceivedTask>> {
        self.inner.receive(max, visibility).await
    }
    async fn extend(&self, receipt: &str, visibility: Duration) -> StoreResult<()> {
        self.inner.extend(receipt, visibility).await
    }
    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        self.inner.ack(receipt).await
    }
    async fn dead_letter(&self, message: &ReceivedTask, reason: &str) -> StoreResult<()> {
        self.inner.dead_letter(message, reason).await
    }
}

struct FaultyEvents {
    inner: Arc<dyn EventStore>,
    faults: Arc<Faults>,
}

#[async_trait]
impl EventStore for FaultyEvents {
    fn new_event_id(&self) -> String {
        self.inner.new_event_id()
    }
    async fn insert_event(&self, event: &Event, window: Duration) -> StoreResult<InsertOutcome> {
        down(&self.faults.event_insert_down, "event table")?;
        self.inner.insert_event(event, window).await
    }
    async fn insert_sent(&self, event: &Event, sent: &SentFirst) -> StoreResult<InsertOutcome> {
        down(&self.faults.event_insert_down, "event table")?;
        self.inner.insert_sent(event, sent).await
    }
    async fn confirm_sent(&self, event: &Event, sent: &SentFirst) -> StoreResult<Confirmed> {
        down(&self.faults.event_insert_down, "event table")?;
        self.inner.confirm_sent(event, sent).await
    }
    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        self.inner.get_event(id).await
    }
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        self.inner.list_events(query).await
    }
    async fn mark_enqueued(&self, id: &str) -> StoreResult<()> {
        down(&self.faults.mark_enqueued_down, "event table")?;
        self.inner.mark_enqueued(id).await
    }
    async fn list_unenqueued(
        &self,
        received_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        self.inner.list_unenqueued(received_before, limit).await
    }
    async fn events_page(
        &self,
        range: &EventRange,
        limit: usize,
    ) -> StoreResult<Vec<EventSummary>> {
        self.inner.events_page(range, limit).await
    }
}

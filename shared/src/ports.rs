//! Ports: the small storage and queue traits the pipeline is written against.
//!
//! Each has an embedded adapter (SQLite) and an AWS adapter (DynamoDB, SQS); both must pass the
//! contract suite in [`crate::contract`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::health::ProbeClaim;
use crate::decision::rate::Slot;
use crate::decision::{DisabledReason, HealthChange, HealthOutcome, HealthPolicy};
use crate::domain::{
    Attempt, Event, EventSummary, SentFirst, Source, StoredPlan, Subscription, SubscriptionRoute,
    Task,
};

/// Failures of a store or queue. `Unavailable` is transient (the caller retries or answers 503);
/// the others are definite answers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait SourceStore: Send + Sync {
    /// Creates a source; `Conflict` when the id is taken.
    async fn create_source(&self, source: &Source) -> StoreResult<()>;
    /// Replaces an existing source; `NotFound` when there is none.
    async fn update_source(&self, source: &Source) -> StoreResult<()>;
    async fn get_source(&self, id: &str) -> StoreResult<Option<Source>>;
    /// All sources, ordered by id.
    async fn list_sources(&self) -> StoreResult<Vec<Source>>;
    /// Returns whether a source was deleted.
    async fn delete_source(&self, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Creates a subscription; `Conflict` when the id is taken.
    async fn create_subscription(&self, subscription: &Subscription) -> StoreResult<()>;
    /// Replaces an existing subscription; `NotFound` when there is none.
    async fn update_subscription(&self, subscription: &Subscription) -> StoreResult<()>;
    async fn get_subscription(&self, id: &str) -> StoreResult<Option<Subscription>>;
    /// All subscriptions, ordered by id (creation order, ids being ULIDs).
    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>>;
    /// The id and filters of every subscription, ordered by id: what
    /// [`list_subscriptions`](Self::list_subscriptions) would give, read without the secrets
    /// (the receiver's grant names only these attributes). It may lag a write by a moment
    /// (DynamoDB: an eventually consistent read); its one use, planning, tolerates that. No
    /// default, so a wrapper decides.
    async fn list_subscription_routes(&self) -> StoreResult<Vec<SubscriptionRoute>>;
    async fn delete_subscription(&self, id: &str) -> StoreResult<bool>;
    /// Sets `enabled = false`, `disabled_reason` and `updated_at` of an existing subscription,
    /// leaving every other field as stored (a concurrent admin change is not overwritten).
    /// Says whether this call disabled it (of concurrent callers, one at most: the one reporting
    /// it); a missing subscription is not created.
    async fn disable_subscription(
        &self,
        id: &str,
        reason: DisabledReason,
        at: DateTime<Utc>,
    ) -> StoreResult<DisableOutcome>;
    /// Applies an attempt's outcome to the subscription's `health` atomically (concurrent
    /// outcomes and probe claims all count; [`Health::after`](crate::decision::Health::after) decides), disabling it with reason
    /// `failing` when the decision says so. Only `health` (and, when disabling, `enabled`,
    /// `disabled_reason`, `updated_at`) change. `None` when the subscription does not exist.
    async fn record_outcome(
        &self,
        id: &str,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<HealthChange>>;
    /// Claims the open circuit's probe atomically ([`Health::claim_probe`](crate::decision::Health::claim_probe)): of concurrent
    /// callers at most one gets `claimed`. `None` when the subscription does not exist.
    async fn claim_probe(
        &self,
        id: &str,
        now: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<ProbeClaim>>;
    /// Books a delivery slot under the subscription's rate limit (`rate` per second), atomically
    /// across processes: [`rate::reserve`](crate::decision::rate::reserve) decides on the stored
    /// state, and of concurrent callers each gets a slot of its own. `Slot::Later` books nothing.
    /// The state is kept apart from the subscription (no listing sees it, `updated_at` does not
    /// change) and only exists for subscriptions that have called this.
    async fn reserve_slot(
        &self,
        subscription_id: &str,
        rate: f64,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> StoreResult<Slot>;
}

/// Result of [`SubscriptionStore::disable_subscription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableOutcome {
    /// It was enabled, and this call disabled it.
    Disabled,
    /// It was disabled already; the new reason and time are recorded all the same.
    AlreadyDisabled,
    NotFound,
}

/// Result of a conditional event insert.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Inserted,
    /// An event with the same (source, dedup key) was received within the dedup window.
    Duplicate(Box<Event>),
}

/// What [`EventStore::confirm_sent`] found for an event whose task was sent before its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The event is stored and holds its dedup key: deliver it.
    Holder,
    /// Another event received within the dedup window holds the key (this one is a duplicate
    /// the receiver answered with that one's id, or a copy that lost the race): drop the task.
    /// Its own copy, if one was stored, has been removed.
    Superseded { original_id: String },
    /// Not stored, and too old to store safely: its dedup marker may have expired since, so
    /// storing it now could deliver a duplicate answered as one. Never acknowledged (the
    /// receiver answers 2xx only once it is stored): the task is kept on the dead-letter queue.
    Unverifiable,
}

/// Filter and page for listing events, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub source_id: Option<String>,
    /// Only events whose id sorts strictly before this one (the previous page's last id).
    pub before: Option<String>,
    pub limit: usize,
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// A new event id (`evt_<ULID>`, its time now). Adapters may choose among fresh ids, as the
    /// DynamoDB one does to keep an event in the same shard whatever the shard count becomes:
    /// every event an adapter stores is meant to have an id it minted (no default, so that a
    /// new adapter or wrapper decides).
    fn new_event_id(&self) -> String;
    /// Stores the event unless one with the same source and dedup key was stored less than
    /// `dedup_window` before `event.received_at`; in that case returns the original untouched.
    async fn insert_event(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<InsertOutcome>;
    /// [`insert_event`](Self::insert_event) of an event whose task went first
    /// ([`crate::intake::SendThenStore`]), with what the task says about it: its window, and the
    /// fan-out plan an adapter that keeps stored plans (DynamoDB) stores in the event's item.
    /// No default: a wrapper that dropped the plan would leave attempts the event cannot find.
    async fn insert_sent(&self, event: &Event, sent: &SentFirst) -> StoreResult<InsertOutcome>;
    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>>;
    /// Summaries (no headers or body) of the events matching `query`, newest first. Adapters
    /// read only the summary fields: a page of 256 KiB events must not load the bodies.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<EventSummary>>;
    /// Finishes the store of `event`, whose dispatch task was sent before the receiver stored it
    /// ([`crate::intake::SendThenStore`]), and says whether it is the one to deliver. The
    /// receiver may have stored it, stored it only partly, or not at all (it answered 503, or
    /// crashed, or is still storing it): whatever is missing is done here, with the insert's
    /// own dedup rule. Idempotent. Not stored past both the dedup window and
    /// [`RECEIVER_MAX`](crate::intake::RECEIVER_MAX): `Unverifiable`. A store made here
    /// includes `sent`'s plan, as [`insert_sent`](Self::insert_sent)'s would. The default suits
    /// adapters whose insert is atomic (a stored event always holds its key) and that keep no
    /// stored plans.
    async fn confirm_sent(&self, event: &Event, sent: &SentFirst) -> StoreResult<Confirmed> {
        let dedup_window = sent.window();
        if self.get_event(&event.id).await?.is_some() {
            return Ok(Confirmed::Holder);
        }
        let age = (Utc::now() - event.received_at)
            .to_std()
            .unwrap_or_default();
        if age >= dedup_window.max(crate::intake::RECEIVER_MAX) {
            return Ok(Confirmed::Unverifiable);
        }
        let stored = Event {
            enqueued: true,
            ..event.clone()
        };
        match self.insert_event(&stored, dedup_window).await? {
            InsertOutcome::Inserted => Ok(Confirmed::Holder),
            InsertOutcome::Duplicate(original) => Ok(Confirmed::Superseded {
                original_id: original.id,
            }),
        }
    }
    /// Records that the event's dispatch task is on the queue.
    async fn mark_enqueued(&self, id: &str) -> StoreResult<()>;
    /// Events received at or before `received_before` whose dispatch task was never confirmed
    /// enqueued (a crash or cancelled request between store and enqueue), oldest first.
    async fn list_unenqueued(
        &self,
        received_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;
    /// Summaries of the events (of one source, or all) whose id is in `(range.after,
    /// range.through]`, oldest first (ids are `evt_<ULID>`, so id order is receive order), at
    /// most `limit`. Bulk replay pages with it: pass the last id returned as the next `after`.
    async fn events_page(&self, range: &EventRange, limit: usize)
        -> StoreResult<Vec<EventSummary>>;
}

/// An id range of events for [`EventStore::events_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRange {
    pub source_id: Option<String>,
    /// Exclusive lower bound.
    pub after: String,
    /// Inclusive upper bound.
    pub through: String,
}

/// One page of [`AttemptLog::attempts_for_subscription_page`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttemptPage {
    pub attempts: Vec<Attempt>,
    /// Opaque: pass back to get the next page. `None` when the range is exhausted. A page may
    /// hold fewer than asked, even none, and still have a cursor (then the next page): read
    /// until the cursor is `None`.
    pub cursor: Option<String>,
}

/// How long after its planned time a planned attempt may start and still be recorded as planned
/// ([`AttemptLog::record_planned_attempt`]); one that starts later (a fan-out queued behind slow
/// deliveries) is recorded with [`AttemptLog::record_attempt`]. Pages by start time rely on it.
pub const PLANNED_START_MAX_LAG: Duration = Duration::from_secs(60);

/// One delivery a dispatch is about to attempt ([`AttemptLog::plan_attempts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedAttempt {
    pub subscription_id: String,
    pub attempt: u32,
}

#[async_trait]
pub trait AttemptLog: Send + Sync {
    async fn record_attempt(&self, attempt: &Attempt) -> StoreResult<()>;
    /// Announces the deliveries of one event a dispatch is about to attempt, before any of them
    /// is made, all planned at `planned_at`. An adapter that finds an event's attempts through
    /// a record apart from the attempts (DynamoDB) writes that record here once for all of
    /// them, and [`record_planned_attempt`](Self::record_planned_attempt) then writes each
    /// attempt alone. Default: nothing to do.
    async fn plan_attempts(
        &self,
        _event_id: &str,
        _planned_at: DateTime<Utc>,
        _planned: &[PlannedAttempt],
    ) -> StoreResult<()> {
        Ok(())
    }
    /// Records an attempt announced by [`plan_attempts`](Self::plan_attempts) (same event,
    /// subscription, number and `planned_at`) that started at most [`PLANNED_START_MAX_LAG`]
    /// after `planned_at`. Default: [`record_attempt`](Self::record_attempt).
    async fn record_planned_attempt(
        &self,
        attempt: &Attempt,
        _planned_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.record_attempt(attempt).await
    }
    /// The layout of this log's attempt keys when it finds an event's first attempts through a
    /// plan stored with the event ([`StoredPlan`]; DynamoDB: its attempt shard count), `None`
    /// when it keeps no such plans. The receiver stamps it on the plans it stores, and the
    /// dispatcher relies on a stored plan only when the stamp is its own log's: attempts it
    /// records under another layout would not be where the plan says. Default: `None`.
    fn stored_plan_layout(&self) -> Option<u32> {
        None
    }
    /// All attempts for an event, ordered by (subscription id, attempt number).
    async fn attempts_for_event(&self, event_id: &str) -> StoreResult<Vec<Attempt>>;
    /// [`attempts_for_event`](Self::attempts_for_event) for a dispatch that carries the event
    /// and the plan stored with it (when usable), so an adapter that would read the plan from
    /// the event's item need not. Default: `attempts_for_event`.
    async fn attempts_for_dispatch(
        &self,
        event: &Event,
        _plan: Option<&StoredPlan>,
    ) -> StoreResult<Vec<Attempt>> {
        self.attempts_for_event(&event.id).await
    }
    /// The attempts of one (event, subscription) pair, by attempt number. Default: filtered
    /// from [`attempts_for_event`](Self::attempts_for_event).
    async fn attempts_for_pair(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> StoreResult<Vec<Attempt>> {
        let mut attempts = self.attempts_for_event(event_id).await?;
        attempts.retain(|a| a.subscription_id == subscription_id);
        Ok(attempts)
    }
    /// The latest attempts for a subscription, newest first (attempts that started within
    /// [`PLANNED_START_MAX_LAG`] of each other may come in the order they were planned).
    async fn attempts_for_subscription(
        &self,
        subscription_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Attempt>>;
    /// A subscription's attempts that started within `[since, until]`, oldest first (as in
    /// [`attempts_for_subscription`](Self::attempts_for_subscription)), at most `limit`, after
    /// `cursor` (from the previous page; `None` for the first). Bulk recovery pages with it.
    async fn attempts_for_subscription_page(
        &self,
        subscription_id: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<AttemptPage>;
}

/// A message taken from the queue; invisible to other consumers until acked or until its
/// visibility timeout expires.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedTask {
    /// The raw message body: parsing is the consumer's job so a malformed message can be
    /// dead-lettered on its own.
    pub body: String,
    /// Opaque handle for `ack`, `dead_letter` and `release`.
    pub receipt: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Enqueues a task, invisible for `delay`. Adapters honour delays longer than their own
    /// maximum (e.g. by carrying a not-before time and re-sending).
    async fn send(&self, task: &Task, delay: Duration) -> StoreResult<()>;
    /// Enqueues several tasks at once (fan-out retries).
    async fn send_batch(&self, tasks: &[(Task, Duration)]) -> StoreResult<()>;
    /// Takes up to `max` visible messages, hiding each for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<ReceivedTask>>;
    /// Keeps a message being processed hidden for `visibility` from now (a lease extension, so
    /// work that outlives the visibility timeout does not run twice at once). `NotFound` when the
    /// receipt no longer holds the message (acked, or received again by another consumer).
    async fn extend(&self, receipt: &str, visibility: Duration) -> StoreResult<()>;
    /// Deletes a processed message.
    async fn ack(&self, receipt: &str) -> StoreResult<()>;
    /// Moves a message that can never be processed (malformed) to the dead-letter queue.
    async fn dead_letter(&self, message: &ReceivedTask, reason: &str) -> StoreResult<()>;
}

/// What the receiver needs of storage: a verified event stored (deduplicated) with its dispatch
/// task on the queue. [`StoreThenEnqueue`](crate::intake::StoreThenEnqueue) composes it from
/// [`EventStore`] and [`TaskQueue`] in three steps, the unconfirmed ones covered by the
/// unenqueued sweep; an adapter holding both in one database (SQLite) does it in one transaction.
#[async_trait]
pub trait Intake: Send + Sync {
    /// A new id for an event this intake will store ([`EventStore::new_event_id`]).
    fn new_event_id(&self) -> String;
    /// Stores `event` unless it duplicates one stored within `dedup_window`, and makes sure the
    /// stored event's dispatch task is on the queue: a duplicate whose original never got
    /// enqueued (an earlier failure) is enqueued now, which is how a provider's retry after a 503
    /// completes the work.
    async fn store_and_enqueue(&self, event: &Event, dedup_window: Duration)
        -> StoreResult<Stored>;
}

/// The outcome of [`Intake::store_and_enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The stored event: the new one, or the original of a duplicate.
    pub event_id: String,
    pub duplicate: bool,
}

/// The set of adapters a process runs on.
#[derive(Clone)]
pub struct Backend {
    pub sources: Arc<dyn SourceStore>,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub events: Arc<dyn EventStore>,
    pub attempts: Arc<dyn AttemptLog>,
    pub queue: Arc<dyn TaskQueue>,
    pub intake: Arc<dyn Intake>,
}

impl Backend {
    /// Replaces the composed intake with an adapter's own (an atomic one).
    pub fn with_intake(mut self, intake: Arc<dyn Intake>) -> Self {
        self.intake = intake;
        self
    }
}

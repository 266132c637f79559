//! The composed intake: [`StoreThenEnqueue`] and the [`Backend`] constructors that wire it in.
//! Kept apart from [`crate::ports`] (the traits) and [`crate::ingest`] (the receiver service) so
//! neither depends on the other through it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::{Event, InlineEvent, SentFirst, StoredPlan, SubscriptionRoute, Task};
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
    planner: Option<Planner>,
}

/// What [`SendThenStore::planning`] plans fan-outs with.
struct Planner {
    subscriptions: Arc<dyn SubscriptionStore>,
    layout: u32,
    /// When a read of the routes last failed or timed out ([`plan_read_paused`]).
    failed_at: std::sync::Mutex<Option<Instant>>,
}

/// How long the receiver waits for the subscriptions' routes (a cache hit is immediate; a miss
/// is one `Scan`) before it sends the task without a plan.
const PLAN_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed or timed-out read, how long planning pauses: a lasting failure (throttling, a
/// missing grant) then costs one failed read per pause, not one per webhook on the request path.
const PLAN_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether planning is paused at `now` after a failed read at `failed_at`.
fn plan_read_paused(failed_at: Option<Instant>, now: Instant) -> bool {
    failed_at.is_some_and(|at| now.saturating_duration_since(at) < PLAN_RETRY_AFTER)
}

/// The most subscriptions a plan stored with its event names. A stored plan saves the plan
/// record (1 WRU, $0.625 per million) but the dispatcher's check then reads each attempt it
/// names, found or not (1 RRU, $0.125 each), where an event without a plan record has nothing
/// to read: worth it up to four (`docs/aws-layout.md`, "Attempts").
pub const STORED_PLAN_MAX: usize = 4;

impl SendThenStore {
    pub fn new(events: Arc<dyn EventStore>, queue: Arc<dyn TaskQueue>) -> Self {
        Self {
            events,
            queue,
            planner: None,
        }
    }

    /// Also plans each event's fan-out at receipt, from `subscriptions` (a warm-process cache,
    /// as the dispatcher's), and stores the plan with the event when `attempts` keeps stored
    /// plans: the dispatcher then writes no plan record for those first attempts.
    pub fn planning(
        mut self,
        subscriptions: Arc<dyn SubscriptionStore>,
        attempts: &dyn AttemptLog,
    ) -> Self {
        self.planner = attempts.stored_plan_layout().map(|layout| Planner {
            subscriptions,
            layout,
            failed_at: std::sync::Mutex::new(None),
        });
        self
    }

    /// The plan stored with `event`: every subscription that wants it now, if there are a few
    /// ([`STORED_PLAN_MAX`]). Planning is an optimisation: a failed read plans nothing.
    async fn plan(&self, event: &Event) -> Option<StoredPlan> {
        let planner = self.planner.as_ref()?;
        let failed_at = || {
            // A panic elsewhere while holding it leaves a valid time.
            (planner.failed_at.lock()).unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if plan_read_paused(*failed_at(), Instant::now()) {
            return None;
        }
        let read = planner.subscriptions.list_subscription_routes();
        let error = match tokio::time::timeout(PLAN_READ_TIMEOUT, read).await {
            Ok(Ok(routes)) => return stored_plan(event, &routes, planner.layout),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {PLAN_READ_TIMEOUT:?}"),
        };
        *failed_at() = Some(Instant::now());
        tracing::warn!(
            event_id = %event.id,
            %error,
            pause_seconds = PLAN_RETRY_AFTER.as_secs(),
            "subscription routes unreadable: fan-outs not planned at receipt for a while"
        );
        None
    }
}

/// The plan of `event` over the subscriptions' `routes`: those that want it (disabled ones
/// too, as the dispatcher logs theirs as skipped), sorted; none when there are none or too
/// many.
pub fn stored_plan(event: &Event, routes: &[SubscriptionRoute], layout: u32) -> Option<StoredPlan> {
    let mut wanting: Vec<String> = routes
        .iter()
        .filter(|r| crate::dispatch::route_wants(r, event))
        .map(|r| r.id.clone())
        .collect();
    wanting.sort_unstable();
    wanting.dedup();
    (!wanting.is_empty() && wanting.len() <= STORED_PLAN_MAX).then_some(StoredPlan {
        subscriptions: wanting,
        layout,
    })
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
        let sent_first = SentFirst {
            plan: self.plan(event).await,
            ..SentFirst::new(dedup_window)
        };
        let Some(task) = sent_first_task(event, &sent_first) else {
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
        match self.events.insert_sent(&sent, &sent_first).await? {
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
        sent_first: sent_first.clone(),
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
pub fn sent_first_task(event: &Event, sent_first: &SentFirst) -> Option<Task> {
    inline_task(event, Some(sent_first.clone()))
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
    use crate::domain::Subscription;

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

    fn subscription(id: &str, sources: &[&str], types: &[&str], enabled: bool) -> Subscription {
        let mut s = Subscription::new(
            id,
            "https://example.com/hooks",
            crate::secret::Secret::new("whsec_test"),
            chrono::Utc::now(),
        );
        s.sources = sources.iter().map(|x| (*x).to_owned()).collect();
        s.event_types = types.iter().map(|x| (*x).to_owned()).collect();
        s.enabled = enabled;
        s
    }

    #[test]
    fn the_stored_plan_names_what_the_dispatcher_would_match() {
        let subscriptions = [
            subscription("sub_all", &[], &[], true),
            subscription("sub_gh_push", &["github"], &["push"], true),
            subscription("sub_gh_off", &["github"], &[], false),
            subscription("sub_stripe", &["stripe"], &[], true),
            subscription("sub_ops", &["hookhub"], &["subscription.*"], true),
            subscription("sub_two_types", &[], &["push", "issues"], true),
        ];
        let about_ops = crate::operational::operator_toggle("sub_ops", true, false)
            .unwrap()
            .to_event("evt_op".into(), chrono::Utc::now());
        let about_other = crate::operational::operator_toggle("sub_all", true, false)
            .unwrap()
            .to_event("evt_op2".into(), chrono::Utc::now());
        let mut issue = sample_event();
        issue.event_type = "issues".into();
        let routes: Vec<_> = subscriptions.iter().map(Subscription::route).collect();
        // (event, planned subscription ids)
        let cases: [(&Event, Option<&[&str]>); 4] = [
            (
                &sample_event(),
                Some(&["sub_all", "sub_gh_off", "sub_gh_push", "sub_two_types"]),
            ),
            (&issue, Some(&["sub_all", "sub_gh_off", "sub_two_types"])),
            // Operational events: only to those naming the source, never to their subject.
            (&about_ops, None),
            (&about_other, Some(&["sub_ops"])),
        ];
        for (event, want) in cases {
            let plan = stored_plan(event, &routes, 7);
            assert_eq!(
                plan.as_ref().map(|p| p.subscriptions.clone()),
                want.map(|ids| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()),
                "{} {}",
                event.source_id,
                event.event_type
            );
            assert!(plan.is_none_or(|p| p.layout == 7));
            for s in &subscriptions {
                assert_eq!(
                    crate::dispatch::route_wants(&s.route(), event),
                    crate::dispatch::wants(s, event),
                    "{} / {}",
                    s.id,
                    event.event_type
                );
            }
        }
        // Beyond a few subscriptions, no plan: a plan record is cheaper than the reads.
        let many: Vec<_> = (0..=STORED_PLAN_MAX)
            .map(|i| subscription(&format!("sub_{i}"), &[], &[], true).route())
            .collect();
        assert!(stored_plan(&sample_event(), &many, 7).is_none());
        assert_eq!(
            stored_plan(&sample_event(), &many[..STORED_PLAN_MAX], 7)
                .unwrap()
                .subscriptions
                .len(),
            STORED_PLAN_MAX
        );
    }

    #[test]
    fn planning_pauses_after_a_failed_read() {
        let now = Instant::now();
        let s = Duration::from_secs;
        for (failed, paused) in [
            (None, false),
            (Some(now), true),
            (now.checked_sub(s(29)), true),
            (now.checked_sub(s(30)), false),
            (now.checked_sub(s(600)), false),
            // A time after `now` (another thread's, read late): paused.
            (Some(now + s(1)), true),
        ] {
            assert_eq!(plan_read_paused(failed, now), paused, "{failed:?}");
        }
    }

    #[test]
    fn a_stored_plan_covers_first_attempts_of_the_subscriptions_it_names() {
        let plan = StoredPlan {
            subscriptions: vec!["sub_a".into(), "sub_c".into()],
            layout: 2,
        };
        for (sub, attempt, covered) in [
            ("sub_a", 1, true),
            ("sub_c", 1, true),
            ("sub_b", 1, false),
            ("sub_a", 2, false),
            ("sub_a", 0, false),
        ] {
            assert_eq!(plan.covers(sub, attempt), covered, "{sub} {attempt}");
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

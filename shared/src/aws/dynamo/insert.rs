//! The event insert without a transaction: the event item first, then (only for a real dedup
//! key) its dedup marker, each a conditional `PutItem`. A marker is only ever written after its
//! event is stored, so a duplicate answer always names a stored event; an event stored without
//! owning its marker (a crash between the two writes, or a lost race before its delete) is left
//! pending, and the unenqueued sweep finishes it ([`DynamoStore::settle_pending`]).
//! Layout and crash table: `docs/aws-layout.md`, "Insert and dedup".

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::event_item::{add_plan, event_item, DEDUP_KEY};
use super::names::*;
use super::{epoch_seconds, own_key, string_attr, DynamoStore, Item};
use crate::aws::sdk_error;
use crate::domain::{Event, SentFirst, StoredPlan};
use crate::intake::RECEIVER_MAX;
use crate::ports::{Confirmed, EventStore, InsertOutcome, StoreError, StoreResult};

/// Dedup markers live in the events table under this key prefix.
pub(super) const DEDUP_PREFIX: &str = "dedup#";
/// Rounds of claim-then-reread before the sweep leaves an event for its next run.
const CLAIM_ROUNDS: u32 = 3;

/// Which copies of an event a delete may remove.
#[derive(Debug, Clone, Copy)]
enum Loser<'a> {
    /// One stored before its task and never enqueued (`pending` still set).
    Pending,
    /// One sent first: a copy of this dedup key.
    OfKey(&'a str),
}

/// Who holds a dedup marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MarkerOwner {
    pub event_id: String,
    pub received_ns: i64,
}

/// What the sweep does with a pending event that should own a dedup marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settle {
    /// It owns the marker: enqueue it.
    Dispatch,
    /// No marker, or one whose window has passed for this event: take it, then decide again.
    Claim,
    /// Another event within the window holds the marker: this one lost the race (it was never
    /// acknowledged under its own id), so it is deleted.
    Delete,
    /// The marker is held by an event received a whole window or more after this one: not a
    /// duplicate of it, so this one is enqueued without the marker.
    DispatchUnmarked,
}

/// The sweep's decision for a pending event received at `received_ns` with `window`, given
/// its marker. Mirrors the insert's condition: a marker received at or before
/// `received_ns - window` has expired for this event.
pub(super) fn settle(
    event_id: &str,
    received_ns: i64,
    window: Duration,
    marker: Option<&MarkerOwner>,
) -> Settle {
    let window = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
    match marker {
        None => Settle::Claim,
        Some(owner) if owner.event_id == event_id => Settle::Dispatch,
        Some(owner) if owner.received_ns <= received_ns.saturating_sub(window) => Settle::Claim,
        Some(owner) if owner.received_ns >= received_ns.saturating_add(window) => {
            Settle::DispatchUnmarked
        }
        Some(_) => Settle::Delete,
    }
}

/// How long after receiving an event the dispatcher's check expects its receiver to be still
/// storing it, as a rule (two `PutItem`s take milliseconds): the check re-reads until then
/// rather than write in its place.
pub(super) const RECEIVER_GRACE: Duration = Duration::from_secs(2);

/// Whether the dispatcher's check, finding an event sent first not (yet) stored `age` after
/// its receipt, waits before re-read `round` (0-based), and how long: 50, 100, 200 ms, then
/// 400 ms at a time, never past [`RECEIVER_GRACE`]. `None`: the receiver is done or gone.
pub(super) fn wait_for_receiver(age: Duration, round: u32) -> Option<Duration> {
    if age >= RECEIVER_GRACE {
        return None;
    }
    let backoff = Duration::from_millis(50) * 2u32.pow(round.min(3));
    Some(backoff.min(RECEIVER_GRACE - age))
}

/// What the dispatcher's check does with a task sent before its event was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// The event holds its key: deliver it.
    Deliver,
    /// Another event within the window holds the key: delete this one's copy, drop the task.
    Supersede,
    /// No live marker and the marker is still the record of the window: insert the event
    /// (the receiver's own writes), then deliver or drop as the insert says.
    Claim,
    /// The marker can no longer tell (expired, or replaced by an event a window later), or a
    /// later event holds it: the event's own item decides. Stored (by its receiver, which
    /// deletes a duplicate's copy) → deliver; not stored → the task is kept on the dead-letter
    /// queue, as an event that was never acknowledged.
    IfStored,
}

/// The check's decision from the sweep's verdict on the marker ([`settle`]) and the event's
/// age. A task can arrive long after its event (retried through an outage, redriven from the
/// dead-letter queue): by then the marker may have expired or been replaced, and taking the
/// key again would deliver a duplicate that was answered as one.
pub(super) fn check(settled: Settle, age: Duration, window: Duration) -> Check {
    match settled {
        Settle::Dispatch => Check::Deliver,
        Settle::Delete => Check::Supersede,
        Settle::Claim if age < window.max(RECEIVER_MAX) => Check::Claim,
        Settle::Claim | Settle::DispatchUnmarked => Check::IfStored,
    }
}

/// Whether the event takes a dedup marker: `once:{id}` keys can match nothing, so they do not.
pub(super) fn takes_marker(event: &Event) -> bool {
    event
        .dedup_key
        .strip_prefix("once:")
        .is_none_or(|rest| rest != event.id)
}

impl DynamoStore {
    /// The insert; `plan` is stored in the event's item.
    pub(super) async fn put_event_then_marker(
        &self,
        event: &Event,
        window: Duration,
        plan: Option<&StoredPlan>,
    ) -> StoreResult<InsertOutcome> {
        let marked = takes_marker(event);
        self.store_event_item(event, window, marked, plan).await?;
        if !marked {
            return Ok(InsertOutcome::Inserted);
        }
        let owner = match self.put_marker(event, window).await? {
            None => return Ok(InsertOutcome::Inserted),
            // The sweep (or the dispatcher) claimed it for this very event meanwhile.
            Some(owner) if owner.event_id == event.id => return Ok(InsertOutcome::Inserted),
            Some(owner) => owner,
        };
        // A duplicate: ours must never be dispatched. Should this delete fail, the event is
        // left for the sweep (pending) or the dispatcher's check of its task (sent first).
        self.delete_loser(event).await?;
        tracing::debug!(
            event_id = %event.id,
            original_id = %owner.event_id,
            "duplicate event: removed the copy stored before the dedup check"
        );
        match self.get_event(&owner.event_id).await? {
            Some(original) => Ok(InsertOutcome::Duplicate(Box::new(original))),
            None => Err(StoreError::Corrupt(format!(
                "dedup marker of {} names missing event {}",
                event.source_id, owner.event_id
            ))),
        }
    }

    /// [`EventStore::confirm_sent`](crate::ports::EventStore::confirm_sent): the marker says
    /// who holds the key (one read when the receiver finished its insert); whatever the
    /// receiver left undone is done with the insert's own conditional writes, so a receiver
    /// still storing the event and this check agree whoever writes first.
    pub(super) async fn confirm_sent_event(
        &self,
        event: &Event,
        sent_first: &SentFirst,
    ) -> StoreResult<Confirmed> {
        let window = sent_first.window();
        let plan = sent_first.plan.as_ref();
        let sent = Event {
            enqueued: true,
            ..event.clone()
        };
        let age = |e: &Event| (Utc::now() - e.received_at).to_std().unwrap_or_default();
        let get_event_item = || self.get_event_item(&sent.id);
        if !takes_marker(&sent) {
            // Nothing to deduplicate against: stored is enough, and storing it is safe until
            // its receiver is surely gone.
            if self
                .read_after_receiver(&sent, get_event_item)
                .await?
                .is_some()
            {
                return Ok(Confirmed::Holder);
            }
            if age(&sent) >= RECEIVER_MAX {
                return Ok(Confirmed::Unverifiable);
            }
            self.store_event_item(&sent, window, false, plan).await?;
            return Ok(Confirmed::Holder);
        }
        let marker_id = dedup_id(&sent.source_id, &sent.dedup_key);
        let owner = self
            .read_after_receiver(&sent, || self.marker(&marker_id))
            .await?;
        let settled = settle(&sent.id, nanos(sent.received_at), window, owner.as_ref());
        match (check(settled, age(&sent), window), owner) {
            (Check::Deliver, _) => Ok(Confirmed::Holder),
            (Check::Supersede, Some(owner)) => {
                self.delete_loser(&sent).await?;
                Ok(Confirmed::Superseded {
                    original_id: owner.event_id,
                })
            }
            (Check::Claim, _) => match self.put_event_then_marker(&sent, window, plan).await? {
                InsertOutcome::Inserted => Ok(Confirmed::Holder),
                InsertOutcome::Duplicate(original) => Ok(Confirmed::Superseded {
                    original_id: original.id,
                }),
            },
            (Check::IfStored | Check::Supersede, _) => match get_event_item().await? {
                Some(_) => Ok(Confirmed::Holder),
                None => Ok(Confirmed::Unverifiable),
            },
        }
    }

    /// `read` (the marker, or the event without one), re-read while it is missing and the
    /// receiver may still be writing it ([`wait_for_receiver`]): the queue hands a task over
    /// within milliseconds, and writing in its place costs the race's failed conditional
    /// writes, where a re-read costs one read unit.
    async fn read_after_receiver<T, F, Fut>(&self, sent: &Event, read: F) -> StoreResult<Option<T>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<Option<T>>>,
    {
        let mut round = 0;
        loop {
            let found = read().await?;
            let age = (Utc::now() - sent.received_at).to_std().unwrap_or_default();
            match (&found, wait_for_receiver(age, round)) {
                (None, Some(wait)) => {
                    tokio::time::sleep(wait).await;
                    round += 1;
                }
                _ => return Ok(found),
            }
        }
    }

    /// Puts the event's item, with `plan` (`Conflict` when its id holds another event; the
    /// same event already there is fine).
    async fn store_event_item(
        &self,
        event: &Event,
        window: Duration,
        marked: bool,
        plan: Option<&StoredPlan>,
    ) -> StoreResult<()> {
        let shard = super::events::event_shard(&event.id, self.list_shards);
        let mut item = event_item(
            event,
            marked.then_some(window),
            shard,
            self.expires_at(event.received_at),
        )?;
        if let Some(plan) = plan {
            add_plan(&mut item, plan);
        }
        item.insert(
            SOURCE_SHARD.into(),
            AttributeValue::S(super::shard_key(
                &event.source_id,
                super::stable_shard(&event.id, self.index_shards),
            )),
        );
        self.put_event(event, item).await
    }

    /// Deletes a duplicate's own copy. One stored the other way round is only deleted while
    /// still pending (never enqueued); one sent first is deleted outright: its task, already
    /// on the queue, is dropped by the dispatcher's check.
    async fn delete_loser(&self, event: &Event) -> StoreResult<()> {
        if !event.enqueued {
            self.delete_pending(&event.id).await?;
            return Ok(());
        }
        // Only a copy of this very key: an id can never hold anything else, but the condition
        // says so to the reader (and to the template test) as `pending` does for the other way.
        // Not there (never stored, or deleted already): nothing to do.
        self.delete_copy(&event.id, Loser::OfKey(&event.dedup_key))
            .await?;
        Ok(())
    }

    /// Deletes a duplicate's own copy `id` if it is still `copy`, under whichever key it has
    /// ([`DynamoStore::event_keys`]); says whether it did (not there, never stored or deleted
    /// already, or no longer such a copy: nothing to do). A failed condition without the old
    /// item means nothing under that key.
    async fn delete_copy(&self, id: &str, copy: Loser<'_>) -> StoreResult<bool> {
        for key in self.event_keys(id) {
            let request = self
                .client
                .delete_item()
                .table_name(&self.events)
                .set_key(Some(key))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let request = match copy {
                Loser::Pending => {
                    request.condition_expression(format!("attribute_exists({PENDING})"))
                }
                Loser::OfKey(dedup_key) => request
                    .condition_expression(format!("{DEDUP_KEY} = :dk"))
                    .expression_attribute_values(":dk", AttributeValue::S(dedup_key.to_owned())),
            };
            match request.send().await {
                Ok(_) => return Ok(true),
                Err(e) => match e.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                        if failed.item().is_some() {
                            return Ok(false);
                        }
                    }
                    _ => return Err(sdk_error("DeleteItem", e)),
                },
            }
        }
        Ok(false)
    }

    /// Puts a new event's item. The id being taken is `Conflict`, unless the item there is this
    /// very event (same source, dedup key and receive time to the nanosecond): an SDK retry of
    /// a put whose first try landed but whose answer was lost.
    async fn put_event(&self, event: &Event, item: Item) -> StoreResult<()> {
        let identity =
            |item: &Item| ["source_id", RECEIVED_SK, DEDUP_KEY].map(|name| item.get(name).cloned());
        let ours = identity(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.events)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match conditional_failure(&err) {
            Some(failed) if failed.item().map(identity) == Some(ours) => Ok(()),
            Some(_) => Err(StoreError::Conflict(format!("event {}", event.id))),
            None => Err(sdk_error("PutItem", err)),
        }
    }

    /// Puts the event's dedup marker unless a live one (within `window` before the event) is
    /// there; returns that one's owner. A marker is replaced once its window has passed.
    async fn put_marker(
        &self,
        event: &Event,
        window: Duration,
    ) -> StoreResult<Option<MarkerOwner>> {
        let marker_id = dedup_id(&event.source_id, &event.dedup_key);
        let received_ns = nanos(event.received_at);
        let window_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
        let mut marker = own_key(&marker_id);
        marker.extend([
            ("event_id".to_string(), AttributeValue::S(event.id.clone())),
            (
                "received_ns".to_string(),
                AttributeValue::N(received_ns.to_string()),
            ),
            // The marker only matters for the window; TTL removes it a while after (counted
            // from now too, as a back-dated event's window may still be running).
            (
                EXPIRES_AT.to_string(),
                epoch_seconds(
                    event.received_at.max(Utc::now()),
                    window + Duration::from_secs(3600),
                ),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.events)
            .set_item(Some(marker))
            .condition_expression("attribute_not_exists(id) OR received_ns <= :cutoff")
            .expression_attribute_values(
                ":cutoff",
                AttributeValue::N(received_ns.saturating_sub(window_ns).to_string()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        let Some(failed) = conditional_failure(&err) else {
            return Err(sdk_error("PutItem", err));
        };
        match failed.item() {
            Some(old) => marker_owner(old).map(Some),
            // The live marker was not returned: read it (it exists, the condition said so).
            None => match self.marker(&marker_id).await? {
                Some(owner) => Ok(Some(owner)),
                None => Err(StoreError::Unavailable(format!(
                    "dedup marker {marker_id} vanished during the insert"
                ))),
            },
        }
    }

    /// The marker's owner, read consistently; `None` when there is none.
    async fn marker(&self, marker_id: &str) -> StoreResult<Option<MarkerOwner>> {
        self.get_item(&self.events, own_key(marker_id))
            .await?
            .map(|item| marker_owner(&item))
            .transpose()
    }

    /// Deletes an event that was never enqueued (`pending` still set); says whether it did.
    async fn delete_pending(&self, id: &str) -> StoreResult<bool> {
        self.delete_copy(id, Loser::Pending).await
    }

    /// Finishes the insert protocol for a pending event the sweep found: whether it is to be
    /// enqueued. Events without a marker (`once:` keys) always are.
    pub(super) async fn settle_pending(
        &self,
        event: &Event,
        window: Option<Duration>,
    ) -> StoreResult<bool> {
        let Some(window) = window.filter(|_| takes_marker(event)) else {
            return Ok(true);
        };
        let marker_id = dedup_id(&event.source_id, &event.dedup_key);
        let mut owner = self.marker(&marker_id).await?;
        for _ in 0..CLAIM_ROUNDS {
            match settle(&event.id, nanos(event.received_at), window, owner.as_ref()) {
                Settle::Dispatch => return Ok(true),
                Settle::DispatchUnmarked => {
                    tracing::warn!(
                        event_id = %event.id,
                        "sweep: a later event holds the dedup marker; enqueueing this one unmarked"
                    );
                    return Ok(true);
                }
                Settle::Delete => {
                    self.delete_pending(&event.id).await?;
                    tracing::warn!(
                        event_id = %event.id,
                        "sweep: deleted a duplicate left behind by an interrupted insert"
                    );
                    return Ok(false);
                }
                Settle::Claim => {
                    owner = self.put_marker(event, window).await?;
                    if owner.is_none() {
                        tracing::warn!(
                            event_id = %event.id,
                            "sweep: claimed the dedup marker of an interrupted insert"
                        );
                        return Ok(true);
                    }
                }
            }
        }
        tracing::warn!(
            event_id = %event.id,
            "sweep: dedup marker still contested; left for the next sweep"
        );
        Ok(false)
    }
}

/// The typed conditional failure of a `PutItem` (with the old item when it was asked for).
fn conditional_failure<R>(
    err: &SdkError<PutItemError, R>,
) -> Option<&ConditionalCheckFailedException> {
    match err.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(failed)) => Some(failed),
        _ => None,
    }
}

fn marker_owner(item: &Item) -> StoreResult<MarkerOwner> {
    let received_ns = match item.get("received_ns") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    };
    Ok(MarkerOwner {
        event_id: string_attr(item, "event_id")?,
        received_ns: received_ns
            .ok_or_else(|| StoreError::Corrupt("dedup marker without received_ns".into()))?,
    })
}

pub(super) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// The dedup marker's key. Long provider keys are hashed to stay far below the 2 KB key limit.
pub(super) fn dedup_id(source_id: &str, dedup_key: &str) -> String {
    if dedup_key.len() <= 512 {
        format!("{DEDUP_PREFIX}{source_id}#{dedup_key}")
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(dedup_key.as_bytes());
        format!("{DEDUP_PREFIX}{source_id}#sha256:{}", hex::encode(digest))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_check_waits_for_a_young_receiver_then_stores_itself() {
        let ms = Duration::from_millis;
        for (age, round, wait) in [
            (ms(0), 0, Some(ms(50))),
            (ms(10), 1, Some(ms(100))),
            (ms(300), 2, Some(ms(200))),
            (ms(500), 3, Some(ms(400))),
            (ms(900), 4, Some(ms(400))),
            (ms(1_300), 9, Some(ms(400))),
            (ms(1_900), 0, Some(ms(50))),
            (ms(1_980), 1, Some(ms(20))),
            (ms(2_000), 0, None),
            (Duration::from_secs(3600), 0, None),
        ] {
            assert_eq!(
                super::wait_for_receiver(age, round),
                wait,
                "age {age:?}, round {round}"
            );
        }
    }

    #[test]
    fn the_check_takes_the_key_only_while_the_marker_still_tells() {
        use super::{check, Check, Settle};
        let s = Duration::from_secs;
        let day = s(86_400);
        for (settled, age, window, want) in [
            (Settle::Dispatch, s(1), day, Check::Deliver),
            (Settle::Dispatch, s(30 * 86_400), day, Check::Deliver),
            (Settle::Delete, s(1), day, Check::Supersede),
            (Settle::Delete, s(2 * 86_400), day, Check::Supersede),
            // Young: the receiver failed or crashed; the marker is the window's record.
            (Settle::Claim, s(1), day, Check::Claim),
            (Settle::Claim, s(86_399), day, Check::Claim),
            // Redriven after the window: the marker may have expired; the item decides.
            (Settle::Claim, s(86_400), day, Check::IfStored),
            // A short window: the receiver may be running until RECEIVER_MAX.
            (Settle::Claim, s(10), s(1), Check::Claim),
            (Settle::Claim, s(299), s(0), Check::Claim),
            (Settle::Claim, s(300), s(1), Check::IfStored),
            // A later event holds the key: the receiver deleted this copy if it saw that.
            (Settle::DispatchUnmarked, s(2), s(1), Check::IfStored),
            (
                Settle::DispatchUnmarked,
                s(2 * 86_400),
                day,
                Check::IfStored,
            ),
        ] {
            assert_eq!(
                check(settled, age, window),
                want,
                "{settled:?} {age:?} {window:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn dedup_ids_stay_short() {
        assert_eq!(dedup_id("gh", "abc"), "dedup#gh#abc");
        assert!(dedup_id("gh", &"x".repeat(5000)).len() < 100);
    }

    #[test]
    fn only_real_keys_take_markers() {
        let event = |id: &str, key: &str| Event {
            id: id.into(),
            source_id: "gh".into(),
            event_type: "push".into(),
            received_at: Utc::now(),
            content_type: None,
            dedup_key: key.into(),
            headers: Default::default(),
            body: bytes::Bytes::new(),
            enqueued: false,
        };
        assert!(!takes_marker(&event("evt_1", "once:evt_1")));
        assert!(takes_marker(&event("evt_1", "id:abc")));
        assert!(takes_marker(&event("evt_1", "once:evt_2")));
        assert!(takes_marker(&event("evt_1", "header:once:evt_1")));
    }

    #[test]
    fn settle_decisions() {
        const W: Duration = Duration::from_secs(100);
        const S: i64 = 1_000_000_000;
        let owner = |id: &str, secs: i64| MarkerOwner {
            event_id: id.into(),
            received_ns: secs * S,
        };
        let cases = [
            (None, Settle::Claim),
            (Some(owner("evt_me", 1000)), Settle::Dispatch),
            // Another event within the window, before or after this one.
            (Some(owner("evt_other", 1000)), Settle::Delete),
            (Some(owner("evt_other", 901)), Settle::Delete),
            (Some(owner("evt_other", 1099)), Settle::Delete),
            // Its window has passed for this event (the insert's own condition: `<=`).
            (Some(owner("evt_other", 900)), Settle::Claim),
            (Some(owner("evt_other", 10)), Settle::Claim),
            // A later, distinct event.
            (Some(owner("evt_other", 1100)), Settle::DispatchUnmarked),
        ];
        for (marker, want) in cases {
            assert_eq!(
                settle("evt_me", 1000 * S, W, marker.as_ref()),
                want,
                "{marker:?}"
            );
        }
    }
}

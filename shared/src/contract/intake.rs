//! Checks of the receiver's intake: the event stored once, its dispatch task on the queue once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{sample_attempt, sample_event};
use crate::domain::{Event, InlineEvent, SentFirst, StoredPlan, Task};
use crate::intake::SendThenStore;
use crate::ports::{Backend, Confirmed, InsertOutcome, Intake};

const HOUR: Duration = Duration::from_secs(3600);
const PATIENCE: Duration = Duration::from_secs(15);

/// Receives (and acks) messages until `expected` have arrived and a further second brings
/// none; returns the dispatched event ids in arrival order. Each task's inline event, if it
/// carries one, must be the stored event of its id ([`check_inline`]).
async fn drain_dispatches(b: &Backend, expected: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    let mut quiet_since: Option<Instant> = None;
    loop {
        let got = b
            .queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        if got.is_empty() {
            if seen.len() >= expected {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(1) {
                    return seen;
                }
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {expected} tasks arrived within {PATIENCE:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        quiet_since = None;
        for message in got {
            match Task::from_json(&message.body).expect("a task") {
                Task::Dispatch {
                    event_id,
                    event,
                    sent_first,
                } => {
                    // A task sent before its store counts once the dispatcher's check
                    // confirms it (a duplicate's is dropped there).
                    if let (Some(sent_first), Some(inline)) = (sent_first, &event) {
                        let confirmed = b
                            .events
                            .confirm_sent(inline.event(), &sent_first)
                            .await
                            .expect("confirm_sent");
                        if confirmed != Confirmed::Holder {
                            b.queue.ack(&message.receipt).await.expect("ack");
                            continue;
                        }
                    }
                    check_inline(b, &event_id, event).await;
                    seen.push(event_id);
                }
                other => panic!("the intake sent {other:?}"),
            }
            b.queue.ack(&message.receipt).await.expect("ack");
        }
    }
}

/// A dispatch task either goes by reference (an adapter whose queue shares the event's
/// database) or carries exactly what `get_event` returns for its id.
async fn check_inline(b: &Backend, event_id: &str, inline: Option<InlineEvent>) {
    let Some(inline) = inline else { return };
    let stored = b.events.get_event(event_id).await.unwrap();
    assert_eq!(
        Some(inline.event()),
        stored.as_ref(),
        "the inline event of the task for {event_id} is the stored one"
    );
}

pub async fn intake_stores_enqueues_and_deduplicates(b: &Backend) {
    let first = sample_event("intake", "delivery-1");
    let stored = b
        .intake
        .store_and_enqueue(&first, HOUR)
        .await
        .expect("store_and_enqueue");
    assert_eq!(stored.event_id, first.id);
    assert!(!stored.duplicate);
    let kept = b
        .events
        .get_event(&first.id)
        .await
        .unwrap()
        .expect("stored");
    assert!(kept.enqueued, "the stored event is marked enqueued");
    assert_eq!(kept.body, first.body, "body kept byte for byte");

    let retry = sample_event("intake", "delivery-1");
    let again = b
        .intake
        .store_and_enqueue(&retry, HOUR)
        .await
        .expect("store_and_enqueue of a duplicate");
    assert_eq!(again.event_id, first.id, "a duplicate names the original");
    assert!(again.duplicate);
    assert!(
        b.events.get_event(&retry.id).await.unwrap().is_none(),
        "a duplicate is not stored"
    );

    let other = sample_event("intake", "delivery-2");
    b.intake.store_and_enqueue(&other, HOUR).await.unwrap();
    let dispatched = drain_dispatches(b, 2).await;
    assert_eq!(
        dispatched.iter().collect::<BTreeSet<_>>(),
        [&first.id, &other.id].into_iter().collect::<BTreeSet<_>>(),
        "one dispatch task per stored event, none for the duplicate: {dispatched:?}"
    );
    assert_eq!(dispatched.len(), 2, "no task twice: {dispatched:?}");
}

pub async fn intake_completes_an_unenqueued_original(b: &Backend) {
    // What a failure between storing and enqueueing leaves behind.
    let original = sample_event("intake", "stranded");
    assert_eq!(
        b.events.insert_event(&original, HOUR).await.unwrap(),
        InsertOutcome::Inserted
    );
    let mut retry = sample_event("intake", "stranded");
    // The retry differs from the original in all but its dedup key (the id and receive time
    // differ already): the task must carry the original, as stored.
    retry.body = bytes::Bytes::from_static(br#"{"id":"ord_1","total":43}"#);
    retry.headers.insert("x-retry".into(), "1".into());
    let stored = b.intake.store_and_enqueue(&retry, HOUR).await.unwrap();
    assert_eq!(stored.event_id, original.id);
    assert!(stored.duplicate);
    let kept = b.events.get_event(&original.id).await.unwrap().unwrap();
    assert!(kept.enqueued, "the provider's retry completes the enqueue");
    assert_eq!(drain_dispatches(b, 1).await, vec![original.id.clone()]);

    // Once enqueued, further retries enqueue nothing more.
    b.intake
        .store_and_enqueue(&sample_event("intake", "stranded"), HOUR)
        .await
        .unwrap();
    assert_eq!(drain_dispatches(b, 0).await, Vec::<String>::new());
}

/// [`EventStore::confirm_sent`](crate::ports::EventStore::confirm_sent): the dispatcher's check
/// of a task sent before its event was stored stores what the receiver did not, leaves a stored
/// holder as it is, and supersedes a duplicate without keeping its copy.
pub async fn confirm_sent_finishes_the_store(b: &Backend) {
    // Never stored (the receiver answered 503 or died after the send): stored now.
    let lone = sample_event("confirm", "delivery-1");
    let first = b
        .events
        .confirm_sent(&lone, &SentFirst::new(HOUR))
        .await
        .expect("confirm");
    assert_eq!(first, Confirmed::Holder);
    let kept = b.events.get_event(&lone.id).await.unwrap().expect("stored");
    assert!(
        kept.enqueued,
        "its task is on the queue: stored as enqueued"
    );
    assert_eq!(kept.body, lone.body);
    assert_eq!(
        b.events
            .confirm_sent(&lone, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder,
        "a second check (the task received again) changes nothing"
    );

    // A later copy of the same key: its task is dropped, its copy not kept.
    let retry = sample_event("confirm", "delivery-1");
    assert_eq!(
        b.events
            .confirm_sent(&retry, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Superseded {
            original_id: lone.id.clone()
        }
    );
    assert!(b.events.get_event(&retry.id).await.unwrap().is_none());

    // Stored by the receiver before the check: nothing more to do.
    let stored = Event {
        enqueued: true,
        ..sample_event("confirm", "delivery-2")
    };
    assert_eq!(
        b.events.insert_event(&stored, HOUR).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        b.events
            .confirm_sent(&stored, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder
    );

    // An event without a dedup key is stored once, however often its task is checked.
    let once = sample_event("confirm", "");
    let once = Event {
        dedup_key: format!("once:{}", once.id),
        ..once
    };
    for _ in 0..2 {
        assert_eq!(
            b.events
                .confirm_sent(&once, &SentFirst::new(HOUR))
                .await
                .unwrap(),
            Confirmed::Holder
        );
    }
    assert!(b.events.get_event(&once.id).await.unwrap().is_some());

    // A task arriving days late (an outage, a redrive) for an event never stored: its key's
    // marker may be gone, so it is not stored now; one stored by its receiver is delivered.
    let mut late = sample_event("confirm", "delivery-3");
    late.received_at -= chrono::TimeDelta::days(2);
    assert_eq!(
        b.events
            .confirm_sent(&late, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Unverifiable
    );
    assert!(b.events.get_event(&late.id).await.unwrap().is_none());
    let mut late_once = sample_event("confirm", "");
    late_once.received_at -= chrono::TimeDelta::days(2);
    late_once.dedup_key = format!("once:{}", late_once.id);
    assert_eq!(
        b.events
            .confirm_sent(&late_once, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Unverifiable
    );
    let mut stored_late = Event {
        enqueued: true,
        ..sample_event("confirm", "delivery-4")
    };
    stored_late.received_at -= chrono::TimeDelta::days(2);
    b.events.insert_event(&stored_late, HOUR).await.unwrap();
    assert_eq!(
        b.events
            .confirm_sent(&stored_late, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder
    );
    let page = b
        .events
        .list_events(&crate::ports::EventQuery {
            source_id: Some("confirm".into()),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    let ids: BTreeSet<&str> = page.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            lone.id.as_str(),
            stored.id.as_str(),
            once.id.as_str(),
            stored_late.id.as_str()
        ]
        .into_iter()
        .collect(),
        "one event per key, none for the superseded copy"
    );
}

/// The send-first intake ([`SendThenStore`]) over this adapter's store and queue: every
/// acknowledged event's task confirms it, a duplicate's task is superseded, and one large event
/// goes the store-then-enqueue way.
pub async fn intake_sent_first_stores_enqueues_and_deduplicates(b: &Backend) {
    let intake = SendThenStore::new(b.events.clone(), b.queue.clone());
    let first = sample_event("outbox", "delivery-1");
    let stored = intake.store_and_enqueue(&first, HOUR).await.unwrap();
    assert_eq!(
        (stored.event_id.as_str(), stored.duplicate),
        (first.id.as_str(), false)
    );
    let kept = b
        .events
        .get_event(&first.id)
        .await
        .unwrap()
        .expect("stored");
    assert!(kept.enqueued);

    let retry = sample_event("outbox", "delivery-1");
    let again = intake.store_and_enqueue(&retry, HOUR).await.unwrap();
    assert_eq!(
        (again.event_id.as_str(), again.duplicate),
        (first.id.as_str(), true)
    );
    assert!(b.events.get_event(&retry.id).await.unwrap().is_none());

    // A body that does not compress, too large for one SQS chunk: stored first, then sent.
    let mut large = sample_event("outbox", "delivery-2");
    large.body = super::incompressible_body(48 * 1024);
    intake.store_and_enqueue(&large, HOUR).await.unwrap();
    assert!(
        b.events
            .get_event(&large.id)
            .await
            .unwrap()
            .unwrap()
            .enqueued
    );

    let dispatched = drain_dispatches(b, 2).await;
    assert_eq!(
        dispatched.iter().collect::<BTreeSet<_>>(),
        [&first.id, &large.id].into_iter().collect::<BTreeSet<_>>(),
        "one confirmed task per stored event, the duplicate's superseded: {dispatched:?}"
    );
    assert_eq!(dispatched.len(), 2, "no task twice: {dispatched:?}");
}

/// Ids minted by the intake and the event store are fresh `evt_<ULID>`s of now, all distinct,
/// and events stored under them are found by id and listed (an adapter may choose its ids, as
/// the DynamoDB one does for its shards, but never outside what it lists).
pub async fn minted_event_ids_are_fresh_and_listed(b: &Backend) {
    let before = chrono::Utc::now().timestamp_millis();
    let ids: Vec<String> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                b.intake.new_event_id()
            } else {
                b.events.new_event_id()
            }
        })
        .collect();
    let after = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "distinct"
    );
    for id in &ids {
        let ulid: ulid::Ulid = id
            .strip_prefix("evt_")
            .and_then(|rest| rest.parse().ok())
            .unwrap_or_else(|| panic!("{id} is not evt_<ULID>"));
        let ms = i64::try_from(ulid.timestamp_ms()).expect("a time");
        assert!((before..=after).contains(&ms), "{id}: time of now");
        let event = Event {
            id: id.clone(),
            ..sample_event("minted", &format!("id:{id}"))
        };
        b.events.insert_event(&event, HOUR).await.expect("insert");
        let found = b.events.get_event(id).await.expect("get_event");
        assert_eq!(found.map(|e| e.id), Some(id.clone()), "found by id");
    }
    // Listings may trail a write briefly (eventually consistent on DynamoDB): polled.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed = b
            .events
            .list_events(&crate::ports::EventQuery {
                source_id: None,
                before: None,
                limit: 100,
            })
            .await
            .expect("list_events");
        let listed: BTreeSet<&String> = listed.iter().map(|e| &e.id).collect();
        if ids.iter().all(|id| listed.contains(id)) {
            return;
        }
        assert!(Instant::now() < deadline, "every minted event listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Plans stored with events ([`SentFirst::plan`]): an attempt recorded as the plan says
/// (planned at the event's receipt) is found from the event, whether the receiver stored it
/// ([`crate::ports::EventStore::insert_sent`]), the dispatcher's check did
/// ([`crate::ports::EventStore::confirm_sent`]) or the planning intake planned it; a
/// subscription the plan names but never tried has nothing. Adapters that keep no stored plans
/// find the attempts by the event's id all the same.
pub async fn stored_plans_find_their_attempts(b: &Backend) {
    let layout = b.attempts.stored_plan_layout().unwrap_or(0);
    let source = format!("planned_{}", crate::domain::new_id("src"));
    let (tried, untried) = ("sub_a_planned".to_owned(), "sub_b_planned".to_owned());
    let plan = StoredPlan {
        subscriptions: vec![tried.clone(), untried.clone()],
        layout,
    };
    let sent_first = SentFirst {
        plan: Some(plan.clone()),
        ..SentFirst::new(HOUR)
    };
    let as_planned = |event: &Event, subscription: &str| {
        let mut attempt = sample_attempt(&event.id, subscription, 1);
        attempt.started_at = event.received_at + chrono::TimeDelta::milliseconds(5);
        attempt
    };
    let by_receiver = sent(&sample_event(&source, "delivery-r"));
    assert_eq!(
        b.events
            .insert_sent(&by_receiver, &sent_first)
            .await
            .unwrap(),
        InsertOutcome::Inserted
    );
    let by_check = sample_event(&source, "delivery-c");
    assert_eq!(
        b.events.confirm_sent(&by_check, &sent_first).await.unwrap(),
        Confirmed::Holder
    );
    for event in [&by_receiver, &by_check] {
        let attempt = as_planned(event, &tried);
        b.attempts
            .record_planned_attempt(&attempt, event.received_at)
            .await
            .expect("record");
        let found = [attempt];
        let log = &b.attempts;
        assert_eq!(log.attempts_for_event(&event.id).await.unwrap(), found);
        assert_eq!(
            log.attempts_for_pair(&event.id, &tried).await.unwrap(),
            found
        );
        assert!(log
            .attempts_for_pair(&event.id, &untried)
            .await
            .unwrap()
            .is_empty());
        let dispatch = log.attempts_for_dispatch(event, Some(&plan)).await;
        assert_eq!(dispatch.unwrap(), found);
        // A retry, recorded on its own, is found beside it.
        let mut retry = sample_attempt(&event.id, &tried, 2);
        retry.started_at = event.received_at + chrono::TimeDelta::seconds(30);
        log.record_attempt(&retry).await.expect("record");
        assert_eq!(
            log.attempts_for_event(&event.id).await.unwrap(),
            [found[0].clone(), retry]
        );
    }

    // The planning intake plans from the subscriptions that want the event.
    let mut wanting = super::sample_subscription();
    wanting.sources = vec![source.clone()];
    b.subscriptions
        .create_subscription(&wanting)
        .await
        .expect("create");
    let intake = SendThenStore::new(b.events.clone(), b.queue.clone())
        .planning(b.subscriptions.clone(), &*b.attempts);
    let mut event = sample_event(&source, "delivery-i");
    event.id = b.events.new_event_id();
    let stored = intake.store_and_enqueue(&event, HOUR).await.unwrap();
    assert!(!stored.duplicate);
    let attempt = as_planned(&event, &wanting.id);
    b.attempts
        .record_planned_attempt(&attempt, event.received_at)
        .await
        .expect("record");
    assert_eq!(
        b.attempts.attempts_for_event(&event.id).await.unwrap(),
        [attempt]
    );
}

/// `event` as the send-first receiver stores it: already enqueued.
fn sent(event: &Event) -> Event {
    Event {
        enqueued: true,
        ..event.clone()
    }
}

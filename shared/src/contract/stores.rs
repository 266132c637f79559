//! Checks of the stores: sources, subscriptions, events and attempts.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};

use super::{sample_attempt, sample_event, sample_source, sample_subscription};
use crate::domain::{new_id, DeliveryState, Event, EventSummary, Secret};
use crate::ports::{Backend, EventQuery, InsertOutcome, PlannedAttempt, StoreError};

const HOUR: Duration = Duration::from_secs(3600);

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

fn ids<T: HasId>(events: &[T]) -> Vec<&str> {
    events.iter().map(HasId::id).collect()
}

/// Events and their summaries, compared by id.
trait HasId {
    fn id(&self) -> &str;
}

impl HasId for Event {
    fn id(&self) -> &str {
        &self.id
    }
}

impl HasId for EventSummary {
    fn id(&self) -> &str {
        &self.id
    }
}

fn summaries<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<EventSummary> {
    events.into_iter().map(EventSummary::from).collect()
}

async fn insert(b: &Backend, event: &Event, window: Duration) -> InsertOutcome {
    b.events
        .insert_event(event, window)
        .await
        .unwrap_or_else(|e| panic!("insert_event({}) failed: {e}", event.id))
}

pub async fn sources_crud(b: &Backend) {
    let s = &b.sources;
    assert_eq!(
        s.get_source("nope").await.unwrap(),
        None,
        "missing source must be None"
    );
    let beta = sample_source("beta");
    let alpha = sample_source("alpha");
    s.create_source(&beta).await.expect("create beta");
    s.create_source(&alpha).await.expect("create alpha");
    assert_eq!(
        s.get_source("beta").await.unwrap(),
        Some(beta.clone()),
        "source round trip"
    );
    assert!(
        matches!(s.create_source(&beta).await, Err(StoreError::Conflict(_))),
        "creating a taken source id must be Conflict"
    );
    let listed: Vec<String> = s
        .list_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(
        listed,
        ["alpha", "beta"],
        "list_sources must be ordered by id"
    );

    let mut updated = beta.clone();
    updated.created_at = beta.created_at - secs(86_400);
    s.update_source(&updated).await.expect("update beta");
    assert_eq!(
        s.get_source("beta").await.unwrap(),
        Some(updated),
        "update must replace"
    );
    assert!(
        matches!(
            s.update_source(&sample_source("ghost")).await,
            Err(StoreError::NotFound(_))
        ),
        "updating a missing source must be NotFound"
    );
    assert!(
        s.delete_source("beta").await.unwrap(),
        "delete of an existing source is true"
    );
    assert!(
        !s.delete_source("beta").await.unwrap(),
        "second delete is false"
    );
    assert_eq!(
        s.get_source("beta").await.unwrap(),
        None,
        "deleted source is gone"
    );
    assert_eq!(
        s.list_sources().await.unwrap(),
        vec![alpha],
        "only alpha remains"
    );
}

pub async fn subscriptions_crud(b: &Backend) {
    let s = &b.subscriptions;
    assert_eq!(
        s.get_subscription("sub_nope").await.unwrap(),
        None,
        "missing is None"
    );
    let first = sample_subscription();
    let second = sample_subscription();
    s.create_subscription(&first).await.expect("create first");
    s.create_subscription(&second).await.expect("create second");
    assert!(
        matches!(
            s.create_subscription(&first).await,
            Err(StoreError::Conflict(_))
        ),
        "creating a taken subscription id must be Conflict"
    );
    assert_eq!(
        s.get_subscription(&first.id).await.unwrap(),
        Some(first.clone()),
        "round trip"
    );
    let mut expected = [first.clone(), second.clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        s.list_subscriptions().await.unwrap(),
        expected,
        "ordered by id"
    );

    let mut updated = first.clone();
    updated.sources = vec!["github".to_owned(), "stripe".to_owned()];
    updated.event_types = vec!["order.*".to_owned()];
    updated.label = None;
    updated.enabled = false;
    updated.disabled_reason = Some(crate::decision::DisabledReason::Gone);
    updated.secret = Secret::new("whsec_rotated");
    // Delivery programs and headers are stored as given (no migration: absent means none).
    updated.filter = Some(".body.amount >= 100".to_owned());
    updated.transform = Some("{kind: .type}".to_owned());
    updated.headers = [("x-team".to_owned(), "payments".to_owned())].into();
    updated.updated_at = first.updated_at + secs(5);
    s.update_subscription(&updated).await.expect("update");
    assert_eq!(
        s.get_subscription(&first.id).await.unwrap(),
        Some(updated.clone()),
        "update replaces"
    );
    // The receiver's view: ids and filters, the same subscriptions in the same order.
    let mut routes = [updated.route(), second.route()];
    routes.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(s.list_subscription_routes().await.unwrap(), routes);
    assert_eq!(
        routes[..]
            .iter()
            .find(|r| r.id == first.id)
            .unwrap()
            .sources,
        ["github", "stripe"]
    );
    assert!(
        matches!(
            s.update_subscription(&sample_subscription()).await,
            Err(StoreError::NotFound(_))
        ),
        "updating a missing subscription must be NotFound"
    );
    assert!(
        s.delete_subscription(&first.id).await.unwrap(),
        "delete existing is true"
    );
    assert!(
        !s.delete_subscription(&first.id).await.unwrap(),
        "second delete is false"
    );
    assert_eq!(
        s.list_subscriptions().await.unwrap(),
        vec![second.clone()],
        "only the second remains"
    );
    assert_eq!(
        s.list_subscription_routes().await.unwrap(),
        [second.route()]
    );
}

pub async fn event_insert_and_get_byte_exact(b: &Backend) {
    assert_eq!(
        b.events.get_event("evt_nope").await.unwrap(),
        None,
        "missing event is None"
    );
    let mut binary = sample_event("src", "k-binary");
    binary.body = Bytes::from_static(&[0xff, 0xfe, 0x00, 0x80, b'{', 0xc3, 0x28, 0x00]);
    binary.content_type = None;
    binary.headers.clear();
    let mut large = sample_event("src", "k-large");
    large.body = (0..256 * 1024)
        .map(|i: u32| (i.wrapping_mul(31) % 251) as u8)
        .collect();
    large.content_type = Some("application/octet-stream".to_owned());
    let mut empty = sample_event("src", "k-empty");
    empty.body = Bytes::new();
    empty.enqueued = true;
    for event in [&binary, &large, &empty] {
        assert_eq!(
            insert(b, event, HOUR).await,
            InsertOutcome::Inserted,
            "fresh key inserts"
        );
        let stored = b.events.get_event(&event.id).await.unwrap();
        let stored = stored.unwrap_or_else(|| panic!("event {} not found after insert", event.id));
        assert!(
            stored.body == event.body,
            "body of {} must round-trip byte for byte",
            event.id
        );
        assert_eq!(&stored, event, "event must round-trip exactly");
    }
}

pub async fn event_duplicate_id_is_conflict(b: &Backend) {
    let original = sample_event("src", "k1");
    insert(b, &original, HOUR).await;
    let mut same_id = sample_event("src", "k2");
    same_id.id = original.id.clone();
    assert!(
        matches!(
            b.events.insert_event(&same_id, HOUR).await,
            Err(StoreError::Conflict(_))
        ),
        "inserting a taken event id must be Conflict"
    );
    assert_eq!(
        b.events.get_event(&original.id).await.unwrap(),
        Some(original),
        "untouched"
    );
    // The failed insert must not have claimed its dedup key.
    let retry = sample_event("src", "k2");
    assert_eq!(
        insert(b, &retry, HOUR).await,
        InsertOutcome::Inserted,
        "k2 is still free"
    );
}

pub async fn event_dedup_within_window(b: &Backend) {
    let t0 = Utc::now() - secs(86_400);
    let mut first = sample_event("alpha", "delivery-1");
    first.received_at = t0;
    assert_eq!(
        insert(b, &first, HOUR).await,
        InsertOutcome::Inserted,
        "first insert"
    );

    let mut again = sample_event("alpha", "delivery-1");
    again.received_at = t0 + secs(1);
    assert_eq!(
        insert(b, &again, HOUR).await,
        InsertOutcome::Duplicate(Box::new(first.clone())),
        "same source and key inside the window must return the original"
    );
    assert_eq!(
        b.events.get_event(&again.id).await.unwrap(),
        None,
        "a duplicate is not stored"
    );

    let mut other_source = sample_event("beta", "delivery-1");
    other_source.received_at = t0 + secs(2);
    assert_eq!(
        insert(b, &other_source, HOUR).await,
        InsertOutcome::Inserted,
        "dedup keys are scoped to their source"
    );

    let mut later = sample_event("alpha", "delivery-1");
    later.received_at = t0 + secs(2 * 3600);
    assert_eq!(
        insert(b, &later, HOUR).await,
        InsertOutcome::Inserted,
        "outside the window"
    );
    let mut after_later = sample_event("alpha", "delivery-1");
    after_later.received_at = later.received_at + secs(1);
    assert_eq!(
        insert(b, &after_later, HOUR).await,
        InsertOutcome::Duplicate(Box::new(later.clone())),
        "the key now points at the newest stored event"
    );
    let alpha = EventQuery {
        source_id: Some("alpha".to_owned()),
        before: None,
        limit: 10,
    };
    let stored = b.events.list_events(&alpha).await.unwrap();
    let mut expected = [first.id.as_str(), later.id.as_str()];
    expected.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(
        ids(&stored),
        expected,
        "exactly the two non-duplicates are stored"
    );
}

pub async fn event_listing_and_paging(b: &Backend) {
    let mut all = Vec::new();
    for i in 0..7 {
        let source = if i % 3 == 0 { "beta" } else { "alpha" };
        let event = sample_event(source, &format!("key-{i}"));
        insert(b, &event, HOUR).await;
        all.push(event);
    }
    // Newest first means id order, descending (ids are ULIDs).
    all.sort_by(|x, y| y.id.cmp(&x.id));
    let everything = EventQuery {
        source_id: None,
        before: None,
        limit: 100,
    };
    assert_eq!(
        b.events.list_events(&everything).await.unwrap(),
        summaries(&all),
        "all events, newest first"
    );

    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = EventQuery {
            source_id: None,
            before: before.clone(),
            limit: 3,
        };
        let page = b.events.list_events(&page).await.unwrap();
        assert!(page.len() <= 3, "a page holds at most `limit` events");
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        paged.extend(page);
        assert!(
            paged.len() <= all.len(),
            "paging must terminate without repeats"
        );
    }
    assert_eq!(
        ids(&paged),
        ids(&all),
        "pages chain through `before` without gaps or repeats"
    );

    let alpha: Vec<&Event> = all.iter().filter(|e| e.source_id == "alpha").collect();
    let query = EventQuery {
        source_id: Some("alpha".to_owned()),
        before: None,
        limit: 2,
    };
    let page = b.events.list_events(&query).await.unwrap();
    assert_eq!(
        page,
        summaries(alpha[..2].iter().copied()),
        "source filter with a limit"
    );
    let query = EventQuery {
        before: Some(alpha[1].id.clone()),
        limit: 100,
        ..query
    };
    let rest = b.events.list_events(&query).await.unwrap();
    assert_eq!(
        rest,
        summaries(alpha[2..].iter().copied()),
        "source filter with a cursor"
    );
    let none = EventQuery {
        source_id: Some("gamma".to_owned()),
        before: None,
        limit: 10,
    };
    assert!(
        b.events.list_events(&none).await.unwrap().is_empty(),
        "unknown source is empty"
    );
}

pub async fn unenqueued_sweep(b: &Backend) {
    let now = Utc::now();
    let mut events = Vec::new();
    for (i, age_min) in [30, 20, 10, 0].into_iter().enumerate() {
        let mut e = sample_event("src", &format!("k{i}"));
        e.received_at = now - TimeDelta::minutes(age_min);
        insert(b, &e, HOUR).await;
        events.push(e);
    }
    let mut done = sample_event("src", "k-done");
    done.received_at = now - TimeDelta::minutes(40);
    done.enqueued = true;
    insert(b, &done, HOUR).await;

    let cutoff = now - TimeDelta::minutes(5);
    let found = b.events.list_unenqueued(cutoff, 10).await.unwrap();
    assert_eq!(
        ids(&found),
        ids(&events[..3]),
        "unenqueued before the cutoff, oldest first"
    );
    let at_cutoff = b
        .events
        .list_unenqueued(events[2].received_at, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&at_cutoff),
        ids(&events[..3]),
        "received_before is inclusive"
    );
    let first = b.events.list_unenqueued(cutoff, 1).await.unwrap();
    assert_eq!(ids(&first), ids(&events[..1]), "limit applies");

    b.events
        .mark_enqueued(&events[1].id)
        .await
        .expect("mark_enqueued");
    let stored = b
        .events
        .get_event(&events[1].id)
        .await
        .unwrap()
        .expect("event exists");
    assert!(stored.enqueued, "mark_enqueued must set the flag");
    let left = b.events.list_unenqueued(cutoff, 10).await.unwrap();
    assert_eq!(
        ids(&left),
        [events[0].id.as_str(), events[2].id.as_str()],
        "marked one is gone"
    );
}

pub async fn attempts_by_event_and_subscription(b: &Backend) {
    let log = &b.attempts;
    let (s1, s2) = ("sub_a", "sub_b");
    let (e1, e2) = (new_id("evt"), new_id("evt"));
    let base = Utc::now() - secs(600);
    let at = |event: &str, sub: &str, n: u32, offset: i64| {
        let mut a = sample_attempt(event, sub, n);
        a.started_at = base + secs(offset);
        a
    };
    let s2_1 = at(&e1, s2, 1, 0);
    let s1_1 = at(&e1, s1, 1, 1);
    let mut s1_2 = at(&e1, s1, 2, 31);
    s1_2.state = DeliveryState::Succeeded;
    s1_2.status_code = Some(200);
    s1_2.next_attempt_at = None;
    let mut s2_2 = at(&e1, s2, 2, 32);
    s2_2.status_code = None;
    s2_2.error = Some("timeout".to_owned());
    s2_2.response_excerpt = None;
    let other = at(&e2, s1, 1, 60);
    for a in [&s2_2, &s1_2, &other, &s2_1, &s1_1] {
        log.record_attempt(a).await.expect("record_attempt");
    }
    assert_eq!(
        log.attempts_for_event(&e1).await.unwrap(),
        [s1_1.clone(), s1_2.clone(), s2_1, s2_2],
        "attempts for an event, by (subscription, attempt)"
    );
    assert_eq!(
        log.attempts_for_subscription(s1, 10).await.unwrap(),
        [other.clone(), s1_2.clone(), s1_1],
        "attempts for a subscription, newest first"
    );
    assert_eq!(
        log.attempts_for_subscription(s1, 2).await.unwrap(),
        [other, s1_2],
        "limit keeps the newest"
    );
    assert!(
        log.attempts_for_event("evt_none").await.unwrap().is_empty(),
        "no attempts"
    );
    assert!(log
        .attempts_for_subscription("sub_none", 10)
        .await
        .unwrap()
        .is_empty());
}

/// A dispatch announces its deliveries ([`AttemptLog::plan_attempts`]), then records each
/// one it makes: those are found by event, by subscription and by page like any attempt; a
/// planned delivery never made (filtered out, or its dispatcher gone) is found nowhere.
///
/// [`AttemptLog::plan_attempts`]: crate::ports::AttemptLog::plan_attempts
pub async fn planned_attempts_are_found_once_made(b: &Backend) {
    let log = &b.attempts;
    let event = new_id("evt");
    // Ordered names: attempts of an event come by subscription id.
    let (s1, s2, s3) = (
        format!("sub_a_{event}"),
        format!("sub_b_{event}"),
        format!("sub_c_{event}"),
    );
    let planned_at = Utc::now() - secs(600);
    let at = |sub: &str, n: u32, offset: i64| {
        let mut a = sample_attempt(&event, sub, n);
        a.started_at = planned_at + secs(offset);
        a
    };
    let plan = |subs: &[&String], n: u32| -> Vec<PlannedAttempt> {
        subs.iter()
            .map(|s| PlannedAttempt {
                subscription_id: (*s).clone(),
                attempt: n,
            })
            .collect()
    };
    log.plan_attempts(&event, planned_at, &plan(&[&s1, &s2, &s3], 1))
        .await
        .expect("plan");
    // s2's delivery started half a minute after the plan (queued behind slow ones).
    let (s1_1, s2_1) = (at(&s1, 1, 1), at(&s2, 1, 30));
    for a in [&s2_1, &s1_1] {
        log.record_planned_attempt(a, planned_at)
            .await
            .expect("record a planned attempt");
    }
    // The retry of s1 is recorded without a plan, as a single delivery is.
    let s1_2 = at(&s1, 2, 31);
    log.record_attempt(&s1_2).await.expect("record");
    assert_eq!(
        log.attempts_for_event(&event).await.unwrap(),
        [s1_1.clone(), s1_2.clone(), s2_1.clone()],
        "made attempts by (subscription, number); the one never made is not there"
    );
    assert_eq!(
        log.attempts_for_subscription(&s1, 10).await.unwrap(),
        [s1_2.clone(), s1_1.clone()],
        "newest first"
    );
    assert!(log
        .attempts_for_subscription(&s3, 10)
        .await
        .unwrap()
        .is_empty());
    // Pages select by start, whatever the plan's time.
    let page = |since: i64, until: i64| {
        let s2 = s2.clone();
        async move {
            log.attempts_for_subscription_page(
                &s2,
                planned_at + secs(since),
                planned_at + secs(until),
                None,
                10,
            )
            .await
            .unwrap()
            .attempts
        }
    };
    assert_eq!(page(-1, 60).await, std::slice::from_ref(&s2_1));
    assert_eq!(
        page(10, 60).await,
        std::slice::from_ref(&s2_1),
        "planned before the range, started in it"
    );
    assert!(
        page(-60, 20).await.is_empty(),
        "planned in the range, started after it"
    );
    assert_eq!(
        log.attempts_for_pair(&event, &s1).await.unwrap(),
        [s1_1.clone(), s1_2.clone()],
        "one pair's attempts"
    );
    assert!(log.attempts_for_pair(&event, &s3).await.unwrap().is_empty());
    // Planned again later (the first dispatcher gone) and made then: found.
    let replanned = planned_at + secs(300);
    log.plan_attempts(&event, replanned, &plan(&[&s3], 1))
        .await
        .expect("plan again");
    let mut s3_1 = at(&s3, 1, 301);
    s3_1.state = DeliveryState::Succeeded;
    log.record_planned_attempt(&s3_1, replanned)
        .await
        .expect("record");
    assert_eq!(
        log.attempts_for_event(&event).await.unwrap(),
        [s1_1, s1_2, s2_1, s3_1.clone()]
    );
    assert_eq!(
        log.attempts_for_subscription(&s3, 10).await.unwrap(),
        [s3_1]
    );
}

pub async fn attempt_rerecord_is_idempotent(b: &Backend) {
    let first = sample_attempt("evt_1", "sub_1", 1);
    b.attempts.record_attempt(&first).await.expect("record");
    b.attempts
        .record_attempt(&first)
        .await
        .expect("re-record the same attempt");
    let mut final_state = first.clone();
    final_state.state = DeliveryState::Failed;
    final_state.next_attempt_at = None;
    final_state.status_code = Some(410);
    b.attempts
        .record_attempt(&final_state)
        .await
        .expect("record a new state");
    assert_eq!(
        b.attempts.attempts_for_event("evt_1").await.unwrap(),
        [final_state.clone()],
        "one attempt per (event, subscription, number), the last recorded"
    );
    assert_eq!(
        b.attempts
            .attempts_for_subscription("sub_1", 10)
            .await
            .unwrap(),
        [final_state]
    );
}

pub async fn concurrent_inserts_same_dedup_key_yield_one_event(b: &Backend) {
    let received_at: DateTime<Utc> = Utc::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let backend = b.clone();
            let mut event = sample_event("race", "same-delivery");
            event.received_at = received_at;
            tokio::spawn(async move {
                let outcome = backend.events.insert_event(&event, HOUR).await;
                (event.id, outcome.expect("concurrent insert_event"))
            })
        })
        .collect();
    let mut inserted = Vec::new();
    let mut originals = Vec::new();
    for handle in handles {
        match handle.await.expect("insert task panicked") {
            (id, InsertOutcome::Inserted) => inserted.push(id),
            (_, InsertOutcome::Duplicate(original)) => originals.push(original.id),
        }
    }
    assert_eq!(
        inserted.len(),
        1,
        "exactly one concurrent insert wins, got {inserted:?}"
    );
    assert!(
        originals.iter().all(|id| *id == inserted[0]),
        "duplicates name the winner"
    );
    let query = EventQuery {
        source_id: Some("race".to_owned()),
        before: None,
        limit: 100,
    };
    let stored = b.events.list_events(&query).await.unwrap();
    assert_eq!(
        ids(&stored),
        [inserted[0].as_str()],
        "exactly one event is stored"
    );
}

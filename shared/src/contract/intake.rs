//! Checks of the receiver's intake: the event stored once, its dispatch task on the queue once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::sample_event;
use crate::domain::{InlineEvent, Task};
use crate::ports::{Backend, InsertOutcome};

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
                Task::Dispatch { event_id, event } => {
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

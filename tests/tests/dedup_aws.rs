//! The DynamoDB insert without a transaction (event first, then its dedup marker) and how the
//! unenqueued sweep finishes an interrupted one; plus byte-identical round trips of the
//! compressed event payload. Crash states are planted with the raw SDK client on moto.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use hookhub::aws::aws_sdk_dynamodb::types::AttributeValue;
use hookhub::aws::Aws;
use hookhub::contract::sample_event;
use hookhub::domain::{Event, SentFirst};
use hookhub::ports::{Confirmed, EventStore, InsertOutcome};
use hookhub_tests::moto::fresh_aws;

const HOUR: Duration = Duration::from_secs(3600);

type Item = HashMap<String, AttributeValue>;

async fn raw_get(aws: &Aws, id: &str) -> Option<Item> {
    hookhub_tests::moto::events_item(aws, id).await
}

async fn raw_delete(aws: &Aws, id: &str) {
    aws.dynamodb()
        .delete_item()
        .table_name(&aws.settings().events_table)
        .set_key(Some(aws.events_table_key(id)))
        .send()
        .await
        .expect("DeleteItem");
}

/// Gives a stored event another dedup key, as if it had been inserted with it.
async fn raw_set_dedup_key(aws: &Aws, id: &str, dedup_key: &str) {
    aws.dynamodb()
        .update_item()
        .table_name(&aws.settings().events_table)
        .set_key(Some(aws.events_table_key(id)))
        .update_expression("SET dk = :k")
        .expression_attribute_values(":k", AttributeValue::S(dedup_key.to_owned()))
        .send()
        .await
        .expect("UpdateItem");
}

async fn marker_owner(aws: &Aws, marker_id: &str) -> Option<String> {
    raw_get(aws, marker_id)
        .await
        .and_then(|m| m.get("event_id").and_then(|v| v.as_s().ok()).cloned())
}

fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

/// A crash between the event's PutItem and its marker's: the event is pending without a
/// marker. The sweep claims the marker for it and returns it; a later duplicate names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_claims_the_marker_of_an_event_stored_without_one() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let event = sample_event("gh", "id:d-1");
    assert_eq!(
        store.insert_event(&event, HOUR).await.unwrap(),
        InsertOutcome::Inserted
    );
    raw_delete(&aws, "dedup#gh#id:d-1").await;

    let swept = store.list_unenqueued(Utc::now(), 10).await.unwrap();
    assert_eq!(ids(&swept), [event.id.as_str()], "returned for enqueueing");
    assert_eq!(
        marker_owner(&aws, "dedup#gh#id:d-1").await.as_deref(),
        Some(event.id.as_str()),
        "the marker now names it"
    );
    let retry = sample_event("gh", "id:d-1");
    assert_eq!(
        store.insert_event(&retry, HOUR).await.unwrap(),
        InsertOutcome::Duplicate(Box::new(event)),
        "a provider retry is a duplicate of the claimed event"
    );
}

/// A crash between a lost marker put and the delete of the loser: the loser is pending, its
/// marker names another event within the window. The sweep deletes it and does not return it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_a_pending_loser() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let winner = sample_event("gh", "id:d-2");
    store.insert_event(&winner, HOUR).await.unwrap();
    // The loser: stored (with a marker of its own key, which is then given the winner's key).
    let loser = sample_event("gh", "id:tmp");
    store.insert_event(&loser, HOUR).await.unwrap();
    raw_set_dedup_key(&aws, &loser.id, "id:d-2").await;

    let swept = store.list_unenqueued(Utc::now(), 10).await.unwrap();
    assert_eq!(
        ids(&swept),
        [winner.id.as_str()],
        "only the winner is enqueued"
    );
    assert_eq!(store.get_event(&loser.id).await.unwrap(), None, "deleted");
    assert!(raw_get(&aws, &loser.id).await.is_none());
    assert_eq!(
        store.get_event(&winner.id).await.unwrap(),
        Some(winner),
        "the winner is untouched"
    );
}

/// A pending event whose marker names an event whose window has passed for it takes the
/// marker over; a later duplicate then names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_takes_over_an_expired_marker() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let mut old = sample_event("gh", "id:d-3");
    old.received_at = Utc::now() - chrono::TimeDelta::hours(2);
    store.insert_event(&old, HOUR).await.unwrap();
    store.mark_enqueued(&old.id).await.unwrap();
    let orphan = sample_event("gh", "id:tmp-3");
    store.insert_event(&orphan, HOUR).await.unwrap();
    raw_set_dedup_key(&aws, &orphan.id, "id:d-3").await;

    let swept = store.list_unenqueued(Utc::now(), 10).await.unwrap();
    assert_eq!(ids(&swept), [orphan.id.as_str()]);
    assert_eq!(
        marker_owner(&aws, "dedup#gh#id:d-3").await.as_deref(),
        Some(orphan.id.as_str())
    );
}

/// Events that are not deduplicated (`once:{id}`) write no marker at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_keys_write_no_marker() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let mut event = sample_event("gh", "");
    event.dedup_key = format!("once:{}", event.id);
    store.insert_event(&event, HOUR).await.unwrap();
    let marker = format!("dedup#gh#once:{}", event.id);
    assert!(raw_get(&aws, &marker).await.is_none(), "no marker");
    let item = raw_get(&aws, &event.id).await.expect("stored");
    assert!(!item.contains_key("dw"), "no window to finish");
    let swept = store.list_unenqueued(Utc::now(), 10).await.unwrap();
    assert_eq!(ids(&swept), [event.id.as_str()]);
}

/// Concurrent inserts of one dedup key: one event stays stored, every answer names it, the
/// losers' items are gone and the sweep finds only the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_leave_one_event() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let received_at = Utc::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let mut event = sample_event("race", "id:same");
            event.received_at = received_at;
            tokio::spawn(async move {
                let outcome = store.insert_event(&event, HOUR).await.expect("insert");
                (event.id, outcome)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut winners = Vec::new();
    let mut named = Vec::new();
    for handle in handles {
        let (id, outcome) = handle.await.expect("insert task");
        match outcome {
            InsertOutcome::Inserted => winners.push(id.clone()),
            InsertOutcome::Duplicate(original) => named.push(original.id),
        }
        all.push(id);
    }
    assert_eq!(winners.len(), 1, "one winner: {winners:?}");
    let winner = &winners[0];
    assert!(named.iter().all(|id| id == winner), "{named:?} vs {winner}");
    for id in &all {
        assert_eq!(
            raw_get(&aws, id).await.is_some(),
            id == winner,
            "only the winner's item remains ({id})"
        );
    }
    assert_eq!(
        marker_owner(&aws, "dedup#race#id:same").await.as_ref(),
        Some(winner)
    );
    let swept = store.list_unenqueued(Utc::now(), 10).await.unwrap();
    assert_eq!(ids(&swept), [winner.as_str()]);
}

/// Headers and body come back byte-identical through the compressed payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_round_trips_byte_identical() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let binary: Bytes = (0..=255u8).cycle().take(5000).collect();
    let large: Bytes = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let unicode = BTreeMap::from([
        ("x-name".to_owned(), "Zoë 🚀 東京".to_owned()),
        (
            "content-type".to_owned(),
            "text/plain; charset=utf-8".to_owned(),
        ),
    ]);
    let cases = [
        (BTreeMap::new(), Bytes::new(), None),
        (BTreeMap::new(), binary, Some("application/octet-stream")),
        (unicode.clone(), large, None),
        (unicode, Bytes::from("héllo ✓"), Some("text/plain")),
    ];
    for (i, (headers, body, content_type)) in cases.into_iter().enumerate() {
        let mut event = sample_event("rt", &format!("id:{i}"));
        event.headers = headers;
        event.body = body;
        event.content_type = content_type.map(str::to_owned);
        store.insert_event(&event, HOUR).await.unwrap();
        assert_eq!(
            store.get_event(&event.id).await.unwrap().as_ref(),
            Some(&event),
            "case {i}"
        );
    }
}

/// A damaged payload reads as `Corrupt`, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_payload_is_corrupt() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let event = sample_event("gh", "id:bad");
    store.insert_event(&event, HOUR).await.unwrap();
    aws.dynamodb()
        .update_item()
        .table_name(&aws.settings().events_table)
        .set_key(Some(aws.events_table_key(&event.id)))
        .update_expression("SET p = :p")
        .expression_attribute_values(":p", AttributeValue::B(vec![0x78, 0x9c, 1, 2, 3].into()))
        .send()
        .await
        .expect("UpdateItem");
    assert!(matches!(
        store.get_event(&event.id).await,
        Err(hookhub::ports::StoreError::Corrupt(_))
    ));
}

/// An SDK retry of an event put whose first try landed (same id, source, key and receive
/// time) is not a conflict: the insert goes on and owns its marker. Another event under a
/// taken id still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landed_put_tried_again_is_not_a_conflict() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let event = sample_event("gh", "id:again");
    store.insert_event(&event, HOUR).await.unwrap();
    assert_eq!(
        store.insert_event(&event, HOUR).await.unwrap(),
        InsertOutcome::Inserted
    );
    let mut other = event.clone();
    other.received_at += chrono::TimeDelta::nanoseconds(1);
    assert!(matches!(
        store.insert_event(&other, HOUR).await,
        Err(hookhub::ports::StoreError::Conflict(_))
    ));
    assert_eq!(store.get_event(&event.id).await.unwrap(), Some(event));
}

/// The event as the send-first receiver stores it: its task already on the queue.
fn sent(event: &Event) -> Event {
    Event {
        enqueued: true,
        ..event.clone()
    }
}

/// Send-first, the receiver crashed between the event's PutItem and its marker's: the
/// dispatcher's check claims the marker for it and delivers it; nothing is pending (the
/// sweep's index never saw it), and a later duplicate names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_first_check_claims_the_marker_of_an_event_stored_without_one() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let event = sample_event("gh", "id:s-1");
    store.insert_event(&sent(&event), HOUR).await.unwrap();
    let item = raw_get(&aws, &event.id).await.expect("stored");
    assert!(!item.contains_key("pending"), "not in the sweep's index");
    raw_delete(&aws, "dedup#gh#id:s-1").await;

    assert_eq!(
        store
            .confirm_sent(&event, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder
    );
    assert_eq!(
        marker_owner(&aws, "dedup#gh#id:s-1").await.as_deref(),
        Some(event.id.as_str())
    );
    assert!(store
        .list_unenqueued(Utc::now(), 10)
        .await
        .unwrap()
        .is_empty());
    let retry = sample_event("gh", "id:s-1");
    match store.insert_event(&sent(&retry), HOUR).await.unwrap() {
        InsertOutcome::Duplicate(original) => assert_eq!(original.id, event.id),
        other => panic!("{other:?}"),
    }
    assert!(
        raw_get(&aws, &retry.id).await.is_none(),
        "the retry's copy removed"
    );
}

/// Send-first, the receiver lost the marker race and crashed before deleting its copy: the
/// check supersedes the task and deletes the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_first_check_drops_a_loser_and_its_copy() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let winner = sample_event("gh", "id:s-2");
    store.insert_event(&sent(&winner), HOUR).await.unwrap();
    let mut loser = sample_event("gh", "id:tmp-s-2");
    store.insert_event(&sent(&loser), HOUR).await.unwrap();
    raw_set_dedup_key(&aws, &loser.id, "id:s-2").await;
    loser.dedup_key = "id:s-2".into();

    assert_eq!(
        store
            .confirm_sent(&loser, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Superseded {
            original_id: winner.id.clone()
        }
    );
    assert!(raw_get(&aws, &loser.id).await.is_none(), "copy deleted");
    assert_eq!(
        store
            .confirm_sent(&winner, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder
    );
}

/// The dispatcher's check and the receiver's insert of one event at the same moment (the
/// task taken off the queue while the receiver is still storing): both succeed, whichever
/// writes first, and one item and one marker name the event. Then concurrent sent-first
/// copies of one key: exactly one task holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_first_check_and_receiver_agree_under_races() {
    let aws = fresh_aws().await;
    let store = aws.store();
    for round in 0..6 {
        let event = sample_event("race", &format!("id:r-{round}"));
        let stored = sent(&event);
        let sent_first = SentFirst::new(HOUR);
        let (receiver, check) = tokio::join!(
            store.insert_event(&stored, HOUR),
            store.confirm_sent(&event, &sent_first)
        );
        assert_eq!(receiver.unwrap(), InsertOutcome::Inserted, "round {round}");
        assert_eq!(check.unwrap(), Confirmed::Holder, "round {round}");
        assert_eq!(
            marker_owner(&aws, &format!("dedup#race#id:r-{round}")).await,
            Some(event.id.clone())
        );
        assert_eq!(
            store.get_event(&event.id).await.unwrap(),
            Some(sent(&event))
        );
    }

    let received_at = Utc::now();
    let copies: Vec<Event> = (0..6)
        .map(|_| Event {
            received_at,
            ..sample_event("race", "id:same-sent")
        })
        .collect();
    let checks = futures::future::join_all(copies.iter().map(|e| {
        let store = store.clone();
        async move {
            store
                .confirm_sent(e, &SentFirst::new(HOUR))
                .await
                .expect("confirm")
        }
    }))
    .await;
    let holders: Vec<&str> = copies
        .iter()
        .zip(&checks)
        .filter(|(_, c)| **c == Confirmed::Holder)
        .map(|(e, _)| e.id.as_str())
        .collect();
    assert_eq!(holders.len(), 1, "one holder: {checks:?}");
    for (event, check) in copies.iter().zip(&checks) {
        if let Confirmed::Superseded { original_id } = check {
            assert_eq!(original_id, holders[0]);
            assert!(raw_get(&aws, &event.id).await.is_none());
        }
    }
}

/// Tasks that reach the check long after their event (retried through an outage, redriven from
/// the dead-letter queue), when the key's marker has expired or names a later event: a
/// duplicate's task must not take the key again, an acknowledged event's task still delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_first_check_of_a_late_task_trusts_the_stored_item_not_the_marker() {
    let aws = fresh_aws().await;
    let store = aws.store();
    let two_hours_ago = Utc::now() - chrono::TimeDelta::hours(2);
    let original = Event {
        received_at: two_hours_ago,
        ..sample_event("late", "id:l-1")
    };
    store.insert_event(&sent(&original), HOUR).await.unwrap();
    // The provider's retry, answered as a duplicate; its copy was deleted then.
    let retry = Event {
        received_at: two_hours_ago + chrono::TimeDelta::seconds(5),
        ..sample_event("late", "id:l-1")
    };
    match store.insert_event(&sent(&retry), HOUR).await.unwrap() {
        InsertOutcome::Duplicate(o) => assert_eq!(o.id, original.id),
        other => panic!("{other:?}"),
    }

    // The marker expired (TTL): the retry's task is kept, not delivered; the original's still
    // delivers, and neither takes the key again.
    raw_delete(&aws, "dedup#late#id:l-1").await;
    assert_eq!(
        store
            .confirm_sent(&retry, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Unverifiable
    );
    assert!(raw_get(&aws, &retry.id).await.is_none());
    assert_eq!(
        store
            .confirm_sent(&original, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder
    );
    assert!(marker_owner(&aws, "dedup#late#id:l-1").await.is_none());

    // The key reused a window later: the marker names the new event, which the late task of
    // the old duplicate must not be delivered beside.
    let later = sample_event("late", "id:l-1");
    assert_eq!(
        store.insert_event(&sent(&later), HOUR).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store
            .confirm_sent(&retry, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Unverifiable
    );
    assert_eq!(
        store
            .confirm_sent(&original, &SentFirst::new(HOUR))
            .await
            .unwrap(),
        Confirmed::Holder
    );
    assert_eq!(
        marker_owner(&aws, "dedup#late#id:l-1").await,
        Some(later.id.clone())
    );
}

//! The events table's layout on moto: events keyed by their shard (`pk`) and id, so the table
//! itself is the time-ordered listing; the ids Hookhub mints keep their shard when the count is
//! raised, so events written under the smaller count are still found, listed, paged and swept,
//! and a process still on the smaller count finds events written under the larger one; a table
//! of the earlier layout is refused.

use std::time::Duration;

use chrono::Utc;
use hookhub::aws::{Aws, AwsSettings};
use hookhub::contract::sample_event;
use hookhub::domain::Event;
use hookhub::ports::{EventQuery, EventRange, EventStore};
use hookhub_tests::moto::{scan_items, sdk_config, unique_prefix};

const HOUR: Duration = Duration::from_secs(3600);

/// An event of `source` with an id minted by `aws`'s store, as the receiver mints them.
fn minted_event(aws: &Aws, source: &str, dedup_key: &str) -> Event {
    Event {
        id: aws.store().new_event_id(),
        ..sample_event(source, dedup_key)
    }
}

async fn aws_with_shards(prefix: &str, list_shards: u32) -> Aws {
    let mut settings = AwsSettings::with_prefix(prefix);
    settings.list_shards = list_shards;
    let aws = Aws::new(&sdk_config().await, settings);
    aws.ensure_resources().await.expect("resources on moto");
    aws
}

/// Every event of `source` (all sources when `None`), newest first, in pages of `page`.
async fn list_all(store: &impl EventStore, source: Option<&str>, page: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let listed = store
            .list_events(&EventQuery {
                source_id: source.map(str::to_owned),
                before: before.clone(),
                limit: page,
            })
            .await
            .expect("list_events");
        ids.extend(listed.iter().map(|e| e.id.clone()));
        if listed.len() < page {
            return ids;
        }
        before = listed.last().map(|e| e.id.clone());
    }
}

/// Every event of `source` in `(after, through]`, oldest first, in pages of `page`.
async fn page_all(store: &impl EventStore, source: Option<&str>, page: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = "evt_".to_owned();
    loop {
        let range = EventRange {
            source_id: source.map(str::to_owned),
            after: after.clone(),
            through: "evt_~".to_owned(),
        };
        let listed = store.events_page(&range, page).await.expect("events_page");
        ids.extend(listed.iter().map(|e| e.id.clone()));
        if listed.len() < page {
            return ids;
        }
        after = listed.last().expect("a full page").id.clone();
    }
}

fn sorted_ids(events: &[Event], source: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .filter(|e| source.is_none_or(|s| e.source_id == s))
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_under_fewer_shards_are_found_after_a_raise() {
    let prefix = unique_prefix();
    let before = aws_with_shards(&prefix, 2).await;
    let mut events = Vec::new();
    for i in 0..24 {
        let event = minted_event(
            &before,
            if i % 3 == 0 { "shop" } else { "gh" },
            &format!("old-{i}"),
        );
        before
            .store()
            .insert_event(&event, HOUR)
            .await
            .expect("insert");
        events.push(event);
    }
    let after = aws_with_shards(&prefix, 16).await;
    for event in &events {
        assert_eq!(
            before.events_table_key(&event.id),
            after.events_table_key(&event.id),
            "a minted id keeps its shard"
        );
    }
    for i in 0..10 {
        let event = minted_event(&after, "gh", &format!("new-{i}"));
        after
            .store()
            .insert_event(&event, HOUR)
            .await
            .expect("insert");
        events.push(event);
    }
    assert!(
        events[..24].iter().all(|e| shard_of(&after, &e.id) < 2),
        "minted under 2 shards, still in one of them under 16"
    );
    assert!(
        events[24..].iter().any(|e| shard_of(&after, &e.id) >= 2),
        "new events use the added shards: the test means something"
    );
    // A process still on the smaller count (during a deployment) finds the new ones by id.
    for event in &events[24..] {
        let found = before
            .store()
            .get_event(&event.id)
            .await
            .expect("get_event");
        assert_eq!(
            found.map(|e| e.id),
            Some(event.id.clone()),
            "found by the old count"
        );
    }
    let store = after.store();

    for event in &events {
        let found = store.get_event(&event.id).await.expect("get_event");
        assert_eq!(
            found.as_ref().map(|e| &e.id),
            Some(&event.id),
            "found by id"
        );
    }
    assert_eq!(
        store
            .get_event("evt_01JD6Q4XN5S0ZC4Y7B1V9K2M3P")
            .await
            .unwrap(),
        None
    );

    for source in [None, Some("gh"), Some("shop")] {
        let mut newest_first = sorted_ids(&events, source);
        newest_first.reverse();
        for page in [1, 5, 50] {
            assert_eq!(
                list_all(&store, source, page).await,
                newest_first,
                "listed, source {source:?}, pages of {page}"
            );
            let mut oldest_first = newest_first.clone();
            oldest_first.reverse();
            assert_eq!(
                page_all(&store, source, page).await,
                oldest_first,
                "paged, source {source:?}, pages of {page}"
            );
        }
    }

    // The sweep's index and the enqueued mark reach the old shards too.
    let unenqueued = store.list_unenqueued(Utc::now(), 100).await.unwrap();
    assert_eq!(
        unenqueued.len(),
        events.len(),
        "every event stored before its task"
    );
    for event in &events {
        store.mark_enqueued(&event.id).await.expect("mark_enqueued");
    }
    assert!(store
        .list_unenqueued(Utc::now(), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .mark_enqueued("evt_01JD6Q4XN5S0ZC4Y7B1V9K2M3P")
        .await
        .is_err());

    // Nothing was written twice: one item per event, plus its dedup marker.
    let items = scan_items(&after, &after.settings().events_table).await;
    assert_eq!(items.len(), events.len() * 2, "events and their markers");
}

/// A duplicate under the raised count is answered with the original written under the smaller
/// one, and its own copy is deleted.
/// What the receiver and the operational events mint through (the backend's intake) and the
/// event store itself both give ids in the table's shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_mints_ids_into_the_shards() {
    let aws = aws_with_shards(&unique_prefix(), 4).await;
    let backend = aws.backend().await.expect("backend");
    for _ in 0..50 {
        for id in [backend.intake.new_event_id(), backend.events.new_event_id()] {
            assert!(aws.is_minted_event_id(&id), "{id}");
            assert!(shard_of(&aws, &id) < 4, "{id}");
        }
    }
}

fn shard_of(aws: &Aws, id: &str) -> u32 {
    aws.events_table_key(id)["pk"]
        .as_s()
        .expect("pk is a string")
        .parse()
        .expect("a shard number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_answered_with_an_event_written_under_fewer_shards() {
    let prefix = unique_prefix();
    let before = aws_with_shards(&prefix, 1).await;
    let original = minted_event(&before, "gh", "delivery-7");
    before
        .store()
        .insert_event(&original, HOUR)
        .await
        .expect("insert");
    let after = aws_with_shards(&prefix, 1024).await;
    let retry = minted_event(&after, "gh", "delivery-7");
    match after.store().insert_event(&retry, HOUR).await.unwrap() {
        hookhub::ports::InsertOutcome::Duplicate(found) => assert_eq!(found.id, original.id),
        other => panic!("expected the original, got {other:?}"),
    }
    assert_eq!(after.store().get_event(&retry.id).await.unwrap(), None);

    // A process still on the smaller count given an id minted under the larger one (a
    // deployment, part way): it stores the copy under its own count's shard, then finds and
    // deletes it there after trying the id's own shard.
    let late = loop {
        let event = minted_event(&after, "gh", "delivery-7");
        if !before.is_minted_event_id(&event.id) {
            break event;
        }
    };
    match before.store().insert_event(&late, HOUR).await.unwrap() {
        hookhub::ports::InsertOutcome::Duplicate(found) => assert_eq!(found.id, original.id),
        other => panic!("expected the original, got {other:?}"),
    }
    assert_eq!(before.store().get_event(&late.id).await.unwrap(), None);
    let items = scan_items(&after, &after.settings().events_table).await;
    assert_eq!(
        items.len(),
        2,
        "the original and its marker only: {items:?}"
    );
}

/// An events table of the earlier layout (keyed by `id` alone, with `by-time`) is refused at
/// start with both keys named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_table_of_the_earlier_layout_is_refused() {
    let settings = AwsSettings::with_prefix(&unique_prefix());
    let aws = Aws::new(&sdk_config().await, settings.clone());
    hookhub_tests::moto::create_table_keyed(&aws, &settings.events_table, "id", None).await;
    let error = aws
        .ensure_resources()
        .await
        .expect_err("the old events table is refused")
        .to_string();
    assert!(
        error.contains("has the key (id), this version expects (pk, id)"),
        "{error}"
    );
}

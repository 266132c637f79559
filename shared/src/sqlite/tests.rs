//! SQLite-specific behaviour; the shared port behaviour is covered by the contract suite
//! (`tests/tests/contract_sqlite.rs`).

use std::time::Duration;

use chrono::Utc;
use rusqlite::params;

use super::*;
use crate::domain::{new_id, Event, Source, Task};
use crate::ports::{
    EventQuery, EventStore, InsertOutcome, SourceStore, SubscriptionStore, TaskQueue,
};
use crate::verify::VerifyConfig;

fn source(id: &str) -> Source {
    Source {
        id: id.to_owned(),
        verify: VerifyConfig::None,
        dedup_config: None,
        created_at: Utc::now(),
    }
}

fn event(source_id: &str, dedup_key: &str) -> Event {
    Event {
        id: new_id("evt"),
        source_id: source_id.to_owned(),
        event_type: "ping".to_owned(),
        received_at: Utc::now(),
        content_type: None,
        dedup_key: dedup_key.to_owned(),
        headers: Default::default(),
        body: bytes::Bytes::from_static(b"\xff\x00body"),
        enqueued: false,
    }
}

fn task(event_id: &str) -> Task {
    Task::Dispatch {
        event_id: event_id.to_owned(),
        event: None,
        sent_first: None,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Runs raw SQL on the connection, for planting bad data.
fn exec(b: &SqliteBackend, sql: &str) {
    let sql = sql.to_owned();
    b.with_writer_conn(move |c| c.execute_batch(&sql).unwrap());
}

#[tokio::test]
async fn reopening_the_file_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/hookhub.db");
    let e = event("github", "d1");
    {
        let b = SqliteBackend::open(&path).unwrap();
        b.create_source(&source("github")).await.unwrap();
        b.insert_event(&e, HOUR).await.unwrap();
        b.send(&task(&e.id), Duration::ZERO).await.unwrap();
    }
    let b = SqliteBackend::open(&path).unwrap();
    assert_eq!(b.get_source("github").await.unwrap().unwrap().id, "github");
    assert_eq!(b.get_event(&e.id).await.unwrap(), Some(e.clone()));
    assert_eq!(b.queue_depth().await.unwrap(), 1);
    // Dedup state survives too.
    let again = event("github", "d1");
    assert!(matches!(
        b.insert_event(&again, HOUR).await.unwrap(),
        InsertOutcome::Duplicate(_)
    ));

    let (version, mode, sync) = b.with_writer_conn(|conn| {
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        (version, mode, sync)
    });
    assert_eq!(version, MIGRATIONS.len() as i64);
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookhub.db");
    drop(SqliteBackend::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        SqliteBackend::open(&path),
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn bad_stored_data_is_corrupt_not_a_panic() {
    let b = SqliteBackend::open_in_memory().unwrap();
    exec(
        &b,
        "INSERT INTO sources (id, data) VALUES ('bad', '{not json')",
    );
    assert!(matches!(
        b.get_source("bad").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        b.list_sources().await,
        Err(StoreError::Corrupt(_))
    ));
    exec(
        &b,
        "INSERT INTO events (id, source_id, event_type, received_at, dedup_key, headers, body)
         VALUES ('evt_bad', 's', 't', 'yesterday', 'k', '{}', x'00')",
    );
    assert!(matches!(
        b.get_event("evt_bad").await,
        Err(StoreError::Corrupt(_))
    ));
    exec(
        &b,
        "UPDATE events SET received_at = '2024-01-01T00:00:00.000000000Z', headers = '[1]'",
    );
    assert!(matches!(
        b.get_event("evt_bad").await,
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn errors_map_to_store_errors() {
    let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
    assert!(matches!(
        db_err(failure(rusqlite::ffi::SQLITE_BUSY)),
        StoreError::Unavailable(_)
    ));
    assert!(matches!(
        db_err(failure(rusqlite::ffi::SQLITE_LOCKED)),
        StoreError::Unavailable(_)
    ));
    assert!(matches!(
        db_err(failure(rusqlite::ffi::SQLITE_IOERR)),
        StoreError::Unavailable(_)
    ));
    assert!(matches!(
        db_err(failure(rusqlite::ffi::SQLITE_CORRUPT)),
        StoreError::Corrupt(_)
    ));
    let constraint = failure(rusqlite::ffi::SQLITE_CONSTRAINT);
    assert!(matches!(
        insert_err(constraint, || "x".into()),
        StoreError::Conflict(_)
    ));
}

#[tokio::test]
async fn list_limits_default_and_cap() {
    let b = SqliteBackend::open_in_memory().unwrap();
    let received_at = Utc::now() - chrono::TimeDelta::minutes(1);
    // Planted directly: 1001 separate fsync'd inserts would be slow for no gain.
    b.with_writer_conn(move |conn| {
        let tx = conn.transaction().unwrap();
        for i in 0..1001 {
            tx.execute(
                "INSERT INTO events (id, source_id, event_type, received_at, dedup_key, headers, body)
                 VALUES (?1, 's', 't', ?2, ?1, '{}', x'')",
                params![format!("evt_{i:05}"), ts(&received_at)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    });
    let page = |limit| EventQuery {
        source_id: None,
        before: None,
        limit,
    };
    assert_eq!(
        b.list_events(&page(0)).await.unwrap().len(),
        50,
        "0 means the default page"
    );
    assert_eq!(
        b.list_events(&page(5000)).await.unwrap().len(),
        1000,
        "capped"
    );
    assert_eq!(b.list_unenqueued(Utc::now(), 0).await.unwrap().len(), 50);
}

#[tokio::test]
async fn mark_enqueued_on_a_missing_event_is_not_found() {
    let b = SqliteBackend::open_in_memory().unwrap();
    assert!(matches!(
        b.mark_enqueued("evt_nope").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn stale_receipt_neither_acks_nor_dead_letters() {
    let b = SqliteBackend::open_in_memory().unwrap();
    b.send(&task("evt_1"), Duration::ZERO).await.unwrap();
    let first = b.receive(1, Duration::ZERO).await.unwrap().remove(0);
    let second = b
        .receive(1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.receive_count, 2);
    b.ack(&first.receipt).await.unwrap();
    b.dead_letter(&first, "stale").await.unwrap();
    assert_eq!(
        b.queue_depth().await.unwrap(),
        1,
        "the current holder keeps the message"
    );
    assert!(b.dead_letters().await.unwrap().is_empty());
    b.dead_letter(&second, "malformed").await.unwrap();
    assert_eq!(b.queue_depth().await.unwrap(), 0);
    let dead = b.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].reason.as_str(), dead[0].receive_count),
        ("malformed", 2)
    );
    assert_eq!(dead[0].body, task("evt_1").to_json());
}

#[tokio::test]
async fn zero_visibility_hands_a_message_out_once_per_call() {
    let b = SqliteBackend::open_in_memory().unwrap();
    b.send(&task("evt_1"), Duration::ZERO).await.unwrap();
    assert_eq!(b.receive(10, Duration::ZERO).await.unwrap().len(), 1);
}

#[tokio::test]
async fn release_inflight_makes_received_messages_visible() {
    let b = SqliteBackend::open_in_memory().unwrap();
    b.send_batch(&[
        (task("evt_1"), Duration::ZERO),
        (task("evt_2"), Duration::from_secs(3600)),
    ])
    .await
    .unwrap();
    let held = b.receive(10, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(b
        .receive(10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.release_inflight().await.unwrap(),
        1,
        "only the received one, not the delayed"
    );
    let again = b.receive(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].body.as_str(), again[0].receive_count),
        (held[0].body.as_str(), 2)
    );
    b.ack(&held[0].receipt).await.unwrap();
    assert_eq!(
        b.queue_depth().await.unwrap(),
        2,
        "the old receipt no longer acks"
    );
}

#[tokio::test]
async fn messages_received_too_often_are_dead_lettered() {
    let b = SqliteBackend::open_in_memory()
        .unwrap()
        .with_max_receives(2);
    b.send(&task("poison"), Duration::ZERO).await.unwrap();
    for round in 1..=2 {
        let got = b.receive(1, Duration::ZERO).await.unwrap();
        assert_eq!(got[0].body, task("poison").to_json());
        assert_eq!(got[0].receive_count, round);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Sent later, so it sorts after the poison message.
    b.send(&task("fine"), Duration::ZERO).await.unwrap();
    // The third receive parks the poison message and still fills the request with the next one.
    let got = b.receive(1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, task("fine").to_json());
    let dead = b.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].body.clone(), dead[0].receive_count),
        (task("poison").to_json(), 2)
    );
    assert_eq!(b.queue_depth().await.unwrap(), 1);
}

#[tokio::test]
async fn long_delays_are_native() {
    let b = SqliteBackend::open_in_memory().unwrap();
    b.send(&task("later"), Duration::from_secs(30 * 86_400))
        .await
        .unwrap();
    b.send(&task("forever"), Duration::MAX).await.unwrap();
    assert!(b
        .receive(10, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.queue_depth().await.unwrap(), 2);
}

#[tokio::test]
async fn notifier_fires_on_send() {
    let b = SqliteBackend::open_in_memory().unwrap();
    let notify = b.notifier();
    // A waiter already parked is woken…
    let waiter = tokio::spawn({
        let notify = notify.clone();
        async move { notify.notified().await }
    });
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.send(&task("evt_1"), Duration::ZERO).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
    // …and a send while nobody waits is not lost for the next waiter.
    b.send_batch(&[(task("evt_2"), Duration::ZERO)])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), notify.notified())
        .await
        .expect("permit kept");
}

#[tokio::test]
async fn dedup_key_pointing_at_a_missing_event_is_free() {
    let b = SqliteBackend::open_in_memory().unwrap();
    let first = event("s", "k");
    b.insert_event(&first, HOUR).await.unwrap();
    exec(&b, &format!("DELETE FROM events WHERE id = '{}'", first.id));
    let second = event("s", "k");
    assert_eq!(
        b.insert_event(&second, HOUR).await.unwrap(),
        InsertOutcome::Inserted
    );
}

#[tokio::test]
async fn a_failed_write_rolls_back_alone_in_its_group_commit() {
    let conn = Connection::open_in_memory().unwrap();
    let conn = SqliteBackend::prepare_writer(conn, false).unwrap();
    let insert = |id: &'static str, fail_after: bool| {
        write_job(move |c| {
            super::exec(c, "INSERT INTO sources (id, data) VALUES (?1, '{}')", [id])
                .map_err(db_err)?;
            if fail_after {
                return Err(StoreError::Unavailable("injected".into()));
            }
            Ok(())
        })
    };
    let (first, first_done) = insert("a", false);
    let (failing, failing_done) = insert("b", true);
    let (taken, taken_done) = insert("a", false);
    let (last, last_done) = insert("c", false);
    group_commit(&conn, vec![first, failing, taken, last]);

    assert!(first_done.await.unwrap().is_ok());
    assert!(matches!(
        failing_done.await.unwrap(),
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        taken_done.await.unwrap().is_err(),
        "a constraint violation fails that write only"
    );
    assert!(last_done.await.unwrap().is_ok());
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM sources ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ids,
        ["a", "c"],
        "the failed write's own insert was rolled back"
    );
    assert!(conn.is_autocommit(), "the batch committed");
}

/// Concurrent health outcomes on SQLite all count: each is one write on the single writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_health_outcomes_all_count() {
    use crate::decision::{Circuit, HealthOutcome, HealthPolicy};
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteBackend::open(&dir.path().join("h.db")).unwrap();
    let sub = crate::domain::Subscription::new(
        new_id("sub"),
        "https://example.com/hooks",
        crate::domain::Secret::new("whsec_x"),
        Utc::now(),
    );
    db.create_subscription(&sub).await.unwrap();
    let policy = HealthPolicy {
        breaker_threshold: 5,
        ..HealthPolicy::default()
    };
    let changes =
        futures::future::join_all((0..40).map(|_| {
            db.record_outcome(&sub.id, HealthOutcome::Failure, chrono::Utc::now(), &policy)
        }))
        .await;
    let opened = changes
        .into_iter()
        .filter(|c| c.as_ref().unwrap().unwrap().circuit == Some(Circuit::Open))
        .count();
    assert_eq!(opened, 1);
    let stored = db.get_subscription(&sub.id).await.unwrap().unwrap();
    assert_eq!(stored.health.consecutive_failures, 40);
    let claims = futures::future::join_all((0..10).map(|_| {
        db.claim_probe(
            &sub.id,
            chrono::Utc::now() + chrono::TimeDelta::hours(1),
            &policy,
        )
    }))
    .await;
    let won = claims
        .into_iter()
        .filter(|c| c.as_ref().unwrap().as_ref().unwrap().claimed)
        .count();
    assert_eq!(won, 1);
}

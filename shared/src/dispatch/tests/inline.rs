//! A dispatch task with its event inline (plain or packed) is delivered without `get_event`;
//! one by reference still reads it; one whose inline event has another id is malformed
//! (dead-lettered). A task sent before its store stores the event first, or is dropped when
//! another event holds its dedup key.
//!
//! The other inline events are never stored: had the dispatcher read one back, it would have found
//! nothing and delivered nothing (`fan_out` drops a task for an event that no longer exists).

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::super::*;
use crate::delivery::DeliveryOptions;
use crate::domain::InlineEvent;
use crate::ports::ReceivedTask;

/// A subscriber on 127.0.0.1 answering 204 and keeping each body it receives.
async fn subscriber() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

struct Fixture {
    dispatcher: Dispatcher,
    received: Arc<Mutex<Vec<Bytes>>>,
}

async fn fixture() -> Fixture {
    let backend = crate::sqlite::SqliteBackend::open_in_memory()
        .unwrap()
        .into_backend();
    let (url, received) = subscriber().await;
    let subscription =
        Subscription::new("sub_1", url, crate::signing::generate_secret(), Utc::now());
    backend
        .subscriptions
        .create_subscription(&subscription)
        .await
        .unwrap();
    let client = DeliveryClient::new(&DeliveryOptions {
        allow_private_targets: true,
        ..DeliveryOptions::default()
    })
    .unwrap();
    Fixture {
        dispatcher: Dispatcher::new(backend, client, DispatcherConfig::default()),
        received,
    }
}

fn event(body: &'static str) -> Event {
    Event {
        id: crate::domain::new_id("evt"),
        source_id: "github".into(),
        event_type: "push".into(),
        received_at: Utc::now(),
        content_type: Some("application/json".into()),
        dedup_key: format!("id:{body}"),
        headers: BTreeMap::from([("x-github-event".into(), "push".into())]),
        body: Bytes::from_static(body.as_bytes()),
        enqueued: true,
    }
}

async fn process(f: &Fixture, task: &Task) -> TaskOutcome {
    let message = ReceivedTask {
        body: task.to_json(),
        receipt: "r-1".into(),
        receive_count: 1,
    };
    f.dispatcher.process(&message).await.expect("processed")
}

/// Processing `task` delivers `e`'s body once, and the attempt is logged as a success.
async fn delivers(f: &Fixture, task: &Task, e: &Event) {
    assert_eq!(process(f, task).await, TaskOutcome::Done);
    let attempts = f
        .dispatcher
        .backend()
        .attempts
        .attempts_for_event(&e.id)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(attempts[0].succeeded(), "{attempts:?}");
    assert_eq!(*f.received.lock().unwrap(), vec![e.body.clone()]);
}

#[tokio::test]
async fn an_inline_event_is_delivered_without_reading_it() {
    let f = fixture().await;
    // Not even stored: the task is all the dispatcher has.
    let e = event(r#"{"ref":"inline"}"#);
    let task = Task::Dispatch {
        event_id: e.id.clone(),
        event: Some(InlineEvent::new(&e)),
        sent_first: None,
    };
    delivers(&f, &task, &e).await;
}

#[tokio::test]
async fn a_task_by_reference_reads_the_event() {
    let f = fixture().await;
    let e = event(r#"{"ref":"by-reference"}"#);
    f.dispatcher
        .backend()
        .events
        .insert_event(&e, Duration::from_secs(3600))
        .await
        .unwrap();
    let task = Task::Dispatch {
        event_id: e.id.clone(),
        event: None,
        sent_first: None,
    };
    delivers(&f, &task, &e).await;
}

#[tokio::test]
async fn an_inline_event_of_another_id_is_malformed() {
    let f = fixture().await;
    let e = event(r#"{"ref":"mismatch"}"#);
    let task = Task::Dispatch {
        event_id: "evt_other".into(),
        event: Some(InlineEvent::new(&e)),
        sent_first: None,
    };
    match process(&f, &task).await {
        TaskOutcome::Malformed(reason) => {
            assert!(
                reason.contains("evt_other") && reason.contains(&e.id),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(f.received.lock().unwrap().is_empty(), "nothing delivered");
}

#[tokio::test]
async fn a_packed_inline_event_is_delivered_byte_for_byte() {
    let f = fixture().await;
    let e = event(r#"{"ref":"packed","commits":[1,2,3]}"#);
    let task = Task::Dispatch {
        event_id: e.id.clone(),
        event: Some(InlineEvent::packed(&e)),
        sent_first: None,
    };
    // Through the wire form, as the queue carries it.
    let task = Task::from_json(&task.to_json()).unwrap();
    delivers(&f, &task, &e).await;
}

fn sent_first(e: &Event) -> Task {
    Task::Dispatch {
        event_id: e.id.clone(),
        event: Some(InlineEvent::new(e)),
        sent_first: Some(crate::domain::SentFirst::new(Duration::from_secs(3600))),
    }
}

#[tokio::test]
async fn a_task_sent_before_its_store_stores_the_event_then_delivers_it() {
    let f = fixture().await;
    let e = event(r#"{"ref":"sent-first"}"#);
    delivers(&f, &sent_first(&e), &e).await;
    let events = &f.dispatcher.backend().events;
    let stored = events.get_event(&e.id).await.unwrap().expect("stored");
    assert_eq!(stored.body, e.body);
    assert!(stored.enqueued);
}

#[tokio::test]
async fn a_duplicate_sent_before_its_store_is_dropped() {
    let f = fixture().await;
    let original = event(r#"{"ref":"dup"}"#);
    let events = f.dispatcher.backend().events.clone();
    events
        .insert_event(&original, Duration::from_secs(3600))
        .await
        .unwrap();
    // The provider's retry: same dedup key, its own id; the receiver answered with the
    // original's id.
    let retry = event(r#"{"ref":"dup"}"#);
    assert_eq!(process(&f, &sent_first(&retry)).await, TaskOutcome::Done);
    assert!(f.received.lock().unwrap().is_empty(), "nothing delivered");
    assert!(events.get_event(&retry.id).await.unwrap().is_none());
    let attempts = &f.dispatcher.backend().attempts;
    assert!(attempts
        .attempts_for_event(&retry.id)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_task_sent_first_without_its_event_is_malformed() {
    let f = fixture().await;
    let e = event(r#"{"ref":"no-event"}"#);
    let Task::Dispatch { sent_first: s, .. } = sent_first(&e) else {
        unreachable!()
    };
    let task = Task::Dispatch {
        event_id: e.id.clone(),
        event: None,
        sent_first: s,
    };
    assert!(matches!(
        process(&f, &task).await,
        TaskOutcome::Malformed(_)
    ));
}

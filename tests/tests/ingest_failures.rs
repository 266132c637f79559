//! Never lose data: with the queue or the event table down, the receiver answers 503 and the
//! provider's retry (or the sweep) still ends with the event delivered exactly once.
//! Counts reported: sent, acknowledged, delivered, duplicated.

use std::sync::Arc;
use std::time::Duration;

use hookhub_tests::faults::Faults;
use hookhub_tests::{temp_dir, DevOptions, DevServer, Sink};
use serde_json::{json, Value};

async fn setup(
    faults: &Arc<Faults>,
    sweep_grace: Duration,
) -> (tempfile::TempDir, DevServer, Sink) {
    setup_with(faults, sweep_grace, false).await
}

/// `sent_first`: the receiver sends the task before it stores the event (the AWS intake).
async fn setup_with(
    faults: &Arc<Faults>,
    sweep_grace: Duration,
    sent_first: bool,
) -> (tempfile::TempDir, DevServer, Sink) {
    let dir = temp_dir();
    let mut options = DevOptions {
        sweep_grace,
        ..DevOptions::default()
    };
    if sent_first {
        // A task whose check failed (the table down) comes back within seconds.
        options.visibility_timeout = Duration::from_secs(2);
    }
    let wrapper = faults.clone();
    let server = DevServer::start_wrapped(dir.path(), options, move |b| {
        if sent_first {
            wrapper.wrap_sent_first(b)
        } else {
            wrapper.wrap(b)
        }
    })
    .await;
    let admin = server.admin();
    admin
        .post(
            "/v1/sources",
            // The provider's retries carry the same `webhook-id`: that is what makes them one.
            json!({"id": "shop", "verify": {"scheme": "none"},
                   "dedup": {"key": "header:webhook-id"}}),
        )
        .await;
    let sink = Sink::start().await;
    admin
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;
    (dir, server, sink)
}

async fn post(server: &DevServer, body: &str) -> (u16, Value) {
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("shop"))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_order_1")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// How many events the admin API lists.
async fn stored_events(server: &DevServer) -> usize {
    let events = server.admin().get("/v1/events").await;
    events["data"].as_array().map_or(0, Vec::len)
}

struct Counts {
    sent: usize,
    acknowledged: usize,
}

async fn assert_delivered_once(server: &DevServer, sink: &Sink, counts: Counts) {
    sink.wait_for(1, Duration::from_secs(20)).await;
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let delivered = sink.count();
    let events = server.admin().get("/v1/events").await;
    println!(
        "sent={} acknowledged={} delivered={delivered} duplicated={}",
        counts.sent,
        counts.acknowledged,
        delivered.saturating_sub(1)
    );
    assert_eq!(delivered, 1, "delivered exactly once");
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_down_answers_503_and_the_providers_retry_is_delivered_once() {
    let faults = Arc::new(Faults::default());
    // A long grace keeps the sweep out of this test: the provider's retry must do the work.
    let (_dir, server, sink) = setup(&faults, Duration::from_secs(3600)).await;
    let body = r#"{"type":"order.created","id":1}"#;

    Faults::set(&faults.queue_send_down, true);
    let (status, error) = post(&server, body).await;
    assert_eq!(status, 503);
    assert_eq!(error["error"]["code"], "unavailable");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 0);

    Faults::set(&faults.queue_send_down, false);
    let (status, ok) = post(&server, body).await;
    assert_eq!(status, 200);
    assert_eq!(
        ok["duplicate"], true,
        "the first attempt's event is the one completed"
    );
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 2,
            acknowledged: 1,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_table_down_answers_503_and_stores_nothing_until_the_retry() {
    let faults = Arc::new(Faults::default());
    let (_dir, server, sink) = setup(&faults, Duration::from_secs(1)).await;
    let body = r#"{"type":"order.created","id":2}"#;

    Faults::set(&faults.event_insert_down, true);
    let (status, _) = post(&server, body).await;
    assert_eq!(status, 503);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 0);
    assert_eq!(stored_events(&server).await, 0);

    Faults::set(&faults.event_insert_down, false);
    let (status, ok) = post(&server, body).await;
    assert_eq!(status, 200);
    assert_eq!(ok["duplicate"], false);
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 2,
            acknowledged: 1,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_but_unconfirmed_then_retried_is_still_delivered_once() {
    let faults = Arc::new(Faults::default());
    let (_dir, server, sink) = setup(&faults, Duration::from_secs(3600)).await;
    let body = r#"{"type":"order.created","id":3}"#;

    // The task reaches the queue but the confirmation write fails: 503, and the retry
    // enqueues a second dispatch task. The dispatcher must not deliver twice.
    Faults::set(&faults.mark_enqueued_down, true);
    let (status, _) = post(&server, body).await;
    assert_eq!(status, 503);
    Faults::set(&faults.mark_enqueued_down, false);
    // Providers retry seconds later, after the first task has been processed.
    sink.wait_for(1, Duration::from_secs(20)).await;
    let (status, _) = post(&server, body).await;
    assert_eq!(status, 200);
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 2,
            acknowledged: 1,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_enqueues_an_event_the_provider_never_retried() {
    let faults = Arc::new(Faults::default());
    let (_dir, server, sink) = setup(&faults, Duration::from_secs(1)).await;

    Faults::set(&faults.queue_send_down, true);
    let (status, _) = post(&server, r#"{"type":"order.created","id":4}"#).await;
    assert_eq!(status, 503);
    Faults::set(&faults.queue_send_down, false);
    // No retry from the provider: the worker's sweep finds the stored, unenqueued event.
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 1,
            acknowledged: 0,
        },
    )
    .await;
}

/// The send-first intake (AWS): the queue down means nothing was sent and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_first_queue_down_answers_503_and_stores_nothing() {
    let faults = Arc::new(Faults::default());
    let (_dir, server, sink) = setup_with(&faults, Duration::from_secs(3600), true).await;
    let body = r#"{"type":"order.created","id":5}"#;

    Faults::set(&faults.queue_send_down, true);
    let (status, error) = post(&server, body).await;
    assert_eq!(status, 503);
    assert_eq!(error["error"]["code"], "unavailable");
    assert_eq!(stored_events(&server).await, 0, "nothing stored");

    Faults::set(&faults.queue_send_down, false);
    let (status, ok) = post(&server, body).await;
    assert_eq!(status, 200);
    assert_eq!(
        ok["duplicate"], false,
        "the retry is the first event stored"
    );
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 2,
            acknowledged: 1,
        },
    )
    .await;
}

/// The send-first intake (AWS): the task is on the queue, the store fails (503). The
/// dispatcher stores the event once the table is back and delivers it, even without a
/// provider retry; a later retry is answered as its duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_first_table_down_answers_503_and_the_dispatcher_stores_and_delivers_it() {
    let faults = Arc::new(Faults::default());
    let (_dir, server, sink) = setup_with(&faults, Duration::from_secs(3600), true).await;
    let body = r#"{"type":"order.created","id":6}"#;

    Faults::set(&faults.event_insert_down, true);
    let (status, _) = post(&server, body).await;
    assert_eq!(status, 503);
    // The dispatcher's check fails the same way while the table is down: nothing delivered.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 0, "not delivered before it is stored");
    Faults::set(&faults.event_insert_down, false);
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 1,
            acknowledged: 0,
        },
    )
    .await;
    let stored = server.admin().get("/v1/events").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, again) = post(&server, body).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], stored.as_str());
    assert_delivered_once(
        &server,
        &sink,
        Counts {
            sent: 2,
            acknowledged: 1,
        },
    )
    .await;
}

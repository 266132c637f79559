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
    let dir = temp_dir();
    let options = DevOptions {
        sweep_grace,
        ..DevOptions::default()
    };
    let wrapper = faults.clone();
    let server = DevServer::start_wrapped(dir.path(), options, move |b| wrapper.wrap(b)).await;
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
    assert_eq!(
        server.admin().get("/v1/events").await["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

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

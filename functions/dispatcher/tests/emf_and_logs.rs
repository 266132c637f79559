//! What a receiver and a dispatcher invocation print, on moto with a real sink: the CloudWatch
//! EMF lines (checked against the specification's structure) and the JSON log lines (fields
//! as JSON values, no `Debug` text). Its own test binary: the metric recorder and the log
//! subscriber are process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookhub::admin::{Admin, CreateSource};
use hookhub::delivery::DeliveryOptions;
use hookhub::dispatch::DispatcherConfig;
use hookhub::domain::Subscription;
use hookhub::ingest::ReceiverConfig;
use hookhub::metrics::emf::{self, Output};
use hookhub::signing::generate_secret;
use hookhub_dispatcher::{handle_batch, DispatcherContext, SqsEvent};
use hookhub_tests::moto::fresh_aws;
use hookhub_tests::Sink;
use lambda_http::tower::ServiceExt;
use serde_json::{json, Value};

const WEBHOOK: &str = include_str!("../../../events/receiver-webhook.json");
const SUBSCRIPTION: &str = "sub_01JP7EMF000000000000000000";

/// Log lines written by the process's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn json_lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn take(lines: &Arc<Mutex<Vec<String>>>) -> Vec<Value> {
    std::mem::take(&mut *lines.lock().unwrap())
        .iter()
        .map(|l| serde_json::from_str(l).expect("an EMF line is one JSON object"))
        .collect()
}

/// The specification's structure: `_aws.Timestamp` (ms), directives with the namespace,
/// dimension sets and metric definitions, and every dimension and metric named there as a
/// top-level member.
fn check_emf(doc: &Value) {
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "{doc}"
    );
    for d in aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics")
    {
        assert_eq!(d["Namespace"], "Hookhub");
        for set in d["Dimensions"].as_array().expect("Dimensions") {
            for dim in set.as_array().expect("a dimension set") {
                let dim = dim.as_str().unwrap();
                assert!(doc[dim].is_string(), "dimension {dim} not a member: {doc}");
            }
        }
        for m in d["Metrics"].as_array().expect("Metrics") {
            let name = m["Name"].as_str().unwrap();
            assert!(m["Unit"].is_string(), "{doc}");
            assert!(
                doc[name].is_number() || doc[name].is_array(),
                "{name}: {doc}"
            );
        }
    }
}

/// Name → (unit, dimension sets) of every metric a line declares.
fn declared(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
        for m in d["Metrics"].as_array().unwrap() {
            out.push((
                m["Name"].as_str().unwrap().to_string(),
                m["Unit"].as_str().unwrap().to_string(),
                d["Dimensions"].clone(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_and_dispatcher_print_emf_and_json_logs() {
    let emf_lines = Arc::new(Mutex::new(Vec::new()));
    emf::install("Hookhub", Output::Capture(emf_lines.clone()));
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();

    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let source: CreateSource = serde_json::from_value(json!({
        "id": "github",
        "verify": {"scheme": "github", "secret": "my-github-secret"},
    }))
    .unwrap();
    Admin::new(backend.clone())
        .create_source(source)
        .await
        .unwrap();
    let sink = Sink::start().await;
    let subscription = Subscription::new(
        SUBSCRIPTION,
        &sink.url,
        generate_secret(),
        chrono::Utc::now(),
    );
    backend
        .subscriptions
        .create_subscription(&subscription)
        .await
        .unwrap();

    // One receiver invocation: one EMF line.
    let request = lambda_http::request::from_str(WEBHOOK).unwrap();
    let response = hookhub_receiver::app(backend.clone(), ReceiverConfig::default())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let lines = take(&emf_lines);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    check_emf(line);
    assert_eq!(
        (&line["source"], &line["outcome"]),
        (&json!("github"), &json!("accepted"))
    );
    assert_eq!(line["webhooks_received"], 1);
    assert_eq!(line["ingest_duration"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        declared(line),
        vec![
            (
                "ingest_duration".into(),
                "Milliseconds".into(),
                json!([["source"], []])
            ),
            (
                "webhooks_received".into(),
                "Count".into(),
                json!([["source", "outcome"], ["outcome"]])
            ),
        ]
    );

    // One dispatcher invocation on what SQS holds: one EMF line for the batch.
    let queue = aws.queue().await.unwrap();
    let received = aws
        .sqs()
        .receive_message()
        .queue_url(queue.queue_url())
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let records: Vec<Value> = received
        .messages()
        .iter()
        .map(|m| json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body()}))
        .collect();
    assert_eq!(records.len(), 1);
    let batch: SqsEvent = serde_json::from_value(json!({"Records": records})).unwrap();
    let delivery = DeliveryOptions {
        allow_private_targets: true,
        ..DeliveryOptions::default()
    };
    let ctx = DispatcherContext::from_aws(&aws, DispatcherConfig::default(), &delivery)
        .await
        .unwrap();
    handle_batch(&ctx, batch).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    let lines = take(&emf_lines);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    check_emf(line);
    assert_eq!(
        (&line["subscription"], &line["outcome"]),
        (&json!(SUBSCRIPTION), &json!("succeeded"))
    );
    assert_eq!(line["deliveries"], 1);
    assert_eq!(
        declared(line),
        vec![
            (
                "deliveries".into(),
                "Count".into(),
                json!([["outcome", "subscription"], ["outcome"]])
            ),
            (
                "delivery_duration".into(),
                "Milliseconds".into(),
                json!([["subscription"], []])
            ),
            (
                "delivery_lag".into(),
                "Milliseconds".into(),
                json!([["subscription"], []])
            ),
        ]
    );

    // The log lines: one per webhook, one per attempt, sharing the event id; JSON values.
    let logs = logs.json_lines();
    let webhook = logs
        .iter()
        .find(|l| l["fields"]["message"] == "webhook")
        .expect("the receiver's line");
    let f = &webhook["fields"];
    assert_eq!(
        (&f["source"], &f["outcome"], &f["status"]),
        (&json!("github"), &json!("accepted"), &json!(200))
    );
    assert_eq!(f["event_type"], "push");
    assert!(f["delivery_id"].is_string(), "GitHub's delivery id: {f}");
    assert!(
        f["duration_ms"].is_number() && f.get("reason").is_none(),
        "{f}"
    );
    let event_id = f["event_id"].as_str().unwrap();
    let attempt = logs
        .iter()
        .find(|l| l["fields"]["message"] == "delivery attempt")
        .expect("the dispatcher's line");
    let a = &attempt["fields"];
    assert_eq!(a["event_id"], event_id);
    assert_eq!(
        (&a["status"], &a["state"], &a["attempt"]),
        (&json!(200), &json!("succeeded"), &json!(1))
    );
    assert!(a.get("error").is_none(), "no error, no field: {a}");
    let text = serde_json::to_string(&logs).unwrap();
    assert!(
        !text.contains("Some(") && !text.contains("my-github-secret"),
        "{text}"
    );
}

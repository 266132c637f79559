//! The sample SQS events in `events/` through the dispatcher's batch handler, on moto, with
//! real HTTP sinks as subscribers; and the whole chain receiver → SQS → dispatcher.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hookhub::admin::{Admin, CreateSource};
use hookhub::aws::aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use hookhub::aws::{Aws, AwsSettings};
use hookhub::decision::DisabledReason;
use hookhub::delivery::DeliveryOptions;
use hookhub::dispatch::DispatcherConfig;
use hookhub::domain::{DeliveryState, Event, InlineEvent, Secret, Subscription, Task};
use hookhub::ingest::ReceiverConfig;
use hookhub::ports::Backend;
use hookhub::signing::generate_secret;
use hookhub_dispatcher::{handle_batch, DispatcherContext, SqsBatchResponse, SqsEvent};
use hookhub_tests::moto::{fresh_aws, sdk_config};
use hookhub_tests::Sink;
use lambda_http::tower::ServiceExt;
use serde_json::{json, Value};

const TWO_TASKS: &str = include_str!("../../../events/dispatcher-two-tasks.json");
const MALFORMED: &str = include_str!("../../../events/dispatcher-malformed.json");
const WEBHOOK: &str = include_str!("../../../events/receiver-webhook.json");

/// Ids the sample task records refer to.
const DISPATCH_EVENT: &str = "evt_01JP6Z3T5Q8W2X4Y6Z8A0B2C4D";
const RETRY_EVENT: &str = "evt_01JP6Z4A7R9T1V3W5X7Y9Z1B3C";
const RETRY_SUBSCRIPTION: &str = "sub_01JP6Y8K2M4N6P8Q0R2S4T6V8W";
/// Message ids of the sample records.
const DISPATCH_MESSAGE: &str = "4f2c9a1e-8b3d-4e6f-9a0b-1c2d3e4f5a6b";
const MALFORMED_MESSAGE: &str = "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e";

const PATIENCE: Duration = Duration::from_secs(10);

fn sqs_event(json: &str) -> SqsEvent {
    serde_json::from_str(json).expect("an SQS event")
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

/// A dispatcher context on `aws`, delivering to loopback sinks.
async fn context(aws: &Aws) -> DispatcherContext {
    let delivery = DeliveryOptions {
        allow_private_targets: true,
        ..DeliveryOptions::default()
    };
    DispatcherContext::from_aws(aws, DispatcherConfig::default(), &delivery)
        .await
        .expect("dispatcher context")
}

fn subscription(id: &str, url: &str, secret: Secret) -> Subscription {
    let now = Utc::now();
    Subscription {
        label: Some("lambda-test".to_owned()),
        ..Subscription::new(id, url, secret, now)
    }
}

fn event(id: &str, body: &str) -> Event {
    Event {
        id: id.to_owned(),
        source_id: "github".to_owned(),
        event_type: "push".to_owned(),
        received_at: Utc::now(),
        content_type: Some("application/json".to_owned()),
        dedup_key: format!("id:{id}"),
        headers: BTreeMap::new(),
        body: body.as_bytes().to_vec().into(),
        enqueued: true,
    }
}

/// The events and subscription the sample records name, delivering to `sink`.
async fn seed_samples(backend: &Backend, sink: &Sink) -> Secret {
    let secret = generate_secret();
    backend
        .subscriptions
        .create_subscription(&subscription(RETRY_SUBSCRIPTION, &sink.url, secret.clone()))
        .await
        .unwrap();
    for (id, body) in [
        (DISPATCH_EVENT, r#"{"ref":"refs/heads/main"}"#),
        (RETRY_EVENT, r#"{"ref":"refs/heads/dev"}"#),
    ] {
        backend
            .events
            .insert_event(&event(id, body), Duration::from_secs(3600))
            .await
            .unwrap();
    }
    secret
}

async fn queue_count(aws: &Aws, url: &str, name: QueueAttributeName) -> u64 {
    aws.sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|a| a.get(&name).cloned())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_task_sample_delivers_signed_webhooks() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let sink = Sink::start().await;
    let secret = seed_samples(&backend, &sink).await;
    let ctx = context(&aws).await;

    let response = handle_batch(&ctx, sqs_event(TWO_TASKS)).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");

    let received = sink.wait_for(2, PATIENCE).await;
    let mut ids: Vec<&str> = received.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    assert_eq!(ids, [DISPATCH_EVENT, RETRY_EVENT]);
    for request in &received {
        assert!(request.signature_valid(secret.expose()), "{request:?}");
    }

    // The deliver record was attempt 2 of its pair; the dispatch record attempt 1.
    for (event_id, attempt) in [(DISPATCH_EVENT, 1), (RETRY_EVENT, 2)] {
        let attempts = backend.attempts.attempts_for_event(event_id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0].attempt, attempt);
        assert_eq!(attempts[0].state, DeliveryState::Succeeded);
    }
}

#[tokio::test]
async fn failing_subscriber_is_a_scheduled_retry_not_a_batch_failure() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let sink = Sink::start().await;
    sink.script(&[500, 500]);
    seed_samples(&backend, &sink).await;
    let ctx = context(&aws).await;

    let response = handle_batch(&ctx, sqs_event(TWO_TASKS)).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    let attempts = backend
        .attempts
        .attempts_for_event(DISPATCH_EVENT)
        .await
        .unwrap();
    assert_eq!(attempts[0].state, DeliveryState::Retrying);
    // Both retries wait on the queue (the first delay is seconds, within SQS's own delays).
    let queue = aws.queue().await.unwrap();
    let delayed = queue_count(
        &aws,
        queue.queue_url(),
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    )
    .await;
    assert_eq!(delayed, 2);
}

/// 410 Gone disables the subscription in place (UpdateItem of three attributes, the only
/// write the dispatcher's role has on subscriptions): the rest of it is left as stored.
#[tokio::test]
async fn gone_subscriber_is_disabled_in_place() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let sink = Sink::start().await;
    sink.script(&[410, 410]);
    seed_samples(&backend, &sink).await;
    let before = backend
        .subscriptions
        .get_subscription(RETRY_SUBSCRIPTION)
        .await
        .unwrap()
        .expect("seeded");
    let ctx = context(&aws).await;

    let response = handle_batch(&ctx, sqs_event(TWO_TASKS)).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    let after = backend
        .subscriptions
        .get_subscription(RETRY_SUBSCRIPTION)
        .await
        .unwrap()
        .expect("still there");
    assert!(!after.enabled);
    assert_eq!(after.disabled_reason, Some(DisabledReason::Gone));
    assert!(
        after.health.consecutive_failures >= 1,
        "the 410 counts as a failure"
    );
    assert!(after.updated_at > before.updated_at);
    assert_eq!(
        Subscription {
            enabled: true,
            disabled_reason: None,
            updated_at: before.updated_at,
            health: Default::default(),
            ..after
        },
        before,
        "nothing else changed"
    );
    // Reported as an operational event, stored and enqueued by the dispatcher's own backend.
    let reported = hookhub_tests::operational_events(&backend).await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    let (event, body) = &reported[0];
    assert!(event.enqueued);
    assert_eq!(body["type"], "subscription.disabled");
    assert_eq!(body["reason"], "gone");
    assert_eq!(body["subscription_id"], RETRY_SUBSCRIPTION);
}

#[tokio::test]
async fn malformed_record_is_dead_lettered_without_failing_its_neighbour() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let sink = Sink::start().await;
    let secret = seed_samples(&backend, &sink).await;
    let ctx = context(&aws).await;

    let response = handle_batch(&ctx, sqs_event(MALFORMED)).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");

    let received = sink.wait_for(1, PATIENCE).await;
    assert_eq!(received[0].header("webhook-id"), DISPATCH_EVENT);
    assert!(received[0].signature_valid(secret.expose()));

    let queue = aws.queue().await.unwrap();
    let dead = aws
        .sqs()
        .receive_message()
        .queue_url(queue.dead_letter_queue_url())
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(dead.len(), 1);
    let sample: Value = serde_json::from_str(MALFORMED).unwrap();
    assert_eq!(dead[0].body(), sample["Records"][1]["body"].as_str());
    let reason = dead[0]
        .message_attributes()
        .and_then(|a| a.get("reason"))
        .and_then(|r| r.string_value())
        .unwrap_or_default();
    assert!(reason.contains("not a task"), "{reason}");
}

#[tokio::test]
async fn unreachable_table_fails_only_the_records_that_need_it() {
    // Real queues, but tables that do not exist: every store call fails as if DynamoDB were
    // unreachable.
    let real = fresh_aws().await;
    let settings = AwsSettings {
        events_table: "missing-events".into(),
        subscriptions_table: "missing-subscriptions".into(),
        attempts_table: "missing-attempts".into(),
        sources_table: "missing-sources".into(),
        ..real.settings().clone()
    };
    let broken = Aws::new(&sdk_config().await, settings);
    let ctx = context(&broken).await;

    let response = handle_batch(&ctx, sqs_event(MALFORMED)).await;
    // The dispatch record needs the tables and is retried; the malformed one needs only the
    // dead-letter queue and is settled.
    assert_eq!(failed_ids(&response), [DISPATCH_MESSAGE]);
    assert_ne!(DISPATCH_MESSAGE, MALFORMED_MESSAGE);
    let queue = real.queue().await.unwrap();
    let dead = queue_count(
        &real,
        queue.dead_letter_queue_url(),
        QueueAttributeName::ApproximateNumberOfMessages,
    )
    .await;
    assert_eq!(dead, 1);
}

#[tokio::test]
async fn task_not_due_yet_is_sent_again_and_reported_done() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let sink = Sink::start().await;
    seed_samples(&backend, &sink).await;
    let ctx = context(&aws).await;

    // A retry due in an hour, as the queue carries it past SQS's 15-minute delay limit.
    let due = Utc::now() + TimeDelta::hours(1);
    let task = Task::Deliver {
        event_id: RETRY_EVENT.into(),
        subscription_id: RETRY_SUBSCRIPTION.into(),
        attempt: 3,
        not_before: Some(due),
        series_start: None,
    };
    let mut event: Value = serde_json::from_str(TWO_TASKS).unwrap();
    event["Records"][1]["body"] = json!(task.to_json());
    event["Records"].as_array_mut().unwrap().remove(0);

    let response = handle_batch(&ctx, serde_json::from_value(event).unwrap()).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");
    assert_eq!(sink.count(), 0);
    let queue = aws.queue().await.unwrap();
    let delayed = queue_count(
        &aws,
        queue.queue_url(),
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    )
    .await;
    assert_eq!(delayed, 1);
}

/// What the Lambda event source mapping hands the function for messages on the task queue.
async fn receive_as_sqs_event(aws: &Aws) -> SqsEvent {
    let queue = aws.queue().await.unwrap();
    let messages = aws
        .sqs()
        .receive_message()
        .queue_url(queue.queue_url())
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: BTreeMap<String, String> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tasks",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test]
async fn webhook_sample_travels_from_receiver_to_subscriber() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let source: CreateSource = serde_json::from_value(json!({
        "id": "github",
        "verify": {"scheme": "github", "secret": "my-github-secret"},
    }))
    .unwrap();
    let admin = Admin::new(backend.clone());
    admin.create_source(source).await.unwrap();
    let sink = Sink::start().await;
    let secret = generate_secret();
    backend
        .subscriptions
        .create_subscription(&subscription(
            "sub_01JP7A0000000000000000000E",
            &sink.url,
            secret.clone(),
        ))
        .await
        .unwrap();

    // Receiver function.
    let request = lambda_http::request::from_str(WEBHOOK).unwrap();
    let response = hookhub_receiver::app(backend.clone(), ReceiverConfig::default())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Dispatcher function, fed what SQS holds.
    let batch = receive_as_sqs_event(&aws).await;
    assert_eq!(batch.records.len(), 1);
    let ctx = context(&aws).await;
    let response = handle_batch(&ctx, batch).await;
    assert!(failed_ids(&response).is_empty(), "{response:?}");

    let received = sink.wait_for(1, PATIENCE).await;
    let sample: Value = serde_json::from_str(WEBHOOK).unwrap();
    assert_eq!(
        received[0].body,
        sample["body"].as_str().unwrap().as_bytes()
    );
    assert!(received[0].header("webhook-id").starts_with("evt_"));
    assert!(received[0].signature_valid(secret.expose()));
    assert_eq!(received[0].header("content-type"), "application/json");
}

const SCHEDULED: &str = include_str!("../../../events/dispatcher-scheduled-sweep.json");

#[test]
fn inputs_are_told_apart() {
    use hookhub_dispatcher::DispatcherInput;
    let scheduled: DispatcherInput = serde_json::from_str(SCHEDULED).unwrap();
    assert!(matches!(scheduled, DispatcherInput::Sweep(s) if s.detail_type == "Scheduled Event"));
    let tasks: DispatcherInput = serde_json::from_str(TWO_TASKS).unwrap();
    assert!(matches!(tasks, DispatcherInput::Tasks(batch) if batch.records.len() == 2));
}

#[tokio::test]
async fn scheduled_sweep_enqueues_events_a_receiver_left_unenqueued() {
    let aws = fresh_aws().await;
    let ctx = context(&aws).await;
    let backend = aws.backend().await.unwrap();
    // Stored two minutes ago, never enqueued: the receiver died between the two writes.
    let mut stranded = hookhub::contract::sample_event("shop", "k-stranded");
    stranded.received_at = Utc::now() - TimeDelta::seconds(120);
    let mut recent = hookhub::contract::sample_event("shop", "k-recent");
    recent.received_at = Utc::now();
    for event in [&stranded, &recent] {
        backend
            .events
            .insert_event(event, Duration::from_secs(60))
            .await
            .unwrap();
    }
    // The unenqueued index is eventually consistent: retry the sweep briefly.
    let mut swept = 0;
    for _ in 0..20 {
        swept = hookhub_dispatcher::sweep(&ctx).await.expect("sweep");
        if swept > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(swept, 1, "only the event past the grace period");
    let batch = receive_as_sqs_event(&aws).await;
    let bodies: Vec<Task> = batch
        .records
        .iter()
        .map(|r| Task::from_json(r.body.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![Task::Dispatch {
            event_id: stranded.id.clone(),
            // The sweep holds the event, so it travels inline.
            event: Some(InlineEvent::new(&stranded)),
            sent_first: None,
        }]
    );
    assert!(
        backend
            .events
            .get_event(&stranded.id)
            .await
            .unwrap()
            .unwrap()
            .enqueued
    );
}

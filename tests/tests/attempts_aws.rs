//! The attempts table on moto (`docs/aws-layout.md`, "Attempts"): a fan-out writes one plan
//! record and then one attempt per delivery, so a dispatch cut midway and run again finds the
//! deliveries it recorded and repeats only the one that was still in flight.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use hookhub::aws::aws_sdk_dynamodb::types::AttributeValue;
use hookhub::delivery::{DeliveryClient, DeliveryOptions};
use hookhub::dispatch::{Dispatcher, DispatcherConfig, TaskOutcome};
use hookhub::domain::{new_id, Event, InlineEvent, Subscription, Task};
use hookhub::ports::ReceivedTask;
use hookhub_tests::moto::{fresh_aws, scan_items};
use hookhub_tests::{wait_until, wait_until_async, Sink};

const WAIT: Duration = Duration::from_secs(30);

fn event() -> Event {
    Event {
        id: new_id("evt"),
        source_id: "github".into(),
        event_type: "push".into(),
        received_at: Utc::now(),
        content_type: Some("application/json".into()),
        dedup_key: format!("id:{}", new_id("d")),
        headers: BTreeMap::from([("x-github-event".into(), "push".into())]),
        body: Bytes::from_static(br#"{"ref":"refs/heads/main"}"#),
        enqueued: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_cut_midway_runs_again_without_repeating_recorded_deliveries() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.expect("backend");
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    // The third subscriber is still answering when the dispatch is cut.
    sinks[2].set_delay(Duration::from_secs(60));
    let ids = ["sub_a", "sub_b", "sub_c"];
    for (id, sink) in ids.iter().zip(&sinks) {
        let subscription = Subscription::new(
            *id,
            sink.url.clone(),
            hookhub::signing::generate_secret(),
            Utc::now(),
        );
        backend
            .subscriptions
            .create_subscription(&subscription)
            .await
            .expect("subscription");
    }
    let client = DeliveryClient::new(&DeliveryOptions {
        allow_private_targets: true,
        ..DeliveryOptions::default()
    })
    .expect("client");
    let dispatcher = Dispatcher::new(backend.clone(), client, DispatcherConfig::default());
    let e = event();
    let task = Task::Dispatch {
        event_id: e.id.clone(),
        event: Some(InlineEvent::new(&e)),
        sent_first: None,
    };
    let message = |receive_count| ReceivedTask {
        body: task.to_json(),
        receipt: format!("r-{receive_count}"),
        receive_count,
    };

    // First run: cut (its future dropped, as a crash or a timeout would) once the two quick
    // deliveries are recorded and the third is in flight.
    let first = {
        let dispatcher = dispatcher.clone();
        let message = message(1);
        tokio::spawn(async move { dispatcher.process(&message).await })
    };
    let recorded = || async {
        backend
            .attempts
            .attempts_for_event(&e.id)
            .await
            .expect("attempts")
            .len()
    };
    wait_until(WAIT, || sinks[2].count() == 1)
        .await
        .expect("third delivery in flight");
    wait_until_async(WAIT, || async { recorded().await == 2 })
        .await
        .expect("the two quick deliveries recorded");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    // Run again, as SQS hands the message out again.
    sinks[2].set_delay(Duration::ZERO);
    assert_eq!(
        dispatcher.process(&message(2)).await.expect("processed"),
        TaskOutcome::Done
    );
    let counts: Vec<usize> = sinks.iter().map(Sink::count).collect();
    assert_eq!(
        counts,
        [1, 1, 2],
        "recorded deliveries are not repeated; the cut one is"
    );
    let attempts = backend.attempts.attempts_for_event(&e.id).await.unwrap();
    let pairs: Vec<(&str, u32, bool)> = attempts
        .iter()
        .map(|a| (a.subscription_id.as_str(), a.attempt, a.succeeded()))
        .collect();
    assert_eq!(
        pairs,
        [("sub_a", 1, true), ("sub_b", 1, true), ("sub_c", 1, true)]
    );
    for id in ids {
        let listed = backend
            .attempts
            .attempts_for_subscription(id, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "{id}: {listed:?}");
        assert_eq!(listed[0].event_id, e.id);
    }

    // What the two runs wrote: a plan record each (the second naming only sub_c) and one
    // attempt per delivery recorded, with no index entries.
    let items = scan_items(&aws, &aws.settings().attempts_table).await;
    let pk = |item: &std::collections::HashMap<String, AttributeValue>| {
        item["pk"].as_s().expect("pk").clone()
    };
    let plans = items
        .iter()
        .filter(|i| pk(i) == format!("e#{}", e.id))
        .count();
    let attempt_items = items.iter().filter(|i| pk(i).starts_with("sub_")).count();
    assert_eq!((plans, attempt_items, items.len()), (2, 3, 5), "{items:?}");
    // A plan outlives the attempts it names: they start at most a minute after it (here within
    // milliseconds), so its TTL is a minute later than theirs and never leaves one unreachable.
    let expiry = |item: &std::collections::HashMap<String, AttributeValue>| -> i64 {
        item["expires_at"]
            .as_n()
            .expect("expires_at")
            .parse()
            .unwrap()
    };
    for attempt in items.iter().filter(|i| pk(i).starts_with("sub_")) {
        let sk = attempt["sk"].as_s().expect("sk");
        let at = sk.split('#').next().unwrap();
        let plan = items
            .iter()
            .find(|i| i.get("at").and_then(|a| a.as_s().ok()).map(String::as_str) == Some(at))
            .expect("the attempt's plan");
        assert!(
            expiry(plan) >= expiry(attempt) + 59,
            "plan expires at {}, its attempt {sk} at {}",
            expiry(plan),
            expiry(attempt)
        );
    }
    let described = aws
        .dynamodb()
        .describe_table()
        .table_name(&aws.settings().attempts_table)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("table");
    assert!(
        described
            .global_secondary_indexes
            .unwrap_or_default()
            .is_empty(),
        "no index to pay an entry per attempt for"
    );
}

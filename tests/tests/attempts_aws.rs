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

/// Subscribes `id` (every source and type) to `sink`.
async fn subscribe(backend: &hookhub::ports::Backend, id: &str, sink: &Sink) {
    let subscription = Subscription::new(
        id,
        sink.url.clone(),
        hookhub::signing::generate_secret(),
        Utc::now(),
    );
    (backend.subscriptions.create_subscription(&subscription))
        .await
        .expect("subscription");
}

/// A delivery client allowed to reach the sinks on 127.0.0.1.
fn delivery_client() -> DeliveryClient {
    DeliveryClient::new(&DeliveryOptions {
        allow_private_targets: true,
        ..DeliveryOptions::default()
    })
    .expect("client")
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
        subscribe(&backend, id, sink).await;
    }
    let dispatcher = Dispatcher::new(
        backend.clone(),
        delivery_client(),
        DispatcherConfig::default(),
    );
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

/// The fan-out plan stored with the event (`docs/aws-layout.md`, "Attempts"): the receiver
/// plans the subscriptions that want the event, so the dispatcher writes no plan record for
/// them, only for one added since; a run again repeats nothing; a plan made for another attempt
/// layout is not relied on (a plan record instead), and every attempt is found from its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_planned_at_receipt_writes_a_plan_record_only_for_what_it_did_not_name() {
    use hookhub::domain::{SentFirst, StoredPlan};
    use hookhub::intake::SendThenStore;
    use hookhub::ports::Intake;

    let aws = fresh_aws().await;
    let backend = aws.backend().await.expect("backend");
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    subscribe(&backend, "sub_a", &sinks[0]).await;
    subscribe(&backend, "sub_b", &sinks[1]).await;
    let intake = SendThenStore::new(backend.events.clone(), backend.queue.clone())
        .planning(backend.subscriptions.clone(), &*backend.attempts);
    let mut e = event();
    e.id = backend.events.new_event_id();
    e.enqueued = false;
    intake.store_and_enqueue(&e, WAIT).await.expect("stored");
    // Added after the receipt: the stored plan does not name it.
    subscribe(&backend, "sub_c", &sinks[2]).await;

    let dispatcher = Dispatcher::new(
        backend.clone(),
        delivery_client(),
        DispatcherConfig::default(),
    );
    let tasks = backend.queue.receive(10, WAIT).await.expect("receive");
    assert_eq!(tasks.len(), 1);
    let Ok(Task::Dispatch {
        sent_first: Some(SentFirst {
            plan: Some(plan), ..
        }),
        ..
    }) = Task::from_json(&tasks[0].body)
    else {
        panic!("a sent-first task with a plan: {}", tasks[0].body);
    };
    assert_eq!(plan.subscriptions, ["sub_a", "sub_b"]);
    assert_eq!(
        dispatcher.process(&tasks[0]).await.expect("processed"),
        TaskOutcome::Done
    );
    let again = ReceivedTask {
        receive_count: 2,
        ..tasks[0].clone()
    };
    assert_eq!(
        dispatcher.process(&again).await.expect("processed"),
        TaskOutcome::Done
    );
    let counts: Vec<usize> = sinks.iter().map(Sink::count).collect();
    assert_eq!(
        counts,
        [1, 1, 1],
        "each delivered once, the run again repeats none"
    );
    let pairs = |attempts: Vec<hookhub::domain::Attempt>| -> Vec<(String, u32, bool)> {
        attempts
            .into_iter()
            .map(|a| (a.succeeded(), a))
            .map(|(ok, a)| (a.subscription_id, a.attempt, ok))
            .collect()
    };
    let all_three = [
        ("sub_a".to_owned(), 1, true),
        ("sub_b".to_owned(), 1, true),
        ("sub_c".to_owned(), 1, true),
    ];
    assert_eq!(
        pairs(backend.attempts.attempts_for_event(&e.id).await.unwrap()),
        all_three
    );
    assert_eq!(
        pairs((backend.attempts.attempts_for_pair(&e.id, "sub_a").await).unwrap()),
        [all_three[0].clone()]
    );
    let plan_records = |event_id: String| {
        let aws = &aws;
        async move {
            scan_items(aws, &aws.settings().attempts_table)
                .await
                .into_iter()
                .filter(|i| i["pk"].as_s().ok() == Some(&format!("e#{event_id}")))
                .map(|i| format!("{:?}", i["refs"]))
                .collect::<Vec<String>>()
        }
    };
    let records = plan_records(e.id.clone()).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0].contains("sub_c") && !records[0].contains("sub_a"),
        "{records:?}"
    );

    // A plan for another layout (a receiver on another shard count): recorded the usual way.
    let mut other = event();
    other.id = backend.events.new_event_id();
    let foreign = SentFirst {
        plan: Some(StoredPlan {
            subscriptions: vec!["sub_a".into(), "sub_b".into(), "sub_c".into()],
            layout: backend.attempts.stored_plan_layout().unwrap() + 1,
        }),
        ..SentFirst::new(WAIT)
    };
    backend
        .events
        .insert_sent(&other, &foreign)
        .await
        .expect("stored");
    let task = Task::Dispatch {
        event_id: other.id.clone(),
        event: Some(InlineEvent::new(&other)),
        sent_first: Some(foreign),
    };
    let message = ReceivedTask {
        body: task.to_json(),
        receipt: "r-foreign".into(),
        receive_count: 1,
    };
    assert_eq!(
        dispatcher.process(&message).await.expect("processed"),
        TaskOutcome::Done
    );
    assert_eq!(
        pairs(
            backend
                .attempts
                .attempts_for_event(&other.id)
                .await
                .unwrap()
        ),
        all_three
    );
    assert_eq!(plan_records(other.id.clone()).await.len(), 1);
}

/// A task run again by a dispatcher on another attempt layout (an `IndexShards` change rolling
/// out, or a task redriven after one): the attempts the first run recorded under the stored plan
/// are found under the plan's own layout, so none is delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_again_on_another_layout_finds_what_the_stored_plan_recorded() {
    use hookhub::aws::Aws;
    use hookhub::intake::SendThenStore;
    use hookhub::ports::Intake;

    let aws = fresh_aws().await;
    let backend = aws.backend().await.expect("backend");
    let other_layout = Aws::new(
        &hookhub_tests::moto::sdk_config().await,
        hookhub::aws::AwsSettings {
            index_shards: aws.settings().index_shards + 3,
            ..aws.settings().clone()
        },
    );
    let other = other_layout.backend().await.expect("backend");
    assert_ne!(
        backend.attempts.stored_plan_layout(),
        other.attempts.stored_plan_layout()
    );
    let sinks = [Sink::start().await, Sink::start().await];
    for (id, sink) in ["sub_a", "sub_b"].iter().zip(&sinks) {
        subscribe(&backend, id, sink).await;
    }
    let intake = SendThenStore::new(backend.events.clone(), backend.queue.clone())
        .planning(backend.subscriptions.clone(), &*backend.attempts);
    let mut e = event();
    e.id = backend.events.new_event_id();
    e.enqueued = false;
    intake.store_and_enqueue(&e, WAIT).await.expect("stored");
    let task = backend.queue.receive(10, WAIT).await.expect("receive");
    assert_eq!(task.len(), 1);
    let first = Dispatcher::new(
        backend.clone(),
        delivery_client(),
        DispatcherConfig::default(),
    );
    assert_eq!(first.process(&task[0]).await.unwrap(), TaskOutcome::Done);
    let again = ReceivedTask {
        receive_count: 2,
        ..task[0].clone()
    };
    let second = Dispatcher::new(
        other.clone(),
        delivery_client(),
        DispatcherConfig::default(),
    );
    assert_eq!(second.process(&again).await.unwrap(), TaskOutcome::Done);
    let counts: Vec<usize> = sinks.iter().map(Sink::count).collect();
    assert_eq!(counts, [1, 1], "nothing delivered again");
    for log in [&backend.attempts, &other.attempts] {
        let found = log.attempts_for_event(&e.id).await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
    }
}

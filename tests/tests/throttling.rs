//! The AWS path under throttling: a fault-injecting proxy (`hookhub_tests::throttle`) between
//! Hookhub's SDK clients and moto answers a share of the DynamoDB and SQS calls with
//! `ProvisionedThroughputExceededException` / `ThrottlingException` / `RequestThrottled`.
//!
//! Run with `--nocapture` to see the counts of the burst.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use hookhub::aws::aws_config::retry::RetryConfig;
use hookhub::aws::aws_sdk_dynamodb::error::ProvideErrorMetadata;
use hookhub::aws::aws_sdk_sqs::types::QueueAttributeName;
use hookhub::aws::{Aws, AwsSettings};
use hookhub::ports::{AttemptLog, Backend, EventStore};
use hookhub_tests::moto::{
    fresh_aws, sdk_config, sdk_config_for, sdk_config_loader_for, shared_moto,
};
use hookhub_tests::proxy::TcpProxy;
use hookhub_tests::throttle::Throttle;
use hookhub_tests::{DevOptions, DevServer, Sink};
use serde_json::{json, Value};

/// The product's SDK retry config (`hookhub::aws::sdk_config_loader`): attempts per call.
const MAX_ATTEMPTS: u64 = 5;
const BURST: usize = 500;
const THROTTLED_PERCENT: u32 = 30;
/// How many times the provider re-sends a webhook answered 503 (providers retry on their own).
const PROVIDER_RETRIES: usize = 5;
/// Bounds the wait for the deliveries. moto answered about 40 calls/s on a loaded 2-core machine
/// (a webhook is about 18 DynamoDB and SQS calls with the retries): the whole test took 118 s
/// to 225 s there.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(240);

/// Fresh resources on the shared moto, and a throttling proxy in front of it (throttling
/// nothing until told to), with the URL of the task queue read straight from moto.
async fn throttled_moto(seed: u64) -> (Aws, Arc<Throttle>, TcpProxy, String) {
    let aws = fresh_aws().await;
    let throttle = Arc::new(Throttle::new(seed));
    let moto: SocketAddr = shared_moto()
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("moto address");
    let proxy = TcpProxy::start_with(moto, throttle.clone())
        .await
        .expect("proxy");
    let queue_url = direct_sqs()
        .await
        .get_queue_url()
        .queue_name(aws.settings().queue.name())
        .send()
        .await
        .expect("queue URL from moto")
        .queue_url
        .expect("a URL");
    (aws, throttle, proxy, queue_url)
}

async fn direct_sqs() -> hookhub::aws::aws_sdk_sqs::Client {
    hookhub::aws::aws_sdk_sqs::Client::new(&sdk_config().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_retries_injected_throttling_a_bounded_number_of_times() {
    let (aws, throttle, proxy, queue_url) = throttled_moto(7).await;
    throttle.set_share(100);
    let config = sdk_config_for(&proxy.endpoint()).await;
    let dynamodb = hookhub::aws::aws_sdk_dynamodb::Client::new(&config);
    let sqs = hookhub::aws::aws_sdk_sqs::Client::new(&config);

    let (read, send) = tokio::join!(
        dynamodb
            .get_item()
            .table_name(&aws.settings().events_table)
            .set_key(Some(aws.events_table_key("evt_x")))
            .send(),
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body("{}")
            .send(),
    );
    let read = read.expect_err("every call throttled");
    let send = send.expect_err("every call throttled");
    assert!(
        matches!(
            read.code(),
            Some("ProvisionedThroughputExceededException" | "ThrottlingException")
        ),
        "DynamoDB error code {:?}",
        read.code()
    );
    assert_eq!(send.code(), Some("RequestThrottled"), "SQS error code");
    // Retried (so recognised as retryable), and no more than the retry config allows.
    let stats = throttle.stats();
    assert_eq!(stats.dynamodb_calls, MAX_ATTEMPTS, "{stats:?}");
    assert_eq!(stats.sqs_calls, MAX_ATTEMPTS, "{stats:?}");
    assert_eq!(
        stats.dynamodb_throttled + stats.sqs_throttled,
        2 * MAX_ATTEMPTS
    );
}

/// A dev server on the AWS adapters whose every call goes through `endpoint`. The product's
/// retry config (standard mode, [`MAX_ATTEMPTS`] attempts) with its backoff compressed from
/// 1 s to 25 ms, as the tests compress delivery retry schedules: the burst stays well inside
/// the test's time bound on a 2-core machine.
async fn start_through(endpoint: String, settings: AwsSettings) -> DevServer {
    DevServer::start_on(DevOptions::default(), async move {
        let retry = RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS as u32)
            .with_initial_backoff(Duration::from_millis(25));
        let config = sdk_config_loader_for(&endpoint)
            .retry_config(retry)
            .load()
            .await;
        let aws = Aws::new(&config, settings);
        let store = Arc::new(aws.store());
        let queue = Arc::new(aws.queue().await.expect("queue"));
        let backend =
            Backend::from_parts(store.clone(), store.clone(), store.clone(), store, queue);
        (backend, None)
    })
    .await
}

/// What one POST got: the event id of a 2xx, or the status otherwise.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Accepted(String),
    Unavailable,
    Other(u16, String),
}

async fn post(http: &reqwest::Client, url: &str, n: usize) -> Answer {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-delivery-id", format!("msg_{n}"))
        .body(json!({"type": "burst", "n": n}).to_string())
        .send()
        .await
        .expect("the receiver answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        200..=299 => Answer::Accepted(body["id"].as_str().expect("event id").to_string()),
        503 if retry_after && body["error"]["code"] == "unavailable" => Answer::Unavailable,
        _ => Answer::Other(status, body.to_string()),
    }
}

/// Tasks left on the queue (visible, in flight or delayed) and events stored but unenqueued:
/// nothing more can be delivered once both are zero.
async fn work_left(aws: &Aws, sqs: &hookhub::aws::aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    let queued: u64 = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .map(|name| {
        attributes
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
    .sum();
    let unenqueued = aws
        .store()
        .list_unenqueued(chrono::Utc::now(), 100)
        .await
        .expect("unenqueued events")
        .len();
    queued + unenqueued as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_30_percent_throttling_delivers_every_acknowledged_event_once() {
    let (aws, throttle, proxy, queue_url) = throttled_moto(12).await;
    let server = start_through(proxy.endpoint(), aws.settings().clone()).await;
    // Set up unthrottled: the admin API is not what is under test.
    server
        .admin()
        .post(
            "/v1/sources",
            json!({"id": "burst", "verify": {"scheme": "none"},
                   "dedup": {"key": "header:X-Delivery-Id"}}),
        )
        .await;
    let sink = Sink::start().await;
    server
        .admin()
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;
    throttle.set_share(THROTTLED_PERCENT);

    let http = hookhub_tests::http_client();
    let url = server.ingest_url("burst");
    let started = tokio::time::Instant::now();
    let first: Vec<(usize, Answer)> = stream::iter(0..BURST)
        .map(|n| {
            let (http, url) = (&http, &url);
            async move { (n, post(http, url, n).await) }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let first_2xx = first
        .iter()
        .filter(|(_, a)| matches!(a, Answer::Accepted(_)))
        .count();
    let first_503 = first
        .iter()
        .filter(|(_, a)| *a == Answer::Unavailable)
        .count();
    let mut answers: HashMap<usize, Answer> = first.into_iter().collect();
    let mut ever_503: HashSet<usize> = HashSet::new();

    // The provider re-sends what was answered 503, a bounded number of times.
    let mut resent = 0;
    for _ in 0..PROVIDER_RETRIES {
        let pending: Vec<usize> = answers
            .iter()
            .filter(|(_, a)| **a == Answer::Unavailable)
            .map(|(n, _)| *n)
            .collect();
        if pending.is_empty() {
            break;
        }
        for n in pending {
            ever_503.insert(n);
            resent += 1;
            answers.insert(n, post(&http, &url, n).await);
        }
    }
    let others: Vec<&Answer> = answers
        .values()
        .filter(|a| matches!(a, Answer::Other(..)))
        .collect();
    assert!(
        others.is_empty(),
        "only 2xx or 503 `unavailable` with Retry-After: {others:?}"
    );
    let acknowledged: HashSet<String> = answers
        .values()
        .filter_map(|a| match a {
            Answer::Accepted(id) => Some(id.clone()),
            _ => None,
        })
        .collect();

    // Deliveries run under the same throttling; wait until nothing more can be delivered.
    let sqs = direct_sqs().await;
    let answered = started.elapsed();
    let deadline = tokio::time::Instant::now() + DELIVERY_DEADLINE;
    while tokio::time::Instant::now() < deadline {
        let delivered: HashSet<String> = sink
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        if acknowledged.is_subset(&delivered) && work_left(&aws, &sqs, &queue_url).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let drained = started.elapsed();
    let received = sink.received();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *per_event
            .entry(r.header("webhook-id").to_string())
            .or_default() += 1;
    }
    let duplicated: usize = per_event.values().map(|c| c - 1).sum();
    // Why an event went out twice: its attempt log (read straight from moto), and whether the
    // receiver had answered 503 for it (stored and enqueued, then failed to mark it enqueued).
    for (id, count) in per_event.iter().filter(|(_, c)| **c > 1) {
        let attempts = aws.store().attempts_for_event(id).await.unwrap_or_default();
        // The raw items: two attempt records of one number mean two runs of its task at once.
        let items = hookhub_tests::moto::scan_items(&aws, &aws.settings().attempts_table).await;
        let records = items
            .iter()
            .filter(|i| i.get("event_id").and_then(|v| v.as_s().ok()) == Some(id))
            .count();
        println!("duplicate: {id}: {records} attempt records stored");
        let was_503 = answers
            .iter()
            .any(|(n, a)| *a == Answer::Accepted(id.clone()) && ever_503.contains(n));
        println!(
            "duplicate: {id} delivered {count} times; attempts logged {}; answered 503 first: {was_503}",
            attempts.len()
        );
    }
    let lost = acknowledged
        .iter()
        .filter(|id| !per_event.contains_key(*id))
        .count();
    let still_503 = answers
        .values()
        .filter(|a| **a == Answer::Unavailable)
        .count();
    let stats = throttle.stats();
    println!(
        "throttling burst: sent {BURST}; first answers: 2xx {first_2xx}, 503 {first_503}; \
         provider re-sends {resent}, still 503 after {PROVIDER_RETRIES} re-sends {still_503}; \
         acknowledged {}; delivered {} (distinct events {}), duplicated {duplicated}, lost {lost}; \
         DynamoDB calls {} (throttled {}), SQS calls {} (throttled {}); \
         all answered after {:.0} s, all delivered after {:.0} s",
        acknowledged.len(),
        received.len(),
        per_event.len(),
        stats.dynamodb_calls,
        stats.dynamodb_throttled,
        stats.sqs_calls,
        stats.sqs_throttled,
        answered.as_secs_f64(),
        drained.as_secs_f64(),
    );
    assert_eq!(lost, 0, "every acknowledged event delivered");
    assert_eq!(duplicated, 0, "no event delivered twice");
    assert_eq!(
        first_2xx + first_503,
        BURST,
        "every first answer 2xx or 503"
    );
    // The injection really ran at about the share asked for.
    let throttled = stats.dynamodb_throttled + stats.sqs_throttled;
    let calls = stats.dynamodb_calls + stats.sqs_calls;
    assert!(
        throttled * 100 >= calls * 25 && throttled * 100 <= calls * 35,
        "{throttled} of {calls} calls throttled"
    );
}

//! The warm-process cache of sources and subscriptions on the AWS adapters (moto): an admin
//! change made by another process (the admin Lambda) reaches the receiver and the dispatcher
//! within `HOOKHUB_CONFIG_CACHE_SECONDS`, and matching subscriptions reads no more per task
//! with 1,000 subscriptions than with one (calls recorded between Hookhub and moto).

use std::time::{Duration, Instant};

use futures::StreamExt;
use hookhub::aws::aws_config::timeout::TimeoutConfig;
use hookhub::aws::{Aws, AwsSettings};
use hookhub_tests::cost_model::label;
use hookhub_tests::moto::{sdk_config_for, shared_moto, unique_prefix};
use hookhub_tests::recorder::{price, Recorder};
use hookhub_tests::{wait_until, DevOptions, DevServer, Sink};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A dev server (receiver + dispatcher) on `settings` as the Lambdas run: cached when
/// `settings.config_cache` is set.
async fn start(endpoint: String, settings: AwsSettings) -> DevServer {
    DevServer::start_on(DevOptions::default(), async move {
        let sdk = sdk_config_for(&endpoint).await;
        // moto takes seconds to `Scan` a thousand subscriptions on a busy machine: more than the
        // product's 10 s per attempt when other tests share the cores.
        let sdk = sdk
            .into_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
            .build();
        let aws = Aws::new(&sdk, settings);
        aws.ensure_resources().await.expect("resources");
        (aws.backend().await.expect("backend"), None)
    })
    .await
}

/// Another process on the same tables, uncached, standing for the admin Lambda. Its own
/// queue, so its worker never takes the deliveries of the server under test.
async fn start_admin(endpoint: String, settings: &AwsSettings) -> DevServer {
    let mut admin = AwsSettings {
        config_cache: Duration::ZERO,
        ..settings.clone()
    };
    let queue = format!("{}admin-tasks", settings.events_table);
    admin.dead_letter_queue = hookhub::aws::QueueRef::Name(format!("{queue}-dlq"));
    admin.queue = hookhub::aws::QueueRef::Name(queue);
    start(endpoint, admin).await
}

async fn post(server: &DevServer, source: &str) -> u16 {
    hookhub_tests::http_client()
        .post(server.ingest_url(source))
        .header("content-type", "application/json")
        .body(r#"{"type":"order.created"}"#)
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

#[tokio::test]
async fn admin_changes_elsewhere_take_effect_within_the_cache_bound() {
    let ttl = Duration::from_secs(2);
    let endpoint = shared_moto().endpoint().to_string();
    let settings = AwsSettings {
        config_cache: ttl,
        ..AwsSettings::with_prefix(&unique_prefix())
    };
    let server = start(endpoint.clone(), settings.clone()).await;
    let admin_process = start_admin(endpoint, &settings).await;
    let admin = admin_process.admin();
    admin_process.open_source("shop").await;
    let (old, new) = (Sink::start().await, Sink::start().await);
    let subscription = admin
        .post(
            "/v1/subscriptions",
            json!({"url": old.url, "sources": ["shop"]}),
        )
        .await;
    assert_eq!(post(&server, "shop").await, 200);
    old.wait_for(1, WAIT).await;

    // The subscription is replaced by another one elsewhere: within the bound, deliveries go
    // to the new one only.
    let id = subscription["id"].as_str().expect("subscription id");
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    admin
        .post(
            "/v1/subscriptions",
            json!({"url": new.url, "sources": ["shop"]}),
        )
        .await;
    let changed = Instant::now();
    let bound = ttl + Duration::from_secs(1);
    // One webhook per round until the new subscriber gets one (the pacing is not a wait for
    // state: each round posts).
    let mut posted = 0;
    while new.count() == 0 && changed.elapsed() < bound {
        assert_eq!(post(&server, "shop").await, 200);
        posted += 1;
        let _ = wait_until(Duration::from_millis(250), || new.count() > 0).await;
    }
    new.wait_for(1, Duration::from_secs(5)).await;
    let first_new = changed.elapsed();
    assert!(
        first_new <= bound + Duration::from_secs(1),
        "new subscription first used after {first_new:?} (bound {bound:?}, {posted} posted)"
    );
    // The listing that holds the new subscription was loaded after the delete: from now on
    // only the new one gets deliveries (the old one at most those posted while stale).
    let new_before = new.count();
    assert_eq!(post(&server, "shop").await, 200);
    new.wait_for(new_before + 1, WAIT).await;
    old.assert_no_more_than(1 + posted, Duration::from_millis(500))
        .await;

    // The source is deleted elsewhere: within the bound the receiver answers 404.
    let (status, _) = admin
        .call(reqwest::Method::DELETE, "/v1/sources/shop", None)
        .await;
    assert_eq!(status, 204);
    let deleted = Instant::now();
    let mut last = 0;
    while deleted.elapsed() < bound + Duration::from_secs(1) {
        last = post(&server, "shop").await;
        if last == 404 {
            break;
        }
        // Pacing between posts, not a wait for state: each round checks the answer.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        last,
        404,
        "deleted source still accepted after {:?}",
        deleted.elapsed()
    );
    // And a new source is accepted at once (unknown sources are never cached).
    admin_process.open_source("fresh").await;
    assert_eq!(post(&server, "fresh").await, 200);
}

/// Reads of the sources and subscriptions tables per webhook while matching, after warm-up.
async fn matching_reads_per_webhook(subscriptions: usize, sources: usize) -> (f64, f64) {
    let recorder = Recorder::start(shared_moto().endpoint())
        .await
        .expect("recorder");
    let prefix = unique_prefix();
    let settings = AwsSettings {
        config_cache: Duration::from_secs(60),
        ..AwsSettings::with_prefix(&prefix)
    };
    let server = start(recorder.endpoint(), settings).await;
    let admin = server.admin();
    for s in 0..sources {
        server.open_source(&format!("src{s}")).await;
    }
    let sink = Sink::start().await;
    // One subscription on `src0` (the one posted to); the rest spread over the other sources.
    admin
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": ["src0"]}),
        )
        .await;
    let others: Vec<_> = (1..subscriptions)
        .map(|i| {
            let admin = admin.clone();
            let source = format!("src{}", 1 + i % (sources - 1).max(1));
            let url = format!("{}/other", sink.url);
            async move {
                admin
                    .post(
                        "/v1/subscriptions",
                        json!({"url": url, "sources": [source]}),
                    )
                    .await
            }
        })
        .collect();
    futures::stream::iter(others)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    // Warm-up: one webhook fills the caches.
    assert_eq!(post(&server, "src0").await, 200);
    // The cold `Scan` of a thousand subscriptions is slow on moto.
    if wait_until(WAIT * 4, || sink.count() >= 1).await.is_err() {
        // What reached moto, to tell a stuck queue from a missing subscription.
        let calls: Vec<String> = recorder
            .calls()
            .iter()
            .map(|c| format!("{} ok={}", label(c, &prefix), c.ok))
            .collect();
        panic!("warm-up webhook not delivered; calls: {calls:#?}");
    }
    let mark = recorder.mark();
    let n = 10;
    for _ in 0..n {
        assert_eq!(post(&server, "src0").await, 200);
    }
    sink.wait_for(1 + n, WAIT).await;
    let priced = price(&recorder.calls(), mark);
    let reads = |table: &str| {
        priced
            .iter()
            .filter(|(call, _)| {
                let l = label(call, &prefix);
                // Matching and source lookup: listings and lookups, not the health update's
                // read of the one delivered subscription.
                l.ends_with(&format!(" {table}"))
                    && matches!(call.operation(), "Scan" | "Query" | "GetItem")
                    && !(table == "subscriptions" && call.operation() == "GetItem")
            })
            .map(|(_, units)| units.rru)
            .sum::<f64>()
            / n as f64
    };
    (reads("sources"), reads("subscriptions"))
}

// Multi-threaded: the recorder relays every call of the server under test, and must never
// wait for this test's own task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_reads_the_same_with_1_or_1000_subscriptions() {
    let small = matching_reads_per_webhook(1, 1).await;
    let large = matching_reads_per_webhook(1000, 50).await;
    assert_eq!(small, large, "RRU per webhook (sources, subscriptions)");
    assert_eq!(
        large,
        (0.0, 0.0),
        "a warm process reads neither table per webhook"
    );
}

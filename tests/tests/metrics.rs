//! `GET /metrics` of the dev server: Prometheus text after a known sequence of webhooks and
//! deliveries, and the admin key in front of it unless `--metrics-public`. Its own test binary:
//! the recorder is process-wide, and this file alone decides what it counts.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use hookhub_tests::{http_client, start_dev, BackendKind, DevOptions, Sink, ADMIN_KEY};
use serde_json::json;
use sha2::Sha256;

const SECRET: &str = "metrics-test-secret";

/// One sample: name and labels → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the exposition format's sample lines (`name{a="b",…} value`).
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').expect("label=value");
                (k.to_string(), v.trim_matches('"').to_string())
            })
            .collect();
        samples.insert((name.to_string(), labels), value.parse().expect("a number"));
    }
    samples
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .get(&(name.to_string(), labels))
        .copied()
        .unwrap_or(0.0)
}

/// Posts a GitHub-style webhook; the answer's status and event id.
async fn post(url: &str, event: &str, delivery: &str, signed: bool) -> (u16, String) {
    let body = format!(r#"{{"delivery":"{delivery}"}}"#);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = if signed {
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    } else {
        format!("sha256={}", "0".repeat(64))
    };
    let response = http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.unwrap();
    (
        status,
        answer["id"].as_str().unwrap_or_default().to_string(),
    )
}

async fn scrape(base: &str, key: Option<&str>) -> (u16, String) {
    let mut request = http_client().get(format!("{base}/metrics"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_after_a_known_sequence() {
    let (server, _dir) = start_dev(BackendKind::Sqlite, DevOptions::default()).await;
    let admin = server.admin();
    admin
        .post(
            "/v1/sources",
            json!({"id": "gh", "verify": {"scheme": "github", "secret": SECRET},
                   "dedup": {"key": "header:X-GitHub-Delivery"}}),
        )
        .await;
    let sink = Sink::start().await;
    // The first delivery fails, its retry succeeds.
    sink.script(&[500]);
    let sub = admin
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": ["gh"], "event_types": ["push"]}),
        )
        .await;
    let sub = sub["id"].as_str().unwrap().to_string();

    let url = server.ingest_url("gh");
    let (status, event_id) = post(&url, "push", "d-1", true).await;
    assert_eq!(status, 200);
    assert_eq!(post(&url, "issues", "d-2", true).await.0, 200);
    assert_eq!(
        post(&url, "push", "d-1", true).await,
        (200, event_id.clone())
    );
    assert_eq!(post(&url, "push", "d-3", false).await.0, 401);
    // Metrics are recorded before the attempt is logged: once the log shows the success, the
    // counters hold it too.
    server
        .wait_for_attempts(&event_id, |log| {
            log.iter().any(|a| a["state"] == "succeeded")
        })
        .await;
    let (status, text) = scrape(&server.base, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200, "{text}");
    let samples = parse(&text);

    let received = |outcome: &str| {
        value(
            &samples,
            "webhooks_received",
            &[("source", "gh"), ("outcome", outcome)],
        )
    };
    assert_eq!(received("accepted"), 2.0);
    assert_eq!(received("duplicate"), 1.0);
    let rejected = value(
        &samples,
        "webhooks_received",
        &[
            ("source", "gh"),
            ("outcome", "rejected"),
            ("reason", "signature_invalid"),
        ],
    );
    assert_eq!(rejected, 1.0, "{samples:#?}");
    let deliveries = |outcome: &str| {
        value(
            &samples,
            "deliveries",
            &[("outcome", outcome), ("subscription", &sub)],
        )
    };
    assert_eq!(
        (deliveries("retrying"), deliveries("succeeded")),
        (1.0, 1.0)
    );
    assert_eq!(
        value(&samples, "ingest_duration_count", &[("source", "gh")]),
        4.0
    );
    assert_eq!(
        value(
            &samples,
            "delivery_duration_count",
            &[("subscription", &sub)]
        ),
        2.0
    );
    assert_eq!(
        value(&samples, "delivery_lag_count", &[("subscription", &sub)]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_admin_key_unless_public() {
    let (server, _dir) = start_dev(BackendKind::Sqlite, DevOptions::default()).await;
    let (status, body) = scrape(&server.base, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"));
    assert_eq!(scrape(&server.base, Some("wrong")).await.0, 401);
    assert_eq!(scrape(&server.base, Some(ADMIN_KEY)).await.0, 200);
    let post = http_client()
        .post(format!("{}/metrics", server.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let error: serde_json::Value = post.json().await.expect("a JSON error");
    assert_eq!(error["error"]["code"], "method_not_allowed");

    let options = DevOptions {
        metrics_public: true,
        ..DevOptions::default()
    };
    let (public, _dir) = start_dev(BackendKind::Sqlite, options).await;
    assert_eq!(scrape(&public.base, None).await.0, 200);
}

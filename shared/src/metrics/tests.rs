use std::time::Duration;

use serde_json::Value;

use super::emf::{EmfRecorder, Output};
use super::*;
use crate::decision::SkipReason;

#[test]
fn readme_metric_table_matches_the_definitions() {
    let readme = include_str!("../../../README.md");
    let table = Metric::readme_table();
    assert!(
        readme.contains(&table),
        "README.md's metric table is out of date; paste:\n{table}"
    );
}

#[test]
fn names_are_unique_and_dimensions_bounded() {
    for m in Metric::ALL {
        assert_eq!(Metric::from_name(m.name()), Some(m));
        for rollup in m.rollups() {
            assert!(rollup.iter().all(|d| m.dimensions().contains(d)), "{m:?}");
        }
        // No per-event values as dimensions.
        assert!(!m.dimensions().iter().any(|d| d.contains("event")), "{m:?}");
    }
}

#[test]
fn delivery_outcomes() {
    let retry = Verdict::Retry {
        after: Duration::from_secs(5),
    };
    let skipped = Verdict::Skipped {
        reason: SkipReason::SubscriptionDisabled,
    };
    let cases = [
        (Verdict::Succeeded, None, "succeeded"),
        (retry, Some(DeliveryError::Timeout), "retrying"),
        (retry, Some(DeliveryError::Blocked), "blocked"),
        (Verdict::Exhausted, None, "failed"),
        (
            Verdict::Rejected,
            Some(DeliveryError::TransformFailed),
            "failed",
        ),
        (Verdict::Gone, None, "gone"),
        (skipped, None, "skipped"),
        (
            Verdict::Parked {
                until: chrono::Utc::now(),
            },
            None,
            "parked",
        ),
    ];
    for (verdict, error, code) in cases {
        assert_eq!(
            DeliveryOutcome::of(verdict, error).code(),
            code,
            "{verdict:?}"
        );
    }
}

#[test]
fn subscription_dimension_is_bounded() {
    let labels = SubscriptionLabels::new(2);
    assert_eq!(labels.label("sub_a"), "sub_a");
    assert_eq!(labels.label("sub_b"), "sub_b");
    assert_eq!(labels.label("sub_c"), OTHER_SUBSCRIPTIONS);
    // Those seen first keep their own value.
    assert_eq!(labels.label("sub_a"), "sub_a");
}

fn record(recorder: &EmfRecorder, body: impl FnOnce()) -> Vec<Value> {
    metrics::with_local_recorder(recorder, body);
    recorder.documents(1_700_000_000_000)
}

/// The EMF specification's structure: `_aws.Timestamp` (ms), directives with a namespace,
/// dimension sets of strings and metric definitions; every dimension and metric a directive
/// names is a top-level member (dimension values are strings).
pub(crate) fn check_emf(doc: &Value, namespace: &str) {
    let aws = &doc["_aws"];
    assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 0), "{doc}");
    let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
    assert!(!directives.is_empty());
    for d in directives {
        assert_eq!(d["Namespace"], namespace);
        for set in d["Dimensions"].as_array().expect("dimension sets") {
            let set = set.as_array().expect("a dimension set");
            assert!(set.len() <= 30);
            for dim in set {
                let dim = dim.as_str().expect("dimension name");
                assert!(doc[dim].is_string(), "dimension {dim} missing in {doc}");
            }
        }
        let metrics = d["Metrics"].as_array().expect("metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for m in metrics {
            let name = m["Name"].as_str().expect("metric name");
            assert!(m["Unit"].is_string());
            let value = &doc[name];
            let ok = value.is_number()
                || value
                    .as_array()
                    .is_some_and(|v| v.len() <= 100 && v.iter().all(Value::is_number));
            assert!(ok, "metric {name} missing or not numeric in {doc}");
        }
    }
}

#[test]
fn one_webhook_is_one_emf_line() {
    let recorder = EmfRecorder::new("Hookhub", Output::Stdout);
    let docs = record(&recorder, || {
        webhook_received(
            "github",
            WebhookOutcome::Rejected,
            Some("signature_invalid".into()),
            Duration::from_millis(3),
        );
    });
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = &docs[0];
    check_emf(doc, "Hookhub");
    assert_eq!(doc["webhooks_received"], 1);
    assert_eq!(doc["ingest_duration"], serde_json::json!([3.0]));
    assert_eq!(doc["reason"], "signature_invalid");
    let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    let received = directives
        .iter()
        .find(|d| d["Metrics"][0]["Name"] == "webhooks_received")
        .unwrap();
    assert_eq!(
        received["Dimensions"],
        serde_json::json!([
            ["source", "outcome", "reason"],
            ["outcome"],
            ["outcome", "reason"]
        ])
    );
    assert_eq!(received["Metrics"][0]["Unit"], "Count");
    // A flush resets: nothing more to write.
    assert!(recorder.documents(1).is_empty());
}

#[test]
fn a_batch_aggregates_and_splits_only_on_dimension_values() {
    let recorder = EmfRecorder::new("Custom", Output::Stdout);
    let docs = record(&recorder, || {
        for _ in 0..3 {
            delivery(
                "sub_1",
                DeliveryOutcome::Succeeded,
                Some(Duration::from_millis(10)),
                Some(Duration::from_millis(50)),
            );
        }
        delivery(
            "sub_2",
            DeliveryOutcome::Retrying,
            Some(Duration::from_millis(20)),
            None,
        );
    });
    assert_eq!(docs.len(), 2, "{docs:?}");
    for doc in &docs {
        check_emf(doc, "Custom");
    }
    let sub_1 = docs.iter().find(|d| d["subscription"] == "sub_1").unwrap();
    assert_eq!(sub_1["deliveries"], 3);
    assert_eq!(sub_1["outcome"], "succeeded");
    assert_eq!(sub_1["delivery_lag"].as_array().unwrap().len(), 3);
}

#[cfg(all(feature = "sqlite", feature = "prometheus"))]
#[tokio::test]
async fn sqlite_tells_queue_depth_and_oldest_task_age() {
    use crate::http::QueueStats;
    use crate::ports::TaskQueue;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = crate::sqlite::SqliteBackend::open(&dir.path().join("q.db")).unwrap();
    assert_eq!(sqlite.queue_stats().await.unwrap(), (0, None));
    let task = crate::domain::Task::Dispatch {
        event_id: "evt_1".into(),
        event: None,
        sent_first: None,
    };
    sqlite.send(&task, Duration::from_secs(60)).await.unwrap();
    sqlite.send(&task, Duration::ZERO).await.unwrap();
    let (depth, oldest) = sqlite.queue_stats().await.unwrap();
    assert_eq!(depth, 2, "delayed tasks count too");
    assert!(
        oldest.is_some_and(|age| age < Duration::from_secs(60)),
        "{oldest:?}"
    );
}

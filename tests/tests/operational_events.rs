//! Operational events through the real path on both backends: an ops subscription on the
//! built-in source `hookhub` receives signed `circuit_opened`/`circuit_closed`, `disabled`
//! (failing, manual), `enabled`, `delivery.exhausted` and `recovery.finished` about a failing
//! subscription, which never receives an event about itself; the reserved source cannot be
//! posted to or managed. Each test reports sent / delivered / duplicated / lost for the
//! operational events. Time is compressed through the settings as in delivery_control.rs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookhub::decision::HealthPolicy;
use hookhub::operational::{self, RecoveryKind};
use hookhub::ports::Backend;
use hookhub_tests::{
    holds_for, on_both_backends, temp_dir, wait_until, BackendKind, DevOptions, DevServer, Sink,
};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// A dev server on `kind` with the backend it runs on, for calling the emitter directly.
async fn start_capturing(
    kind: BackendKind,
    options: DevOptions,
) -> (DevServer, tempfile::TempDir, Backend) {
    let dir = temp_dir();
    let captured: Arc<Mutex<Option<Backend>>> = Arc::default();
    let keep = captured.clone();
    let server = match kind {
        BackendKind::Sqlite => {
            DevServer::start_wrapped(dir.path(), options, move |backend| {
                *keep.lock().unwrap() = Some(backend.clone());
                backend
            })
            .await
        }
        BackendKind::Moto => {
            let settings =
                hookhub::aws::AwsSettings::with_prefix(&hookhub_tests::moto::unique_prefix());
            DevServer::start_on(options, async move {
                let aws =
                    hookhub::aws::Aws::new(&hookhub_tests::moto::sdk_config().await, settings);
                aws.ensure_resources().await.expect("moto resources");
                let backend = aws.backend().await.expect("AWS backend on moto");
                *keep.lock().unwrap() = Some(backend.clone());
                (backend, None)
            })
            .await
        }
    };
    let backend = captured.lock().unwrap().take().expect("backend captured");
    (server, dir, backend)
}

/// Sets up the open source `src`, an ops subscriber on `hookhub`, and subscription A (on
/// `a_sources`) whose endpoint is down: (server, ops sink, its secret, A's id, A's sink).
async fn scene(server: DevServer, a_sources: &[&str]) -> (DevServer, Sink, String, String, Sink) {
    server.open_source("src").await;
    let ops = Sink::start().await;
    let (_, ops_secret) = subscribe(&server, &ops, &["hookhub"]).await;
    let a_sink = Sink::start().await;
    a_sink.set_down(true);
    let (a, _) = subscribe(&server, &a_sink, a_sources).await;
    (server, ops, ops_secret, a, a_sink)
}

/// Creates a subscription; returns its id and signing secret.
async fn subscribe(server: &DevServer, sink: &Sink, sources: &[&str]) -> (String, String) {
    let sub = server
        .admin()
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": sources}),
        )
        .await;
    (
        sub["id"].as_str().unwrap().to_owned(),
        sub["secret"].as_str().unwrap().to_owned(),
    )
}

async fn send(server: &DevServer, n: usize) {
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("src"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"type":"order.created","n":{n}}}"#))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// The operational events a sink received, in order, each checked for its Standard Webhooks
/// signature (with `secret`) and its content type.
fn received_ops(sink: &Sink, secret: &str) -> Vec<(String, Value)> {
    sink.received()
        .into_iter()
        .map(|r| {
            assert!(r.signature_valid(secret), "unsigned operational event");
            assert_eq!(r.header("content-type"), "application/json");
            let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
            (r.header("webhook-id").to_owned(), body)
        })
        .collect()
}

/// `(type, subscription_id, reason)` of each operational event received.
fn summary(ops: &[(String, Value)]) -> Vec<(String, String, String)> {
    ops.iter()
        .map(|(_, b)| {
            let text = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
            (text("type"), text("subscription_id"), text("reason"))
        })
        .collect()
}

async fn wait_for_op(sink: &Sink, secret: &str, event_type: &str, subscription_id: &str) {
    wait_until(WAIT, || {
        summary(&received_ops(sink, secret))
            .iter()
            .any(|(t, s, _)| t == event_type && s == subscription_id)
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {event_type} about {subscription_id}; received {:#?}",
            summary(&received_ops(sink, secret))
        )
    });
}

/// The ids of the stored `hookhub` events.
async fn stored_ops(server: &DevServer) -> Vec<String> {
    server
        .admin()
        .list("/v1/events?source=hookhub&limit=1000")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until every stored operational event reached the ops sink, checks nothing more comes
/// and none went to `subject`, and reports the counts.
async fn report(
    label: &str,
    kind: BackendKind,
    server: &DevServer,
    ops: &Sink,
    subject: (&str, &Sink),
) {
    let stored = stored_ops(server).await;
    let received = |sink: &Sink| -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in sink.received() {
            *counts.entry(r.header("webhook-id").to_owned()).or_insert(0) += 1;
        }
        counts
    };
    wait_until(WAIT, || {
        let got = received(ops);
        stored.iter().all(|id| got.contains_key(id))
    })
    .await
    .expect("every operational event reaches the ops subscriber");
    holds_for(Duration::from_millis(800), || {
        received(ops).values().sum::<usize>() == stored.len()
    })
    .await
    .expect("nothing more reaches the ops subscriber");
    let got = received(ops);
    let sent = stored.len();
    let delivered = stored.iter().filter(|id| got.contains_key(*id)).count();
    let duplicated = got.values().filter(|c| **c > 1).count();
    let lost = sent - delivered;
    println!(
        "{label} ({kind:?}): operational events sent {sent}, delivered {delivered}, \
         duplicated {duplicated}, lost {lost}"
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicated, 0);

    // The subject never got one, nor even a log entry for one.
    let (subject_id, subject_sink) = subject;
    let to_subject = received(subject_sink);
    for id in &stored {
        assert!(!to_subject.contains_key(id), "{id} was sent to its subject");
        let log = server.attempts(id).await;
        assert!(
            log.iter().all(|a| a["subscription_id"] != subject_id),
            "{id} was attempted to its subject: {log:#?}"
        );
    }
}

async fn circuit_opened_then_closed(kind: BackendKind) {
    let options = DevOptions {
        retry_schedule: vec![Duration::from_millis(200); 20],
        health: HealthPolicy {
            breaker_threshold: 3,
            probe_backoff: Duration::from_millis(300),
            max_probe_backoff: Duration::from_secs(1),
            disable_after: None,
        },
        ..DevOptions::default()
    };
    let (server, _dir) = hookhub_tests::start_dev(kind, options).await;
    // A listens to operational events too: the ones about itself must not reach it.
    let (server, ops, ops_secret, a, a_sink) = scene(server, &["src", "hookhub"]).await;

    for n in 0..3 {
        send(&server, n).await;
    }
    wait_for_op(&ops, &ops_secret, "subscription.circuit_opened", &a).await;
    // A few failed probes while it stays down: the same outage, not reported again.
    let calls = a_sink.count();
    wait_until(WAIT, || a_sink.count() >= calls + 2)
        .await
        .expect("probes");
    a_sink.set_down(false);
    wait_for_op(&ops, &ops_secret, "subscription.circuit_closed", &a).await;

    let got = summary(&received_ops(&ops, &ops_secret));
    let expected = vec![
        (
            "subscription.circuit_opened".into(),
            a.clone(),
            String::new(),
        ),
        (
            "subscription.circuit_closed".into(),
            a.clone(),
            String::new(),
        ),
    ];
    assert_eq!(got, expected);
    let (_, opened) = &received_ops(&ops, &ops_secret)[0];
    assert!(opened["occurred_at"].is_string());
    report("breaker", kind, &server, &ops, (&a, &a_sink)).await;

    // Replayed to every matching subscription: A, which listens to `hookhub`, is left out.
    let (opened_id, _) = &received_ops(&ops, &ops_secret)[0];
    let (status, replayed) = server
        .admin()
        .call(
            Method::POST,
            &format!("/v1/events/{opened_id}/replay"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["subscriptions"].as_array().unwrap().len(), 1);
    assert_ne!(replayed["subscriptions"][0], a.as_str());
    wait_until(WAIT, || ops.count() == 3)
        .await
        .expect("replayed to the ops subscriber");
    assert!(a_sink
        .received()
        .iter()
        .all(|r| r.header("webhook-id") != opened_id));
}

async fn disabled_failing_then_by_an_operator(kind: BackendKind) {
    let options = DevOptions::disabling_after(Duration::from_secs(2));
    let (server, _dir) = hookhub_tests::start_dev(kind, options).await;
    let (server, ops, ops_secret, a, a_sink) = scene(server, &["src", "hookhub"]).await;

    send(&server, 0).await;
    wait_for_op(&ops, &ops_secret, "subscription.disabled", &a).await;

    let admin = server.admin();
    let path = format!("/v1/subscriptions/{a}");
    let (status, _) = admin
        .call(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(status, 200);
    wait_for_op(&ops, &ops_secret, "subscription.enabled", &a).await;
    let (status, _) = admin
        .call(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, 200);
    wait_until(WAIT, || received_ops(&ops, &ops_secret).len() >= 3)
        .await
        .expect("the manual disable");
    // A PATCH that changes nothing about `enabled` reports nothing.
    let (status, _) = admin
        .call(
            Method::PATCH,
            &path,
            Some(json!({"enabled": false, "label": "x"})),
        )
        .await;
    assert_eq!(status, 200);

    let got = summary(&received_ops(&ops, &ops_secret));
    let expected: Vec<(String, String, String)> = [
        ("subscription.disabled", "failing"),
        ("subscription.enabled", ""),
        ("subscription.disabled", "manual"),
    ]
    .into_iter()
    .map(|(t, r)| (t.to_owned(), a.clone(), r.to_owned()))
    .collect();
    assert_eq!(got, expected);
    report("disable", kind, &server, &ops, (&a, &a_sink)).await;
}

async fn exhausted_recovery_and_the_reserved_source(kind: BackendKind) {
    let options = DevOptions {
        retry_schedule: vec![Duration::from_millis(100)],
        health: HealthPolicy {
            breaker_threshold: 0,
            disable_after: None,
            ..HealthPolicy::default()
        },
        ..DevOptions::default()
    };
    let (server, _dir, backend) = start_capturing(kind, options).await;
    let (server, ops, ops_secret, a, a_sink) = scene(server, &["src"]).await;
    // A second ops subscriber that fails everything: its exhausted deliveries of operational
    // events must not be reported (or the two would echo).
    let broken_ops = Sink::start().await;
    broken_ops.set_down(true);
    let (broken, _) = subscribe(&server, &broken_ops, &["hookhub"]).await;

    send(&server, 0).await;
    wait_for_op(&ops, &ops_secret, "delivery.exhausted", &a).await;
    let (exhausted_id, exhausted) = received_ops(&ops, &ops_secret).remove(0);
    assert_eq!(exhausted["attempts"], 2);
    let event_id = exhausted["event_id"].as_str().unwrap().to_owned();
    assert_eq!(server.attempts(&event_id).await.len(), 2);
    // The broken ops subscriber used up its retries on it, and nothing reported that.
    server
        .wait_for_attempts(&exhausted_id, |log| {
            log.iter()
                .any(|a| a["subscription_id"] == broken && a["state"] == "failed")
        })
        .await;
    holds_for(Duration::from_millis(800), || ops.count() == 1)
        .await
        .expect("no delivery.exhausted about a delivery of an operational event");

    // The bulk recovery job's emitter, called as the job's end calls it.
    let emitted =
        operational::emit_recovery_finished(&*backend.intake, RecoveryKind::Recover, Some(&a), 1)
            .await
            .expect("emitted");
    wait_for_op(&ops, &ops_secret, "recovery.finished", &a).await;
    let (id, finished) = received_ops(&ops, &ops_secret).remove(1);
    assert_eq!(id, emitted);
    assert_eq!(
        (finished["job"].as_str(), finished["enqueued"].as_u64()),
        (Some("recover"), Some(1))
    );

    // Nobody can post an operational event, nor manage the built-in source.
    let forged = hookhub_tests::http_client()
        .post(server.ingest_url("hookhub"))
        .header("content-type", "application/json")
        .body(r#"{"type":"subscription.enabled","subscription_id":"sub_x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 404);
    let refused: Value = forged.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "source_not_found");
    let admin = server.admin();
    let reserved = [
        (
            Method::POST,
            "/v1/sources",
            Some(json!({"id": "hookhub", "verify": {"scheme": "none"}})),
        ),
        (
            Method::PATCH,
            "/v1/sources/hookhub",
            Some(json!({"verify": {"scheme": "none"}})),
        ),
        (Method::DELETE, "/v1/sources/hookhub", None),
    ];
    for (method, path, body) in reserved {
        let (status, answer) = admin.call(method.clone(), path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("reserved_source")),
            "{method} {path}: {answer}"
        );
    }
    let listed = admin.list("/v1/sources").await;
    assert!(listed.iter().all(|s| s["id"] != "hookhub"), "{listed:?}");
    // Nor replay one to the subscription it is about.
    let (status, answer) = admin
        .call(
            Method::POST,
            &format!("/v1/events/{exhausted_id}/replay"),
            Some(json!({"subscription_id": a})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("operational_event_subject")),
        "{answer}"
    );
    assert_eq!(stored_ops(&server).await.len(), 2);
    report("exhausted", kind, &server, &ops, (&a, &a_sink)).await;
}

on_both_backends!(
    circuit_opened_then_closed,
    disabled_failing_then_by_an_operator,
    exhausted_recovery_and_the_reserved_source,
);

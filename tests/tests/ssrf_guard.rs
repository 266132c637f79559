//! The SSRF guard turned on in a dev server, on SQLite and on the AWS adapters (moto): the
//! admin API refuses subscription URLs whose host is a non-public IP literal, and a delivery to a
//! host name that resolves to loopback is logged `blocked` and never reaches the subscriber.

use std::time::Duration;

use hookhub_tests::{
    on_both_backends, start_dev, temp_dir, BackendKind, DevOptions, DevServer, Sink,
};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// How long the sink is watched for a request that must never come.
const QUIET: Duration = Duration::from_millis(1500);

fn guarded() -> DevOptions {
    DevOptions {
        allow_private_targets: false,
        ..DevOptions::default()
    }
}

/// A source that takes any request, and a sink.
async fn open_source(server: &DevServer) -> Sink {
    server.open_source("shop").await;
    Sink::start().await
}

/// Posts a webhook to the source; returns the event id.
async fn post_webhook(server: &DevServer) -> String {
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("shop"))
        .header("content-type", "application/json")
        .body(r#"{"type":"order.paid"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_string()
}

/// Everything the guard promises, on each backend.
async fn guard_refuses_private_targets(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, guarded()).await;
    let server = &server;
    let admin = server.admin();
    let sink = open_source(server).await;
    let port = sink.url.trim_start_matches("http://127.0.0.1:");

    // IP literals in blocked ranges: 422 at creation, nothing stored.
    for url in [
        sink.url.clone(),
        format!("http://[::1]:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/hook".to_string(),
        "http://[64:ff9b::a00:1]/hook".to_string(),
    ] {
        let (status, error) = admin
            .call(Method::POST, "/v1/subscriptions", Some(json!({"url": url})))
            .await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (422, Some("url_not_allowed")),
            "{url}: {error}"
        );
    }
    assert!(
        admin.list("/v1/subscriptions").await.is_empty(),
        "nothing created"
    );

    // A host name is only judged when resolved, at delivery: accepted here.
    let by_name = sink.url.replace("127.0.0.1", "localhost");
    let sub = admin
        .post("/v1/subscriptions", json!({"url": by_name}))
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    // PATCHing it to a blocked literal is refused and changes nothing.
    let (status, error) = admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{sub_id}"),
            Some(json!({"url": "http://192.168.1.1/hook"})),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("url_not_allowed")),
        "{error}"
    );
    let stored = admin.get(&format!("/v1/subscriptions/{sub_id}")).await;
    assert_eq!(stored["url"], by_name.as_str());

    let event_id = post_webhook(server).await;

    // Every attempt of the retry schedule (3 retries: 4 attempts) is logged `blocked`; the last
    // one ends the series `failed`.
    let attempts_in_all = guarded().retry_schedule.len() + 1;
    let mut log = server
        .wait_for_attempts(&event_id, |log| {
            log.len() == attempts_in_all && log.iter().any(|a| a["state"] == "failed")
        })
        .await;
    log.sort_by_key(|a| a["attempt"].as_u64());
    for (i, attempt) in log.iter().enumerate() {
        let last = i + 1 == attempts_in_all;
        assert_eq!(attempt["attempt"], i + 1, "{attempt}");
        assert_eq!(attempt["error"], "blocked", "{attempt}");
        assert_eq!(attempt["status_code"], Value::Null, "{attempt}");
        assert_eq!(
            attempt["state"],
            if last { "failed" } else { "retrying" },
            "{attempt}"
        );
    }
    sink.assert_no_more_than(0, QUIET).await;
    assert_eq!(
        server.attempts(&event_id).await.len(),
        attempts_in_all,
        "no attempt after the last one"
    );
}

on_both_backends!(guard_refuses_private_targets);

/// Without the guard (the dev default) the same literal is accepted and delivered to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_off_by_default_in_dev() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    let sink = open_source(&server).await;
    server
        .admin()
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;
    post_webhook(&server).await;
    sink.wait_for(1, WAIT).await;
}

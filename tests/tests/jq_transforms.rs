//! jq filters and transforms, and static custom headers, through the real path (ingest, queue,
//! dispatcher, HTTP delivery to a sink) on SQLite and on the AWS adapters (moto).

use std::time::Duration;

use hookhub_tests::{on_both_backends, start_dev, BackendKind, DevOptions, DevServer, Sink};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// How long the sink is watched for a request that must never come.
const QUIET: Duration = Duration::from_millis(1500);

/// Posts a JSON webhook; returns the event id.
async fn post_webhook(server: &DevServer, body: Value) -> String {
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("shop"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_string()
}

/// Creates a subscription to `sink` with `extra` fields; returns (id, secret).
async fn subscribe(server: &DevServer, sink: &Sink, extra: Value) -> (String, String) {
    let mut body = json!({"url": sink.url});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let sub = server.admin().post("/v1/subscriptions", body).await;
    (
        sub["id"].as_str().unwrap().to_string(),
        sub["secret"].as_str().unwrap().to_string(),
    )
}

/// A filter on a body field: only matching events are delivered; the others leave no failure
/// in the attempt log. A transform reshapes the body, signed over the transformed bytes.
async fn filter_and_transform(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    server.open_source("shop").await;
    let sink = Sink::start().await;
    let (sub_id, secret) = subscribe(
        &server,
        &sink,
        json!({
            "filter": ".body.amount >= 100",
            "transform": "{kind: .type, cents: (.body.amount * 100), shop: .headers[\"x-shop\"]}",
        }),
    )
    .await;
    let shown = server
        .admin()
        .get(&format!("/v1/subscriptions/{sub_id}"))
        .await;
    assert_eq!(shown["filter"], ".body.amount >= 100");
    assert!(shown["transform"].as_str().unwrap().starts_with("{kind"));

    let small = post_webhook(&server, json!({"type": "order.paid", "amount": 5})).await;
    let big = post_webhook(&server, json!({"type": "order.paid", "amount": 250})).await;
    let received = sink.wait_for(1, WAIT).await;
    sink.assert_no_more_than(1, QUIET).await;
    let delivery = &received[0];
    assert_eq!(delivery.header("webhook-id"), big);
    assert_eq!(delivery.header("content-type"), "application/json");
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(
        body,
        json!({"kind": "order.paid", "cents": 25000, "shop": null})
    );
    assert!(
        delivery.signature_valid(&secret),
        "signed over the transformed body"
    );

    let log = server.wait_for_attempts(&big, |log| log.len() == 1).await;
    assert_eq!(log[0]["state"], "succeeded");
    assert!(
        server.attempts(&small).await.is_empty(),
        "a filtered-out event logs no attempt (no failure)"
    );
}

/// A transform that fails at run time is logged `transform_failed`, not retried; once fixed
/// through PATCH, a replay delivers the transformed body.
async fn failing_transform_is_recoverable(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    server.open_source("shop").await;
    let sink = Sink::start().await;
    // `.body.customer` is a string: indexing it fails.
    let (sub_id, secret) = subscribe(
        &server,
        &sink,
        json!({"transform": "{name: .body.customer.name}"}),
    )
    .await;
    let event_id = post_webhook(&server, json!({"customer": "ada"})).await;
    let log = server
        .wait_for_attempts(&event_id, |log| !log.is_empty())
        .await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["error"], "transform_failed", "{log:?}");
    assert_eq!(log[0]["state"], "failed", "no retry");
    assert_eq!(log[0]["status_code"], Value::Null);
    assert!(
        log[0]["response_excerpt"]
            .as_str()
            .unwrap()
            .starts_with("transform: "),
        "{log:?}"
    );
    // Retries are 200 ms apart in tests: none comes.
    sink.assert_no_more_than(0, QUIET).await;
    assert_eq!(server.attempts(&event_id).await.len(), 1);

    let (status, _) = admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{sub_id}"),
            Some(json!({"transform": "{name: .body.customer}"})),
        )
        .await;
    assert_eq!(status, 200);
    admin
        .post(
            &format!("/v1/events/{event_id}/replay"),
            json!({"subscription_id": sub_id}),
        )
        .await;
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&received[0].body).unwrap(),
        json!({"name": "ada"})
    );
    assert!(received[0].signature_valid(&secret));
    let log = server
        .wait_for_attempts(&event_id, |log| log.len() == 2)
        .await;
    assert!(log.iter().any(|a| a["state"] == "succeeded"), "{log:?}");

    // PATCH with null removes the transform: the original body goes out.
    admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{sub_id}"),
            Some(json!({"transform": null})),
        )
        .await;
    let shown = admin.get(&format!("/v1/subscriptions/{sub_id}")).await;
    assert_eq!(shown["transform"], Value::Null);
    post_webhook(&server, json!({"customer": "grace"})).await;
    let received = sink.wait_for(2, WAIT).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&received[1].body).unwrap(),
        json!({"customer": "grace"})
    );
}

/// Programs that do not compile are refused with the compiler's position, and nothing is
/// stored; forbidden header names are refused too.
async fn invalid_programs_and_headers_are_refused(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    let sink = Sink::start().await;
    let cases = [
        (json!({"filter": ".body |"}), "invalid_filter"),
        (json!({"transform": "{a: nope(1)}"}), "invalid_transform"),
        (
            json!({"headers": {"webhook-signature": "x"}}),
            "invalid_headers",
        ),
        (
            json!({"headers": {"Host": "evil.example"}}),
            "invalid_headers",
        ),
        (
            json!({"headers": {"content-length": "1"}}),
            "invalid_headers",
        ),
        (
            json!({"headers": {"Content-Type": "text/plain"}}),
            "invalid_headers",
        ),
        (json!({"headers": {"x-bad": "a\nb"}}), "invalid_headers"),
    ];
    for (extra, code) in cases {
        let mut body = json!({"url": sink.url});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, error) = admin
            .call(Method::POST, "/v1/subscriptions", Some(body))
            .await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (422, Some(code)),
            "{extra}: {error}"
        );
        if code != "invalid_headers" {
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains("line 1, column"), "{message}");
        }
    }
    let (status, error) = admin
        .call(
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"url": sink.url, "filter": ".a and\n  nope(1)"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2, column 3"),
        "{error}"
    );
    assert!(
        admin.list("/v1/subscriptions").await.is_empty(),
        "nothing stored"
    );

    // PATCH with a bad program changes nothing.
    let (sub_id, _) = subscribe(&server, &sink, json!({"filter": "true"})).await;
    let (status, _) = admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{sub_id}"),
            Some(json!({"filter": "if"})),
        )
        .await;
    assert_eq!(status, 422);
    let shown = admin.get(&format!("/v1/subscriptions/{sub_id}")).await;
    assert_eq!(shown["filter"], "true");
}

/// Custom headers arrive with each delivery; credentials among them are shown redacted, and
/// sending the placeholder back keeps them.
async fn custom_headers_arrive(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    server.open_source("shop").await;
    let sink = Sink::start().await;
    let (sub_id, secret) = subscribe(
        &server,
        &sink,
        json!({"headers": {"X-Team": "payments", "Authorization": "Bearer s3cret"}}),
    )
    .await;
    let shown = admin.get(&format!("/v1/subscriptions/{sub_id}")).await;
    assert_eq!(
        shown["headers"],
        json!({"x-team": "payments", "authorization": "***"})
    );
    // The placeholder keeps the stored credential; the other header changes.
    admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{sub_id}"),
            Some(json!({"headers": {"x-team": "billing", "authorization": "***"}})),
        )
        .await;
    post_webhook(&server, json!({"type": "x"})).await;
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received[0].header("x-team"), "billing");
    assert_eq!(received[0].header("authorization"), "Bearer s3cret");
    assert!(received[0].signature_valid(&secret));
}

/// Hostile programs are cut off within their budget: the event is logged `transform_failed`
/// and the dispatcher keeps delivering other events meanwhile and after.
async fn hostile_programs_are_cut_off(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    server.open_source("shop").await;
    let hostile_sink = Sink::start().await;
    let healthy = Sink::start().await;
    let programs = [
        ("transform", "def f: f; f"),
        ("transform", "def f: 1 + f; f"),
        ("transform", "[range(1e9)]"),
        ("filter", "last(range(1e12)) > 0"),
    ];
    for (field, program) in programs {
        subscribe(&server, &hostile_sink, json!({ field: program })).await;
    }
    subscribe(&server, &healthy, json!({})).await;
    let first = post_webhook(&server, json!({"n": 1})).await;
    let log = server
        .wait_for_attempts(&first, |log| log.len() == programs.len() + 1)
        .await;
    let failed: Vec<&Value> = log
        .iter()
        .filter(|a| a["error"] == "transform_failed")
        .collect();
    assert_eq!(failed.len(), programs.len(), "{log:#?}");
    for attempt in &failed {
        assert_eq!(attempt["state"], "failed");
        let why = attempt["response_excerpt"].as_str().unwrap();
        assert!(
            why.contains("steps") || why.contains("longer than") || why.contains("too deep"),
            "{why}"
        );
    }
    healthy.wait_for(1, WAIT).await;
    // Later events still flow; the runaway programs are not run again.
    for n in 2..=5 {
        post_webhook(&server, json!({"n": n})).await;
    }
    healthy.wait_for(5, WAIT).await;
    hostile_sink.assert_no_more_than(0, QUIET).await;
}

on_both_backends!(
    filter_and_transform,
    failing_transform_is_recoverable,
    invalid_programs_and_headers_are_refused,
    custom_headers_arrive,
    hostile_programs_are_cut_off,
);

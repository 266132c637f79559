//! Per-subscription rate limits through the real path (receiver, queue, dispatcher, a real HTTP
//! sink) on both backends: a burst is delayed, never dropped, and uses no attempt number.
//! Timings are not asserted here; the delivered rate is measured by `hookhub-bench rate-limit`.

use std::collections::HashMap;
use std::time::Duration;

use hookhub_tests::{on_both_backends, start_dev, wait_until, BackendKind, DevOptions, Sink};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

/// A burst of `N` events to a subscription limited to `RATE` per second, with the in-process
/// wait compressed so most of the burst is parked and re-scheduled (the path that crosses the
/// queue), not only slept for.
async fn a_burst_is_delayed_not_dropped(kind: BackendKind) {
    const N: usize = 40;
    const RATE: f64 = 20.0;
    let options = DevOptions {
        rate_limit_max_wait: Duration::from_millis(300),
        ..DevOptions::default()
    };
    let (server, _dir) = start_dev(kind, options).await;
    server.open_source("burst").await;
    let sink = Sink::start().await;
    let sub = server
        .admin()
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "rate_limit": RATE}),
        )
        .await;
    assert_eq!(sub["rate_limit"], json!(RATE), "shown in the view");
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    let client = hookhub_tests::http_client();
    let mut sent = Vec::new();
    for n in 0..N {
        let response = client
            .post(server.ingest_url("burst"))
            .header("content-type", "application/json")
            .body(json!({"type": "burst", "n": n}).to_string())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let answer: Value = response.json().await.unwrap();
        sent.push(answer["id"].as_str().unwrap().to_owned());
    }

    wait_until(WAIT, || sink.count() >= N)
        .await
        .unwrap_or_else(|_| panic!("{} of {N} delivered", sink.count()));
    // Nothing more arrives once all are in (a parked copy sent twice would show here).
    sink.assert_no_more_than(N, Duration::from_millis(500))
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in sink.received() {
        *counts.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    let delivered = sent.iter().filter(|id| counts.contains_key(*id)).count();
    let duplicated: usize = counts.values().map(|c| c - 1).sum();
    let lost = N - delivered;
    eprintln!("{kind:?}: sent {N}, delivered {delivered}, duplicated {duplicated}, lost {lost}");
    assert_eq!((delivered, duplicated, lost), (N, 0, 0));
    assert_eq!(counts.len(), N, "nothing but the burst was delivered");

    // One attempt each, number 1, succeeded: waiting for a slot is not an attempt or a failure.
    for id in &sent {
        let log = server.wait_for_attempts(id, |log| !log.is_empty()).await;
        assert_eq!(log.len(), 1, "{id}: {log:#?}");
        assert_eq!(log[0]["attempt"], 1, "{id}");
        assert_eq!(log[0]["state"], "succeeded", "{id}");
        assert_eq!(log[0]["subscription_id"], sub_id.as_str());
    }
    let sub = server
        .admin()
        .get(&format!("/v1/subscriptions/{sub_id}"))
        .await;
    assert_eq!(sub["health"]["consecutive_failures"], 0);
    assert_eq!(sub["health"]["last_failure_at"], Value::Null);
}

/// `rate_limit` is validated (422, nothing changed), shown, replaced and removed with `null`.
async fn rate_limit_is_validated_and_patchable(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    for bad in [json!(0), json!(-1), json!(1e6), json!(0.0001), json!("10")] {
        let (status, body) = admin
            .call(
                reqwest::Method::POST,
                "/v1/subscriptions",
                Some(json!({"url": "http://127.0.0.1:9/hook", "rate_limit": bad})),
            )
            .await;
        assert!(
            (400..500).contains(&status) && body["error"]["code"].is_string(),
            "{bad}: {status} {body}"
        );
    }
    assert!(
        admin.list("/v1/subscriptions").await.is_empty(),
        "nothing created"
    );
    let (status, body) = admin
        .call(
            reqwest::Method::POST,
            "/v1/subscriptions",
            Some(json!({"url": "http://127.0.0.1:9/hook", "rate_limit": 0})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_rate_limit"))
    );

    let sub = admin
        .post(
            "/v1/subscriptions",
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(sub["rate_limit"], Value::Null, "no limit by default");
    let path = format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap());
    let patch = |body: Value| {
        let admin = admin.clone();
        let path = path.clone();
        async move { admin.call(reqwest::Method::PATCH, &path, Some(body)).await }
    };
    let (status, body) = patch(json!({"rate_limit": 2.5})).await;
    assert_eq!((status, &body["rate_limit"]), (200, &json!(2.5)));
    let (status, body) = patch(json!({"rate_limit": 5000})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_rate_limit"))
    );
    assert_eq!(
        admin.get(&path).await["rate_limit"],
        json!(2.5),
        "unchanged"
    );
    let (status, body) = patch(json!({"label": "x"})).await;
    assert_eq!(
        (status, &body["rate_limit"]),
        (200, &json!(2.5)),
        "absent: kept"
    );
    let (status, body) = patch(json!({"rate_limit": null})).await;
    assert_eq!(
        (status, &body["rate_limit"]),
        (200, &Value::Null),
        "null removes it"
    );
}

on_both_backends!(
    a_burst_is_delayed_not_dropped,
    rate_limit_is_validated_and_patchable
);

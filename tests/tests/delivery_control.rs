//! Delivery control through the real path on both backends: the circuit breaker parks the
//! deliveries to a dead endpoint and delivers each exactly once after it recovers, and a
//! subscription failing past `disable_after` is disabled and logs later events as `skipped`.
//! Time is compressed through the settings (breaker backoff, disable-after, retry schedule).

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use hookhub::decision::HealthPolicy;
use hookhub_tests::{
    holds_for, on_both_backends, start_dev, wait_until, BackendKind, DevOptions, DevServer, Sink,
};
use serde_json::{json, Value};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "control-secret";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn source(server: &DevServer) {
    let body = json!({"id": "src", "verify": {"scheme": "hmac", "header": "X-Signature",
        "algorithm": "sha256", "encoding": "hex", "secret": SECRET}});
    server.admin().post("/v1/sources", body).await;
}

/// Posts one signed event; returns its id.
async fn send(server: &DevServer, n: usize) -> String {
    let body = format!(r#"{{"type":"order.created","n":{n}}}"#);
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("src"))
        .header("content-type", "application/json")
        .header("x-signature", sign(body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let answer: Value = response.json().await.unwrap();
    answer["id"].as_str().unwrap().to_owned()
}

/// A dev server with the test source and one subscription whose endpoint is down.
async fn down_subscriber(
    kind: BackendKind,
    options: DevOptions,
) -> (DevServer, tempfile::TempDir, Sink, String) {
    let (server, dir) = start_dev(kind, options).await;
    source(&server).await;
    let sink = Sink::start().await;
    sink.set_down(true);
    let sub = server
        .admin()
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    (server, dir, sink, sub_id)
}

/// Polls the subscription until `done` holds (panics after `WAIT`); returns it.
async fn wait_for_subscription(
    server: &DevServer,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sub = server.admin().get(&format!("/v1/subscriptions/{id}")).await;
        if done(&sub) {
            return sub;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription never reached the expected state: {sub:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// webhook-id → how many 2xx answers the sink gave for it, from `from` on.
fn delivered(sink: &Sink, from: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in sink.received().into_iter().skip(from) {
        *counts.entry(r.header("webhook-id").to_owned()).or_insert(0) += 1;
    }
    counts
}

async fn breaker_parks_a_dead_endpoint_and_delivers_each_event_once(kind: BackendKind) {
    let backoff = Duration::from_millis(300);
    let options = DevOptions {
        retry_schedule: vec![Duration::from_millis(200); 4],
        health: HealthPolicy {
            breaker_threshold: 3,
            probe_backoff: backoff,
            max_probe_backoff: Duration::from_secs(1),
            disable_after: None,
        },
        ..DevOptions::default()
    };
    let (server, _dir, sink, sub_id) = down_subscriber(kind, options).await;

    // The first events trip the breaker.
    let mut events = Vec::new();
    for n in 0..3 {
        events.push(send(&server, n).await);
    }
    wait_for_subscription(&server, &sub_id, |s| s["health"]["circuit"] != "closed").await;

    // Then many more arrive while the endpoint stays down for a (compressed) hour.
    let n_more = 60;
    for n in 0..n_more {
        events.push(send(&server, 100 + n).await);
    }
    let outage = Duration::from_secs(4);
    let before_outage = sink.count();
    // About one probe per backoff (the backoff only grows; the bound allows for retries in
    // flight when it opened and, on moto, whose conditional writes are not serialised, a probe
    // claimed twice); the 60 new events themselves cost no HTTP call.
    let probe_bound = 2 * (outage.as_millis() / backoff.as_millis()) as usize + 2;
    assert!(probe_bound < n_more / 2);
    holds_for(outage, || sink.count() <= before_outage + probe_bound)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} requests during the outage, expected at most {probe_bound} probes",
                sink.count() - before_outage
            )
        });
    let calls_while_down = sink.count();

    // The endpoint comes back: every event is delivered, exactly once.
    sink.set_down(false);
    let sent = events.len();
    wait_until(WAIT, || {
        let ok = delivered(&sink, calls_while_down);
        events.iter().all(|e| ok.contains_key(e))
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "only {} of {sent} events delivered after recovery",
            delivered(&sink, calls_while_down).len()
        )
    });
    holds_for(Duration::from_secs(2), || {
        sink.count() <= calls_while_down + sent
    })
    .await
    .expect("nothing more is sent once every event is delivered");

    let ok = delivered(&sink, calls_while_down);
    let delivered_count = events.iter().filter(|e| ok.contains_key(*e)).count();
    let duplicated = ok.values().filter(|c| **c > 1).count();
    let lost = sent - delivered_count;
    let mut logged = 0;
    let mut parked = 0;
    let mut failed_attempts = 0;
    for event in &events {
        let log = server.attempts(event).await;
        logged += log.len();
        let failures = log.iter().filter(|a| a["state"] != "succeeded").count();
        failed_attempts += failures;
        if failures == 0 {
            // Never reached the dead endpoint: it waited parked until the recovery.
            parked += 1;
        }
        assert!(
            log.iter().all(|a| a["state"] != "failed"),
            "no retry budget was used up: {log:#?}"
        );
    }
    let probes = calls_while_down - 3;
    println!(
        "breaker ({kind:?}): sent {sent}, parked {parked}, delivered {delivered_count}, \
         duplicated {duplicated}, lost {lost}; HTTP calls while down {calls_while_down} \
         (probes {probes}), attempts logged {logged}"
    );
    assert_eq!(lost, 0);
    assert_eq!(duplicated, 0);
    assert!(parked >= n_more - probes, "parked {parked}");
    assert_eq!(
        failed_attempts, calls_while_down,
        "every call while down is one logged attempt"
    );
    assert!(
        logged <= sent + probes + 3,
        "attempts logged {logged} > events {sent} + probes {probes} + the 3 that opened it"
    );
    let s = server
        .admin()
        .get(&format!("/v1/subscriptions/{sub_id}"))
        .await;
    assert_eq!(s["health"]["circuit"], "closed");
    assert_eq!(s["health"]["consecutive_failures"], 0);
    assert_eq!(s["status"], "enabled");
}

async fn failing_past_disable_after_disables_and_skips(kind: BackendKind) {
    let options = DevOptions::disabling_after(Duration::from_secs(2));
    let (server, _dir, sink, sub_id) = down_subscriber(kind, options).await;
    let first = send(&server, 0).await;

    let admin = server.admin();
    let disabled = wait_for_subscription(&server, &sub_id, |s| s["status"] == "disabled").await;
    assert_eq!(disabled["disabled_reason"], "failing");
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["health"]["consecutive_failures"].as_u64().unwrap() >= 2);
    assert!(disabled["health"]["failing_since"].is_string());

    // The first event's pending retry is skipped, not sent.
    let log = server
        .wait_for_attempts(&first, |log| {
            log.last().is_some_and(|a| a["state"] == "skipped")
        })
        .await;
    let calls = sink.count();
    assert_eq!(
        calls,
        log.len() - 1,
        "every call but the skipped entry was an attempt"
    );

    // Later events reach no endpoint, but none is dropped silently.
    let mut events = Vec::new();
    for n in 1..=5 {
        events.push(send(&server, n).await);
    }
    let mut skipped = 0;
    for event in &events {
        let log = server.wait_for_attempts(event, |log| !log.is_empty()).await;
        assert_eq!(log.len(), 1, "{log:#?}");
        assert_eq!(log[0]["state"], "skipped");
        assert!(log[0]["status_code"].is_null() && log[0]["next_attempt_at"].is_null());
        skipped += 1;
    }
    holds_for(Duration::from_millis(800), || sink.count() == calls)
        .await
        .expect("no HTTP call to a disabled subscription");
    let listed = admin
        .list(&format!("/v1/subscriptions/{sub_id}/attempts?limit=100"))
        .await;
    let visible = listed.iter().filter(|a| a["state"] == "skipped").count();
    let sent = events.len() + 1;
    let lost = sent - events.len().min(skipped) - 1;
    println!(
        "disable ({kind:?}): sent {sent}, delivered 0, skipped {} (visible in the subscription's \
         log: {visible}), duplicated 0, lost {lost}; HTTP calls {calls}",
        skipped + 1
    );
    assert_eq!(visible, skipped + 1);
    assert_eq!(lost, 0);
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// A healthy endpoint's successes are not written one by one (`decision::health::needs_write`):
/// the stored `last_success_at` stays at the first success of a burst, while a success after a
/// failure is written at once and clears the streak.
async fn a_healthy_endpoint_costs_no_health_write_per_success(kind: BackendKind) {
    let options = DevOptions {
        retry_schedule: vec![Duration::from_millis(300); 4],
        ..DevOptions::default()
    };
    let (server, _dir, sink, sub_id) = down_subscriber(kind, options).await;
    sink.set_down(false);
    let succeeded = |log: &[Value]| log.last().is_some_and(|a| a["state"] == "succeeded");
    let mut firsts = Vec::new();
    for n in 0..5 {
        let id = send(&server, n).await;
        let log = server.wait_for_attempts(&id, succeeded).await;
        firsts.push(time(&log[0]["started_at"]));
    }
    let sub = wait_for_subscription(&server, &sub_id, |s| {
        s["health"]["last_success_at"].is_string()
    })
    .await;
    assert_eq!(
        time(&sub["health"]["last_success_at"]),
        firsts[0],
        "only the first of five successes within the resolution is written: {sub:#}"
    );

    // A failure is written at once; the retry's success clears the streak at once.
    sink.set_down(true);
    let failed = send(&server, 100).await;
    wait_for_subscription(&server, &sub_id, |s| {
        s["health"]["consecutive_failures"] == 1
    })
    .await;
    sink.set_down(false);
    let log = server.wait_for_attempts(&failed, succeeded).await;
    let sub = wait_for_subscription(&server, &sub_id, |s| {
        s["health"]["consecutive_failures"] == 0
    })
    .await;
    let retried = time(&log.last().unwrap()["started_at"]);
    assert_eq!(time(&sub["health"]["last_success_at"]), retried, "{sub:#}");
    println!(
        "health writes ({kind:?}): 6 events, 7 attempts (1 failed), successes written: 2 of 6"
    );
}

on_both_backends!(
    breaker_parks_a_dead_endpoint_and_delivers_each_event_once,
    failing_past_disable_after_disables_and_skips,
    a_healthy_endpoint_costs_no_health_write_per_success,
);

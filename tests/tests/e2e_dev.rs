//! End to end through the dev server on SQLite: real HTTP in (provider → receiver) and out
//! (dispatcher → local sinks).

use std::time::Duration;

use hmac::{Hmac, Mac};
use hookhub_tests::{temp_dir, wait_until, DevOptions, DevServer, Sink};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const GITHUB_SECRET: &str = "gh-webhook-secret";
const WAIT: Duration = Duration::from_secs(20);

fn github_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn create_github_source(server: &DevServer) {
    server
        .admin()
        .post(
            "/v1/sources",
            json!({"id": "github", "verify": {
                "scheme": "hmac", "header": "X-Hub-Signature-256", "algorithm": "sha256",
                "encoding": "hex", "prefix": "sha256=", "secret": GITHUB_SECRET}}),
        )
        .await;
}

async fn subscribe(server: &DevServer, sink: &Sink, event_types: Value) -> (String, String) {
    let sub = server
        .admin()
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": ["github"], "event_types": event_types, "label": "test"}),
        )
        .await;
    (
        sub["id"].as_str().unwrap().to_string(),
        sub["secret"].as_str().unwrap().to_string(),
    )
}

async fn post_github(server: &DevServer, body: &[u8]) -> reqwest::Response {
    hookhub_tests::http_client()
        .post(server.ingest_url("github"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", github_signature(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_delivered_signed_and_byte_identical_to_every_matching_subscriber() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    create_github_source(&server).await;
    let (sink_a, sink_b, sink_other) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    let (_, secret_a) = subscribe(&server, &sink_a, json!([])).await;
    let (_, secret_b) = subscribe(&server, &sink_b, json!(["issues.*"])).await;
    subscribe(&server, &sink_other, json!(["push"])).await;

    // Unicode and odd spacing: the body must arrive exactly as sent.
    let body = "{ \"type\": \"issues.opened\",  \"title\": \"héllo — ✓\" }\n".as_bytes();
    let response = post_github(&server, body).await;
    assert_eq!(response.status(), 200);
    let event_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(event_id.starts_with("evt_"));

    for (sink, secret) in [(&sink_a, &secret_a), (&sink_b, &secret_b)] {
        let got = sink.wait_for(1, WAIT).await;
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].body[..], body);
        assert_eq!(got[0].header("webhook-id"), event_id);
        assert_eq!(got[0].header("content-type"), "application/json");
        assert!(
            got[0].signature_valid(secret),
            "signature must verify with the subscription secret"
        );
        assert!(!got[0].signature_valid(hookhub::signing::generate_secret().expose()));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink_other.count(),
        0,
        "a push-only subscription must not get issues events"
    );

    let event = server.admin().get(&format!("/v1/events/{event_id}")).await;
    assert_eq!(event["event_type"], "issues.opened");
    assert_eq!(event["body"].as_str().unwrap().as_bytes(), body);
    let log = server.attempts(&event_id).await;
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .all(|a| a["state"] == "succeeded" && a["status_code"] == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_subscriber_is_retried_and_every_attempt_is_logged() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    create_github_source(&server).await;
    let (flaky, steady) = (Sink::start().await, Sink::start().await);
    flaky.script(&[500, 502]);
    let (flaky_id, _) = subscribe(&server, &flaky, json!([])).await;
    subscribe(&server, &steady, json!([])).await;

    let response = post_github(&server, br#"{"type":"push"}"#).await;
    let event_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let got = flaky.wait_for(3, WAIT).await;
    assert!(
        got.iter().all(|r| r.header("webhook-id") == event_id),
        "webhook-id is stable across retries"
    );
    let log = server
        .wait_for_attempts(&event_id, |log| log.len() == 4)
        .await;
    let flaky_log: Vec<&Value> = log
        .iter()
        .filter(|a| a["subscription_id"] == flaky_id.as_str())
        .collect();
    assert_eq!(flaky_log.len(), 3, "{log:#?}");
    assert_eq!(flaky_log[0]["status_code"], 500);
    assert_eq!(flaky_log[0]["state"], "retrying");
    assert_eq!(flaky_log[1]["status_code"], 502);
    assert_eq!(flaky_log[2]["state"], "succeeded");
    assert_eq!(flaky_log[2]["attempt"], 3);
    // The steady subscriber succeeded at once and is never re-delivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(steady.count(), 1);
    assert_eq!(flaky.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_mark_the_delivery_failed_and_410_disables_the_subscription() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    create_github_source(&server).await;
    let (down, gone) = (Sink::start().await, Sink::start().await);
    down.script(&[500, 500, 500, 500, 500]);
    gone.script(&[410]);
    let (down_id, _) = subscribe(&server, &down, json!([])).await;
    let (gone_id, _) = subscribe(&server, &gone, json!([])).await;

    let response = post_github(&server, br#"{"type":"push","n":1}"#).await;
    let event_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Schedule of 3 delays = 4 attempts in all.
    down.wait_for(4, WAIT).await;
    let admin = server.admin();
    let log = server
        .wait_for_attempts(&event_id, |log| {
            log.iter()
                .any(|a| a["subscription_id"] == down_id.as_str() && a["attempt"] == 4)
        })
        .await;
    let last = log
        .iter()
        .find(|a| a["subscription_id"] == down_id.as_str() && a["attempt"] == 4)
        .expect("fourth attempt logged");
    assert_eq!(last["state"], "failed");
    assert!(last["next_attempt_at"].is_null());

    let gone_attempts: Vec<&Value> = log
        .iter()
        .filter(|a| a["subscription_id"] == gone_id.as_str())
        .collect();
    assert_eq!(gone_attempts.len(), 1);
    assert_eq!(gone_attempts[0]["state"], "failed");
    let sub = admin.get(&format!("/v1/subscriptions/{gone_id}")).await;
    assert_eq!(sub["enabled"], false);
    assert_eq!(sub["disabled_reason"], "gone");
    assert_eq!(sub["status"], "disabled");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(down.count(), 4, "no attempt beyond the schedule");
    assert_eq!(gone.count(), 1, "410 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    create_github_source(&server).await;
    let sink = Sink::start().await;
    sink.script_with_headers(429, &[("retry-after", "2")]);
    subscribe(&server, &sink, json!([])).await;
    post_github(&server, br#"{"type":"push","n":2}"#).await;
    sink.wait_for(1, WAIT).await;
    let first = tokio::time::Instant::now();
    sink.wait_for(2, WAIT).await;
    // The schedule says 200 ms; the subscriber asked for 2 s.
    assert!(
        first.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        first.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_posts_are_acknowledged_with_the_original_id_and_delivered_once() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    create_github_source(&server).await;
    // A generic HMAC source deduplicates only when told how: here on GitHub's delivery header.
    server
        .admin()
        .call(
            Method::PATCH,
            "/v1/sources/github",
            Some(json!({"dedup": {"key": "header:X-GitHub-Delivery"}})),
        )
        .await;
    let sink = Sink::start().await;
    subscribe(&server, &sink, json!([])).await;

    let body = br#"{"type":"push","ref":"refs/heads/main"}"#;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = hookhub_tests::http_client()
            .post(server.ingest_url("github"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", github_signature(body))
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        ids.push(
            response.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 1);
    let events = server.admin().get("/v1/events?source=github").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_delivery_loses_nothing() {
    let dir = temp_dir();
    let options = DevOptions::default();
    let server = DevServer::start(dir.path(), options.clone()).await;
    create_github_source(&server).await;
    let sink = Sink::start().await;
    subscribe(&server, &sink, json!([])).await;

    let post_batch = |range: std::ops::Range<usize>| {
        let server = &server;
        async move {
            let mut ids = Vec::new();
            for n in range {
                let body = format!(r#"{{"type":"push","n":{n}}}"#);
                let response = post_github(server, body.as_bytes()).await;
                assert_eq!(response.status(), 200);
                ids.push(
                    response.json::<Value>().await.unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            ids
        }
    };
    // First half: delivered and recorded before the crash.
    let mut acknowledged = post_batch(0..10).await;
    sink.wait_for(10, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let completed_before_crash = acknowledged.clone();
    // Second half: the subscriber is slow, so these deliveries are in flight when the server dies.
    sink.set_delay(Duration::from_secs(2));
    acknowledged.extend(post_batch(10..20).await);
    sink.wait_for(11, WAIT).await;
    server.crash();

    sink.set_delay(Duration::ZERO);
    let server = DevServer::start(dir.path(), options).await;
    let sent = acknowledged.len();
    let ids_received = || -> Vec<String> {
        sink.received()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect()
    };
    let distinct = || {
        let mut ids = ids_received();
        ids.sort();
        ids.dedup();
        ids
    };
    wait_until(Duration::from_secs(30), || distinct().len() == sent)
        .await
        .unwrap_or_else(|_| panic!("delivered {} of {sent}", distinct().len()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = ids_received();
    let delivered = distinct();
    let duplicated = received.len() - delivered.len();
    println!(
        "sent={sent} acknowledged={} delivered={} duplicated={duplicated}",
        acknowledged.len(),
        delivered.len()
    );
    acknowledged.sort();
    assert_eq!(
        delivered, acknowledged,
        "every acknowledged event is delivered"
    );
    for id in &completed_before_crash {
        let copies = received.iter().filter(|r| *r == id).count();
        assert_eq!(
            copies, 1,
            "{id} completed before the crash and must not be sent again"
        );
    }
    // Only deliveries cut mid-flight may repeat, with the same webhook-id.
    assert!(duplicated <= 10, "{duplicated}");
    let page = server.admin().get("/v1/events?limit=100").await;
    assert_eq!(page["data"].as_array().unwrap().len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let dir = temp_dir();
    let options = DevOptions {
        max_body_bytes: 1024,
        ..DevOptions::default()
    };
    let server = DevServer::start(dir.path(), options).await;
    create_github_source(&server).await;
    let sink = Sink::start().await;
    subscribe(&server, &sink, json!([])).await;
    let http = hookhub_tests::http_client();
    let body = br#"{"type":"push"}"#.to_vec();

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(server.ingest_url("nope"))
                .header("x-hub-signature-256", github_signature(&body))
                .body(body.clone()),
            404,
            "source_not_found",
        ),
        (
            http.get(server.ingest_url("github")),
            405,
            "method_not_allowed",
        ),
        (
            http.put(server.ingest_url("github")).body(body.clone()),
            405,
            "method_not_allowed",
        ),
        (
            http.post(server.ingest_url("github"))
                .header("x-hub-signature-256", github_signature(&[b'x'; 2048]))
                .body(vec![b'x'; 2048]),
            413,
            "payload_too_large",
        ),
        (
            http.post(server.ingest_url("github")).body(body.clone()),
            401,
            "signature_missing",
        ),
        (
            http.post(server.ingest_url("github"))
                .header("x-hub-signature-256", "sha256=zz")
                .body(body.clone()),
            401,
            "signature_malformed",
        ),
        (
            http.post(server.ingest_url("github"))
                .header(
                    "x-hub-signature-256",
                    github_signature(b"{\"type\":\"pusH\"}"),
                )
                .body(body.clone()),
            401,
            "signature_invalid",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{code}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code);
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    // Admin API: no key, wrong key, bad JSON, invalid values.
    let response = http
        .get(format!("{}/v1/sources", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .get(format!("{}/v1/sources", server.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let admin = server.admin();
    let (status, error) = admin
        .call(
            Method::POST,
            "/v1/subscriptions",
            Some(json!({"url": "ftp://x"})),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_url"))
    );
    let (status, error) = admin
        .call(
            Method::POST,
            "/v1/sources",
            Some(json!({"id": "Bad Id", "verify": {"scheme": "none"}})),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_source_id"))
    );
    let (status, error) = admin
        .call(
            Method::POST,
            "/v1/sources",
            Some(json!({"id": "x", "verify": {"scheme": "nope"}})),
        )
        .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (status, _) = admin
        .call(
            Method::POST,
            "/v1/sources",
            Some(json!({"id": "github", "verify": {"scheme": "none"}})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = admin
        .call(Method::GET, "/v1/events/evt_missing", None)
        .await;
    assert_eq!(status, 404);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = admin.get("/v1/events").await;
    assert_eq!(
        events["data"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    assert_eq!(sink.count(), 0, "nothing delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_manages_sources_and_subscriptions() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    let admin = server.admin();
    create_github_source(&server).await;
    let source = admin.get("/v1/sources/github").await;
    assert_eq!(source["verify"]["scheme"], "hmac");
    assert_ne!(
        source["verify"]["secret"], GITHUB_SECRET,
        "secrets are not shown"
    );
    assert_eq!(
        admin.get("/v1/sources").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let sub = admin
        .post(
            "/v1/subscriptions",
            json!({"url": "https://example.com/hook"}),
        )
        .await;
    let id = sub["id"].as_str().unwrap();
    assert!(sub["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(sub["enabled"], true);
    let (status, patched) = admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{id}"),
            Some(json!({"enabled": false, "event_types": ["a.*"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["event_types"], json!(["a.*"]));
    assert_eq!(
        patched.get("secret"),
        None,
        "the secret is shown only when created"
    );
    let (status, _) = admin
        .call(Method::DELETE, &format!("/v1/subscriptions/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = admin
        .call(Method::GET, &format!("/v1/subscriptions/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = admin.call(Method::DELETE, "/v1/sources/github", None).await;
    assert_eq!(status, 204);
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("github"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_replayed_with_a_fresh_retry_schedule() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    create_github_source(&server).await;
    let (down, fine) = (Sink::start().await, Sink::start().await);
    // Fails the 4 attempts of the schedule, then the replay's first attempt, then recovers.
    down.script(&[500, 500, 500, 500, 503]);
    let (down_id, _) = subscribe(&server, &down, json!([])).await;
    let (fine_id, _) = subscribe(&server, &fine, json!([])).await;
    let response = post_github(&server, br#"{"type":"push","n":"replay"}"#).await;
    let event_id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    down.wait_for(4, WAIT).await;
    let admin = server.admin();
    let failed = |log: &[Value]| {
        log.iter()
            .any(|a| a["subscription_id"] == down_id.as_str() && a["state"] == "failed")
    };
    server.wait_for_attempts(&event_id, failed).await;

    // Replay to the failed subscription only.
    let (status, replayed) = admin
        .call(
            Method::POST,
            &format!("/v1/events/{event_id}/replay"),
            Some(json!({"subscription_id": down_id})),
        )
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["subscriptions"], json!([down_id]));
    // Attempt 5 fails (503) and is retried on the schedule's first delay: attempt 6 succeeds.
    let got = down.wait_for(6, WAIT).await;
    assert!(got.iter().all(|r| r.header("webhook-id") == event_id));
    let done = |log: &[Value]| {
        log.iter().any(|a| {
            a["subscription_id"] == down_id.as_str()
                && a["attempt"] == 6
                && a["state"] == "succeeded"
        })
    };
    let log = server.wait_for_attempts(&event_id, done).await;
    let fifth = log
        .iter()
        .find(|a| a["subscription_id"] == down_id.as_str() && a["attempt"] == 5)
        .unwrap();
    assert_eq!(
        fifth["state"], "retrying",
        "a replay gets the retry schedule again"
    );
    assert_eq!(fine.count(), 1, "other subscriptions are not replayed to");

    // Replay to everyone: the already-successful subscription gets it again too.
    let (status, replayed) = admin
        .call(Method::POST, &format!("/v1/events/{event_id}/replay"), None)
        .await;
    assert_eq!(status, 202);
    assert_eq!(replayed["subscriptions"].as_array().unwrap().len(), 2);
    fine.wait_for(2, WAIT).await;
    down.wait_for(7, WAIT).await;
    let log = server
        .wait_for_attempts(&event_id, |log| {
            log.iter()
                .any(|a| a["subscription_id"] == fine_id.as_str() && a["attempt"] == 2)
        })
        .await;
    assert!(log.iter().all(|a| a["attempt"].as_u64().unwrap() <= 7));

    let (status, _) = admin
        .call(Method::POST, "/v1/events/evt_missing/replay", None)
        .await;
    assert_eq!(status, 404);
}

//! Security and data-safety checks, each through the real path (HTTP in, the real store, real
//! sinks) on both backends: placeholder secrets, sources that verify nothing, per-source dedup,
//! subscription secrets and their rotation, leases of slow deliveries, and retries that a slow
//! sibling must not hold back.

use std::time::Duration;

use hmac::{Hmac, Mac};
use hookhub_tests::{on_both_backends, start_dev, BackendKind, DevOptions, DevServer, Sink};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "hardening-secret";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A generic HMAC source (no delivery id of its own), with extra source fields.
async fn hmac_source(server: &DevServer, id: &str, extra: Value) {
    let mut body = json!({"id": id, "verify": {"scheme": "hmac", "header": "X-Signature",
        "algorithm": "sha256", "encoding": "hex", "secret": SECRET}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    server.admin().post("/v1/sources", body).await;
}

async fn post_signed(
    server: &DevServer,
    source: &str,
    secret: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = hookhub_tests::http_client()
        .post(server.ingest_url(source))
        .header("content-type", "application/json")
        .header("x-signature", sign(secret, body))
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn subscribe(server: &DevServer, sink: &Sink, sources: Value) -> Value {
    server
        .admin()
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": sources}),
        )
        .await
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

// ----- 1. The redaction placeholder is never a secret -----

async fn placeholder_secrets_are_kept_or_refused(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();

    // Creating with the placeholder as the secret is refused, and creates nothing.
    let (status, body) = admin
        .call(
            Method::POST,
            "/v1/sources",
            Some(json!({"id": "gh", "verify": {"scheme": "github", "secret": "***"}})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "secret_placeholder"),
        "{body}"
    );
    assert_eq!(admin.call(Method::GET, "/v1/sources/gh", None).await.0, 404);

    // Read-modify-write: the shown config sent back keeps the stored secret.
    admin
        .post(
            "/v1/sources",
            json!({"id": "gh", "verify": {"scheme": "github", "secret": "real-secret"}}),
        )
        .await;
    let shown = admin.get("/v1/sources/gh").await;
    assert_eq!(shown["verify"]["secret"], "***");
    let (status, _) = admin
        .call(
            Method::PATCH,
            "/v1/sources/gh",
            Some(json!({"verify": shown["verify"]})),
        )
        .await;
    assert_eq!(status, 200);
    let body = br#"{"zen":"keep it logically awesome"}"#;
    let post = |secret: &'static str| {
        let server = &server;
        async move {
            hookhub_tests::http_client()
                .post(server.ingest_url("gh"))
                .header("x-github-event", "ping")
                .header(
                    "x-hub-signature-256",
                    format!("sha256={}", sign(secret, body)),
                )
                .body(body.to_vec())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post("real-secret").await,
        200,
        "the stored secret still verifies"
    );
    assert_eq!(
        post("***").await,
        401,
        "the placeholder is not a key anyone can sign with"
    );

    // A placeholder where nothing is stored (a new list entry) is refused and changes nothing.
    let (status, body) = admin
        .call(
            Method::PATCH,
            "/v1/sources/gh",
            Some(json!({"verify": {"scheme": "github", "secrets": ["***", "***"]}})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "secret_placeholder"),
        "{body}"
    );
    assert_eq!(post("real-secret").await, 200);

    // The same for a subscription's secret: `***` leaves it as it is.
    let sink = Sink::start().await;
    let sub = subscribe(&server, &sink, json!([])).await;
    let id = sub["id"].as_str().unwrap();
    let (status, _) = admin
        .call(
            Method::PATCH,
            &format!("/v1/subscriptions/{id}"),
            Some(json!({"secret": "***", "label": "x"})),
        )
        .await;
    assert_eq!(status, 200);
    let secret = admin.get(&format!("/v1/subscriptions/{id}/secret")).await;
    assert_eq!(secret["secret"], sub["secret"]);
}

// ----- 2. No source verifies nothing unless told so -----

async fn sources_without_auth_are_refused(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    for scheme in ["outverse", "featureos"] {
        let (status, body) = admin
            .call(
                Method::POST,
                "/v1/sources",
                Some(json!({"id": scheme, "verify": {"scheme": scheme}})),
            )
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "invalid_verify"),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        for choice in ["token", "basic", "hmac", "none"] {
            assert!(message.contains(choice), "{message}");
        }
        assert_eq!(
            admin
                .call(Method::GET, &format!("/v1/sources/{scheme}"), None)
                .await
                .0,
            404
        );
        let (status, _) = hookhub_tests::http_client()
            .post(server.ingest_url(scheme))
            .body("{}")
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))
            .unwrap();
        assert_eq!(status, 404, "nothing accepts webhooks for {scheme}");
    }
    // Written out, `none` is the admin's choice.
    admin
        .post(
            "/v1/sources",
            json!({"id": "open", "verify": {"scheme": "outverse", "auth": {"scheme": "none"}}}),
        )
        .await;
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("open"))
        .body(r#"{"type":"post","action":"created"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

// ----- 3. Dedup per source, never by body unless chosen -----

/// Posts the same signed body three times (with `headers`) and returns the `duplicate` flags.
async fn post_thrice(
    server: &DevServer,
    source: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Vec<bool> {
    let mut flags = Vec::new();
    for _ in 0..3 {
        let (status, answer) = post_signed(server, source, SECRET, body, headers).await;
        assert_eq!(status, 200, "{answer}");
        flags.push(answer["duplicate"].as_bool().unwrap());
    }
    flags
}

async fn dedup_follows_each_sources_setting(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    hmac_source(&server, "plain", json!({})).await;
    hmac_source(
        &server,
        "by-body",
        json!({"dedup": {"key": "body", "window": "1h"}}),
    )
    .await;
    hmac_source(
        &server,
        "by-header",
        json!({"dedup": {"key": "header:X-Request-Id"}}),
    )
    .await;
    hmac_source(
        &server,
        "by-json",
        json!({"dedup": {"key": "json:/meta/id"}}),
    )
    .await;
    let sink = Sink::start().await;
    subscribe(&server, &sink, json!([])).await;

    assert_eq!(
        admin.get("/v1/sources/plain").await["dedup"],
        json!({"key": "none"}),
        "a scheme without a delivery id deduplicates nothing by default"
    );
    let body = br#"{"type":"refresh","meta":{"id":"m-1"}}"#;
    // Identical bodies are separate events (a ping, a Dropbox-style change notification)…
    assert_eq!(post_thrice(&server, "plain", body, &[]).await, [false; 3]);
    // …unless the source says the body identifies them.
    assert_eq!(
        post_thrice(&server, "by-body", body, &[]).await,
        [false, true, true]
    );
    assert_eq!(
        post_thrice(&server, "by-header", body, &[("x-request-id", "r-1")]).await,
        [false, true, true]
    );
    // Without the header nothing can be matched: each is kept.
    assert_eq!(
        post_thrice(&server, "by-header", body, &[]).await,
        [false; 3]
    );
    assert_eq!(
        post_thrice(&server, "by-json", body, &[]).await,
        [false, true, true]
    );
    // Sent: 15 requests; events: 3 + 1 + 1 + 3 + 1 = 9, each delivered once.
    sink.wait_for(9, WAIT).await;
    sink.assert_no_more_than(9, Duration::from_millis(1500))
        .await;

    // Provider schemes default to their delivery id.
    admin
        .post(
            "/v1/sources",
            json!({"id": "gh", "verify": {"scheme": "github", "secret": SECRET}}),
        )
        .await;
    assert_eq!(
        admin.get("/v1/sources/gh").await["dedup"],
        json!({"key": "delivery_id"})
    );
    // Settings that cannot work are refused.
    for (dedup, needle) in [
        (json!({"key": "delivery_id"}), "no delivery id"),
        (json!({"key": "body", "window": "0s"}), "window"),
        (json!({"key": "json:id"}), "JSON pointer"),
        (json!({"key": "sha1"}), "unknown dedup key"),
    ] {
        let (status, body) = admin
            .call(
                Method::PATCH,
                "/v1/sources/plain",
                Some(json!({"dedup": dedup})),
            )
            .await;
        assert!(
            (400..500).contains(&status)
                && body["error"]["message"].as_str().unwrap().contains(needle),
            "{dedup}: {status} {body}"
        );
    }
    assert_eq!(
        admin.get("/v1/sources/plain").await["dedup"],
        json!({"key": "none"}),
        "a refused change changes nothing"
    );
}

// ----- 8. Subscription secrets: shown once, on demand, rotated with a grace period -----

fn signatures(received: &hookhub_tests::Received) -> Vec<&str> {
    received.header("webhook-signature").split(' ').collect()
}

async fn subscription_secrets_are_shown_once_and_rotate_with_grace(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let admin = server.admin();
    hmac_source(&server, "src", json!({})).await;
    let sink = Sink::start().await;
    let created = subscribe(&server, &sink, json!(["src"])).await;
    let id = created["id"].as_str().unwrap();
    let first = created["secret"].as_str().unwrap().to_string();
    assert!(first.starts_with("whsec_"));

    for path in [
        "/v1/subscriptions".to_string(),
        format!("/v1/subscriptions/{id}"),
    ] {
        let shown = admin.get(&path).await.to_string();
        assert!(!shown.contains("whsec_"), "{path} shows a secret: {shown}");
    }
    let on_demand = admin.get(&format!("/v1/subscriptions/{id}/secret")).await;
    assert_eq!(on_demand["secret"], first.as_str());

    let rotated = admin
        .post(&format!("/v1/subscriptions/{id}/secret/rotate"), json!({}))
        .await;
    let second = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    let until: chrono::DateTime<chrono::Utc> = rotated["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let grace = until - chrono::Utc::now();
    assert!(grace > chrono::Duration::hours(23) && grace <= chrono::Duration::hours(24));
    assert_eq!(
        admin.get(&format!("/v1/subscriptions/{id}/secret")).await["secret"],
        second.as_str()
    );

    // During the grace period each delivery carries a signature with each secret.
    post_signed(&server, "src", SECRET, br#"{"type":"a"}"#, &[]).await;
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(signatures(&got[0]).len(), 2, "{:?}", signatures(&got[0]));
    assert!(got[0].signature_valid(&second) && got[0].signature_valid(&first));

    // A chosen secret with no grace: only it signs from now on.
    let third = hookhub::signing::generate_secret().expose().to_string();
    let rotated = admin
        .post(
            &format!("/v1/subscriptions/{id}/secret/rotate"),
            json!({"secret": third, "grace": "0s"}),
        )
        .await;
    assert_eq!(rotated["secret"], third.as_str());
    assert!(rotated.get("previous_secret_expires_at").is_none());
    post_signed(&server, "src", SECRET, br#"{"type":"b"}"#, &[]).await;
    let got = sink.wait_for(2, WAIT).await;
    assert_eq!(signatures(&got[1]).len(), 1);
    assert!(got[1].signature_valid(&third) && !got[1].signature_valid(&second));

    // Bad rotations change nothing.
    for (path, body, status) in [
        (
            format!("/v1/subscriptions/{id}/secret/rotate"),
            json!({"secret": "nope"}),
            422,
        ),
        (
            format!("/v1/subscriptions/{id}/secret/rotate"),
            json!({"grace": "30d"}),
            422,
        ),
        (
            format!("/v1/subscriptions/{id}/secret/rotate"),
            json!({"x": 1}),
            400,
        ),
        (
            "/v1/subscriptions/sub_missing/secret/rotate".into(),
            json!({}),
            404,
        ),
    ] {
        let (got, answer) = admin.call(Method::POST, &path, Some(body)).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    assert_eq!(
        admin.get(&format!("/v1/subscriptions/{id}/secret")).await["secret"],
        third.as_str()
    );
}

// ----- 4. A delivery outliving the visibility timeout runs once -----

async fn slow_deliveries_keep_their_lease(kind: BackendKind) {
    let options = DevOptions {
        visibility_timeout: Duration::from_secs(1),
        ..DevOptions::default()
    };
    let (server, _dir) = start_dev(kind, options).await;
    hmac_source(&server, "src", json!({})).await;
    let sink = Sink::start().await;
    sink.set_delay(Duration::from_secs(4));
    subscribe(&server, &sink, json!(["src"])).await;
    let (_, answer) = post_signed(&server, "src", SECRET, br#"{"type":"slow"}"#, &[]).await;
    let event_id = answer["id"].as_str().unwrap();

    server
        .wait_for_attempts(event_id, |log| !log.is_empty())
        .await;
    // Four times the visibility timeout passed while the subscriber hung: still one POST.
    sink.assert_no_more_than(1, Duration::from_secs(2)).await;
    let logged = server.attempts(event_id).await;
    assert_eq!(logged.len(), 1, "attempts logged == POSTs received");
    assert_eq!(logged[0]["state"], "succeeded");
}

// ----- 5. Each pair's retry is scheduled when its own attempt ends -----

async fn a_slow_sibling_does_not_hold_back_a_retry(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    hmac_source(&server, "src", json!({})).await;
    let (slow, failing) = (Sink::start().await, Sink::start().await);
    slow.set_delay(Duration::from_secs(10));
    failing.script(&[500]);
    let slow_sub = subscribe(&server, &slow, json!(["src"])).await;
    subscribe(&server, &failing, json!(["src"])).await;
    let (_, answer) = post_signed(&server, "src", SECRET, br#"{"type":"fan"}"#, &[]).await;
    let event_id = answer["id"].as_str().unwrap();

    // The failing pair's retry (200 ms later) arrives while the slow sibling still hangs.
    failing.wait_for(2, Duration::from_secs(8)).await;
    let log = server.attempts(event_id).await;
    assert!(
        log.iter().all(|a| a["subscription_id"] != slow_sub["id"]),
        "the slow sibling must still be in flight: {log:?}"
    );
    assert_eq!(slow.count(), 1);
}

on_both_backends!(
    placeholder_secrets_are_kept_or_refused,
    sources_without_auth_are_refused,
    dedup_follows_each_sources_setting,
    subscription_secrets_are_shown_once_and_rotate_with_grace,
    slow_deliveries_keep_their_lease,
    a_slow_sibling_does_not_hold_back_a_retry,
);

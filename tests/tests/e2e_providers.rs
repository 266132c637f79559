//! Provider schemes end to end through the dev server: handshakes answered and never stored,
//! signed events typed the provider's way and delivered byte for byte.

use std::time::Duration;

use hmac::{Hmac, Mac};
use hookhub_tests::{temp_dir, DevOptions, DevServer, Sink};
use reqwest::RequestBuilder;
use serde_json::{json, Value};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(20);

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Percent-encodes everything but unreserved characters, as a form encoder does.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    server: DevServer,
    sink: Sink,
}

async fn fixture(source: Value) -> Fixture {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    let admin = server.admin();
    let id = source["id"].as_str().unwrap().to_string();
    admin.post("/v1/sources", source).await;
    let sink = Sink::start().await;
    admin
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": [id]}),
        )
        .await;
    Fixture {
        _dir: dir,
        server,
        sink,
    }
}

impl Fixture {
    fn post(&self, source: &str) -> RequestBuilder {
        hookhub_tests::http_client().post(self.server.ingest_url(source))
    }

    async fn events(&self) -> Vec<Value> {
        self.server.admin().get("/v1/events").await["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits for the delivery and checks it is the exact body, typed as expected.
    async fn assert_delivered(&self, body: &[u8], event_type: &str) {
        let got = self.sink.wait_for(1, WAIT).await;
        assert_eq!(&got[0].body[..], body);
        let events = self.events().await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event_type"], event_type);
    }
}

async fn status_and_json(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bettermode_challenge_is_answered_and_signed_events_are_delivered() {
    let secret = "bettermode-signing-secret";
    let f =
        fixture(json!({"id": "community", "verify": {"scheme": "bettermode", "secret": secret}}))
            .await;
    let signed = |body: &str| {
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let signature = hmac_hex(secret, &[ts.as_bytes(), b":", body.as_bytes()]);
        f.post("community")
            .header("content-type", "application/json")
            .header("x-tribe-request-timestamp", ts)
            .header("x-tribe-signature", signature)
            .body(body.to_string())
    };

    let challenge =
        r#"{"networkId":"net1","context":"NETWORK","type":"TEST","data":{"challenge":"c-123"}}"#;
    let (status, answer) = status_and_json(signed(challenge)).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"type": "TEST", "status": "SUCCEEDED", "data": {"challenge": "c-123"}})
    );
    assert!(f.events().await.is_empty(), "a handshake is never stored");

    let event = r#"{"networkId":"net1","context":"NETWORK","type":"SUBSCRIPTION","id":"wh_1","data":{"id":"evt-77","name":"space.created","object":{"id":"sp1"}}}"#;
    let (status, _) = status_and_json(signed(event)).await;
    assert_eq!(status, 200);
    f.assert_delivered(event.as_bytes(), "space.created").await;

    // Unsigned and stale requests are refused.
    let (status, error) = status_and_json(f.post("community").body(event)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("signature_missing"))
    );
    let stale = (chrono::Utc::now().timestamp_millis() - 600_000).to_string();
    let (status, error) = status_and_json(
        f.post("community")
            .header("x-tribe-request-timestamp", &stale)
            .header(
                "x-tribe-signature",
                hmac_hex(secret, &[stale.as_bytes(), b":", event.as_bytes()]),
            )
            .body(event),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("timestamp_out_of_range"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spika_token_is_checked() {
    let f =
        fixture(json!({"id": "spika", "verify": {"scheme": "spika", "value": "spika-token-1"}}))
            .await;
    let body = r#"{"type":"message.created","message":{"id":42,"body":{"text":"hi"}}}"#;
    let (status, error) = status_and_json(
        f.post("spika")
            .header("verification-signature", "spika-token-2")
            .body(body),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("signature_invalid"))
    );
    let (status, _) = status_and_json(
        f.post("spika")
            .header("verification-signature", "spika-token-1")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(status, 200);
    f.assert_delivered(body.as_bytes(), "message.created").await;
    let event_id = f.events().await[0]["id"].as_str().unwrap().to_string();
    let stored = f
        .server
        .admin()
        .get(&format!("/v1/events/{event_id}"))
        .await;
    assert!(
        stored["headers"].get("verification-signature").is_none(),
        "the token is not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outverse_events_are_typed_from_type_and_action() {
    let f = fixture(json!({"id": "outverse", "verify": {"scheme": "outverse",
        "auth": {"scheme": "token", "header": "X-Outverse-Token", "value": "ov-secret"}}}))
    .await;
    let body = r#"{"type":"post","action":"created","data":{"id":"p1","title":"Hello"}}"#;
    let (status, _) = status_and_json(
        f.post("outverse")
            .header("x-outverse-token", "ov-secret")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(status, 200);
    f.assert_delivered(body.as_bytes(), "post.created").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn featureos_events_are_typed_from_type() {
    let f = fixture(json!({"id": "featureos", "verify": {"scheme": "featureos",
        "auth": {"scheme": "none"}}}))
    .await;
    let body = r#"{"type":"postCompleted","data":{"post":{"id":9,"title":"Dark mode"}}}"#;
    let (status, _) = status_and_json(
        f.post("featureos")
            .header("content-type", "application/json")
            .body(body),
    )
    .await;
    assert_eq!(status, 200);
    f.assert_delivered(body.as_bytes(), "postCompleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_form_encoded_payloads_are_verified_raw_and_typed_from_the_json() {
    let secret = "gh-webhook-secret";
    let f = fixture(json!({"id": "gh", "verify": {"scheme": "github", "secret": secret}})).await;
    let json_payload = r#"{"action":"opened","issue":{"number":1,"title":"Ünïcode & stuff"}}"#;
    let body = format!("payload={}", form_encode(json_payload));
    let (status, _) = status_and_json(
        f.post("gh")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
            .header(
                "x-hub-signature-256",
                format!("sha256={}", hmac_hex(secret, &[body.as_bytes()])),
            )
            .body(body.clone()),
    )
    .await;
    assert_eq!(status, 200);
    f.assert_delivered(body.as_bytes(), "issues.opened").await;
    let received = f.sink.received();
    assert_eq!(
        received[0].header("content-type"),
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_handshakes_meta_and_dropbox() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    let admin = server.admin();
    admin
        .post(
            "/v1/sources",
            json!({"id": "meta", "verify": {"scheme": "meta",
            "secret": "meta-app-secret", "verify_token": "vt-1"}}),
        )
        .await;
    admin
        .post(
            "/v1/sources",
            json!({"id": "dropbox", "verify": {"scheme": "dropbox", "secret": "db-secret"}}),
        )
        .await;
    let http = hookhub_tests::http_client();
    let ok = http
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token=vt-1&hub.challenge=1158201444",
            server.ingest_url("meta")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let refused = http
        .get(format!(
            "{}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
            server.ingest_url("meta")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let dropbox = http
        .get(format!("{}?challenge=abc123", server.ingest_url("dropbox")))
        .send()
        .await
        .unwrap();
    assert_eq!(dropbox.status(), 200);
    assert_eq!(dropbox.headers()["x-content-type-options"], "nosniff");
    assert!(dropbox.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(dropbox.text().await.unwrap(), "abc123");
    assert!(admin.get("/v1/events").await["data"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_url_verification_and_retries_are_deduplicated() {
    let secret = "slack-signing-secret";
    let f = fixture(json!({"id": "slack", "verify": {"scheme": "slack", "secret": secret}})).await;
    let signed = |body: &str, retry: Option<&str>| {
        let ts = chrono::Utc::now().timestamp().to_string();
        let signature = format!(
            "v0={}",
            hmac_hex(secret, &[b"v0:", ts.as_bytes(), b":", body.as_bytes()])
        );
        let mut request = f
            .post("slack")
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature)
            .body(body.to_string());
        if let Some(n) = retry {
            request = request.header("x-slack-retry-num", n);
        }
        request
    };
    let (status, answer) = status_and_json(signed(
        r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#,
        None,
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let event = r#"{"type":"event_callback","event_id":"Ev123","event":{"type":"app_mention","text":"hi"}}"#;
    for retry in [None, Some("1"), Some("2")] {
        let (status, _) = status_and_json(signed(event, retry)).await;
        assert_eq!(status, 200);
    }
    f.assert_delivered(event.as_bytes(), "app_mention").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.sink.count(), 1, "Slack's retries are not delivered again");
}

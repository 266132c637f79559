//! The sample API Gateway events in `events/` through the admin function's service, on moto:
//! each event is converted by `lambda_http` exactly as the Lambda runtime converts it.

use axum::body::Body;
use axum::http::{Response, StatusCode};
use hookhub::ports::Backend;
use hookhub::settings::{AdminKey, Env};
use hookhub_tests::moto::fresh_aws;
use lambda_http::tower::ServiceExt;
use serde_json::{json, Value};

const CREATE_SOURCE: &str = include_str!("../../../events/admin-create-source.json");
const LIST_SOURCES: &str = include_str!("../../../events/admin-list-sources.json");
/// The listing through a Lambda function URL (template `Ingress=FunctionUrl`).
const FUNCTION_URL_LIST_SOURCES: &str =
    include_str!("../../../events/admin-function-url-list-sources.json");

/// The bearer token in the sample events, and its SHA-256 (`printf %s KEY | sha256sum`).
const DEV_KEY: &str = "hh_dev_admin_key";
const DEV_KEY_SHA256: &str = "6792c63977bd0278572719f59aae57a6767e3cba26c6f17fedb247bca40843ae";

async fn backend() -> Backend {
    fresh_aws().await.backend().await.expect("backend")
}

async fn invoke(backend: &Backend, key: &AdminKey, event_json: &str) -> (StatusCode, Value) {
    invoke_app(hookhub_admin::app(backend.clone(), key), event_json).await
}

async fn invoke_app(app: axum::Router, event_json: &str) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(event_json).expect("an API Gateway v2 event");
    let response: Response<Body> = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON answer")
    };
    (status, body)
}

#[tokio::test]
async fn sample_events_create_and_list_a_source() {
    let backend = backend().await;
    let key = AdminKey::from_plain(DEV_KEY);

    let (status, created) = invoke(&backend, &key, CREATE_SOURCE).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["id"], "github");

    let (status, listed) = invoke(&backend, &key, LIST_SOURCES).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed.to_string();
    assert!(listed.contains("\"github\""), "{listed}");
    assert!(
        !listed.contains("my-github-secret"),
        "secrets are redacted: {listed}"
    );

    // The same listing through a function URL (route key `$default`, no path parameters).
    let (status, via_url) = invoke(&backend, &key, FUNCTION_URL_LIST_SOURCES).await;
    assert_eq!(status, StatusCode::OK, "{via_url}");
    assert!(via_url.to_string().contains("\"github\""), "{via_url}");

    // Created again: the id is taken.
    let (status, conflict) = invoke(&backend, &key, CREATE_SOURCE).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
}

#[tokio::test]
async fn key_given_as_sha256_from_the_environment() {
    let backend = backend().await;
    let env = Env::from_lookup(|name: &str| {
        (name == "HOOKHUB_ADMIN_KEY_SHA256").then(|| DEV_KEY_SHA256.to_string())
    });
    let key = env.admin_key().expect("admin key from the environment");
    let (status, listed) = invoke(&backend, &key, LIST_SOURCES).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
}

#[tokio::test]
async fn wrong_or_missing_bearer_is_refused() {
    let backend = backend().await;
    let key = AdminKey::from_plain("some-other-key");
    let (status, answer) = invoke(&backend, &key, LIST_SOURCES).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    let mut event: Value = serde_json::from_str(LIST_SOURCES).unwrap();
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let (status, _) = invoke(&backend, &AdminKey::from_plain(DEV_KEY), &event.to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_function_serves_no_ingest_route() {
    let backend = backend().await;
    let mut event: Value = serde_json::from_str(LIST_SOURCES).unwrap();
    event["rawPath"] = json!("/webhooks/github");
    event["requestContext"]["http"]["path"] = json!("/webhooks/github");
    event["requestContext"]["http"]["method"] = json!("POST");
    let (status, _) = invoke(&backend, &AdminKey::from_plain(DEV_KEY), &event.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn no_key_refuses_to_start() {
    let err = Env::from_lookup(|_: &str| None).admin_key().unwrap_err();
    assert!(err.to_string().contains("HOOKHUB_ADMIN_KEY"), "{err}");
}

/// The SSRF guard of the admin function follows `HOOKHUB_ALLOW_PRIVATE_TARGETS` as the
/// dispatcher does: on unless set to true, refusing subscription URLs naming private addresses.
#[tokio::test]
async fn private_subscription_targets_follow_the_guard_setting() {
    let backend = backend().await;
    let key = AdminKey::from_plain(DEV_KEY);
    let mut event: Value = serde_json::from_str(CREATE_SOURCE).unwrap();
    event["rawPath"] = json!("/v1/subscriptions");
    event["requestContext"]["http"]["path"] = json!("/v1/subscriptions");
    event["pathParameters"]["proxy"] = json!("subscriptions");
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-length");
    event["body"] = json!(json!({"url": "http://169.254.169.254/latest"}).to_string());
    let event = event.to_string();
    for (setting, expected) in [
        (None, StatusCode::UNPROCESSABLE_ENTITY),
        (Some("false"), StatusCode::UNPROCESSABLE_ENTITY),
        (Some("true"), StatusCode::CREATED),
    ] {
        let env = Env::from_lookup(move |name: &str| {
            setting
                .filter(|_| name == "HOOKHUB_ALLOW_PRIVATE_TARGETS")
                .map(str::to_string)
        });
        let allow = env.delivery_options().unwrap().allow_private_targets;
        let app = hookhub_admin::app_with_targets(backend.clone(), &key, allow);
        let (status, answer) = invoke_app(app, &event).await;
        assert_eq!(status, expected, "{setting:?}: {answer}");
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(answer["error"]["code"], "url_not_allowed", "{answer}");
        }
    }
    // The default app (no setting) refuses too.
    let (status, _) = invoke(&backend, &key, &event).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The sample event re-aimed at `method path` with a JSON `body`.
fn api_event(method: &str, path: &str, body: Value) -> String {
    let mut event: Value = serde_json::from_str(CREATE_SOURCE).unwrap();
    event["rawPath"] = json!(path);
    event["routeKey"] = json!(format!("{method} /v1/{{proxy+}}"));
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"]["proxy"] = json!(path.trim_start_matches("/v1/"));
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("content-length");
    event["body"] = json!(body.to_string());
    event.to_string()
}

/// An operator's disable through the admin function stores a `subscription.disabled`
/// operational event of source `hookhub` and enqueues its dispatch, with the function's own
/// backend (DynamoDB + SQS); the built-in source cannot be created.
#[tokio::test]
async fn disabling_a_subscription_emits_an_operational_event() {
    let backend = backend().await;
    let key = AdminKey::from_plain(DEV_KEY);
    let create = api_event(
        "POST",
        "/v1/subscriptions",
        json!({"url": "https://ops.example.com/hook", "sources": ["hookhub"]}),
    );
    let (status, created) = invoke(&backend, &key, &create).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();

    let disable = api_event(
        "PATCH",
        &format!("/v1/subscriptions/{id}"),
        json!({"enabled": false}),
    );
    let (status, answer) = invoke(&backend, &key, &disable).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let stored = hookhub_tests::operational_events(&backend).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (event, body) = &stored[0];
    assert_eq!(event.event_type, "subscription.disabled");
    assert!(event.enqueued);
    assert_eq!(
        (body["subscription_id"].as_str(), body["reason"].as_str()),
        (Some(id), Some("manual"))
    );
    let tasks = backend
        .queue
        .receive(10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        tasks.iter().any(|t| t.body.contains(&event.id)),
        "its dispatch task is on the queue: {tasks:?}"
    );

    let reserved = api_event(
        "POST",
        "/v1/sources",
        json!({"id": "hookhub", "verify": {"scheme": "none"}}),
    );
    let (status, refused) = invoke(&backend, &key, &reserved).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "reserved_source");
}

/// The OpenAPI document through the function, as API Gateway hands it over: no key needed, the
/// same document as generated.
#[tokio::test]
async fn serves_the_openapi_document_without_a_key() {
    let backend = backend().await;
    let mut event: Value =
        serde_json::from_str(&api_event("GET", "/v1/openapi.json", json!({}))).expect("an event");
    event["body"] = Value::Null;
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let (status, document) =
        invoke(&backend, &AdminKey::from_plain(DEV_KEY), &event.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let generated: Value = serde_json::from_str(&hookhub::http::openapi::document_json()).unwrap();
    assert_eq!(document, generated);
    assert!(document["paths"]["/v1/sources"]["post"].is_object());
}

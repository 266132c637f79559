//! The sample API Gateway events in `events/` through the receiver function's service, on moto:
//! each event is converted by `lambda_http` exactly as the Lambda runtime converts it.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use hookhub::admin::{Admin, CreateSource};
use hookhub::aws::aws_sdk_sqs::types::QueueAttributeName;
use hookhub::aws::Aws;
use hookhub::domain::{InlineEvent, Task};
use hookhub::ingest::ReceiverConfig;
use hookhub::ports::{Backend, Confirmed, EventQuery, TaskQueue};
use hookhub_tests::moto::fresh_aws;
use lambda_http::tower::ServiceExt;
use serde_json::{json, Value};

const WEBHOOK: &str = include_str!("../../../events/receiver-webhook.json");
const BAD_SIGNATURE: &str = include_str!("../../../events/receiver-bad-signature.json");
/// The same delivery through a Lambda function URL (template `Ingress=FunctionUrl`): payload
/// v2 too, but route key `$default` and no path parameters.
const FUNCTION_URL: &str = include_str!("../../../events/receiver-function-url.json");

/// What the sample events are signed with (see `docs/local-lambda.md`).
const GITHUB_SECRET: &str = "my-github-secret";

async fn with_github_source() -> (Aws, Backend) {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.expect("backend");
    let source: CreateSource = serde_json::from_value(json!({
        "id": "github",
        "verify": {"scheme": "github", "secret": GITHUB_SECRET},
    }))
    .unwrap();
    Admin::new(backend.clone())
        .create_source(source)
        .await
        .expect("create source");
    (aws, backend)
}

/// Runs one API Gateway event through the receiver function.
async fn invoke(backend: &Backend, event_json: &str) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(event_json).expect("an API Gateway v2 event");
    let app = hookhub_receiver::app(backend.clone(), ReceiverConfig::default());
    let response: Response<Body> = app.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

async fn visible_messages(aws: &Aws) -> u64 {
    let queue = aws.queue().await.unwrap();
    aws.sqs()
        .get_queue_attributes()
        .queue_url(queue.queue_url())
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessages)
                .cloned()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn webhook_sample_is_stored_and_enqueued_once() {
    let (aws, backend) = with_github_source().await;

    let (status, answer) = invoke(&backend, WEBHOOK).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["duplicate"], false);
    let event_id = answer["id"].as_str().unwrap().to_string();

    let event = backend
        .events
        .get_event(&event_id)
        .await
        .unwrap()
        .expect("stored");
    let sample: Value = serde_json::from_str(WEBHOOK).unwrap();
    assert_eq!(event.source_id, "github");
    assert_eq!(event.event_type, "push");
    assert_eq!(event.body, sample["body"].as_str().unwrap().as_bytes());
    assert!(event.enqueued);

    let queue = aws.queue().await.unwrap();
    let messages = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(messages.len(), 1);
    // A 1 KiB webhook travels inline, as stored, sent before it was stored.
    let Task::Dispatch {
        event_id: task_event_id,
        event: Some(inline),
        sent_first: Some(_),
    } = Task::from_json(&messages[0].body).unwrap()
    else {
        panic!("not a sent-first dispatch task: {}", messages[0].body);
    };
    assert_eq!(task_event_id, event_id);
    assert_eq!(inline, InlineEvent::new(&event));

    // The provider retries the same delivery (same X-GitHub-Delivery): same id, nothing new
    // stored; the retry's own task is superseded by the original at the dispatcher's check.
    let (status, again) = invoke(&backend, WEBHOOK).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], event_id.as_str());
    let messages = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(messages.len(), 1);
    let Task::Dispatch {
        event: Some(retry),
        sent_first: Some(sent_first),
        ..
    } = Task::from_json(&messages[0].body).unwrap()
    else {
        panic!("not a sent-first dispatch task: {}", messages[0].body);
    };
    assert_eq!(
        backend
            .events
            .confirm_sent(retry.event(), &sent_first)
            .await
            .unwrap(),
        Confirmed::Superseded {
            original_id: event_id.clone()
        }
    );
    assert!(backend
        .events
        .get_event(&retry.event().id)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn bad_signature_sample_is_refused_and_nothing_is_stored() {
    let (aws, backend) = with_github_source().await;

    let (status, answer) = invoke(&backend, BAD_SIGNATURE).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"]["code"], "signature_invalid");

    let stored = backend
        .events
        .list_events(&EventQuery {
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(stored.is_empty());
    assert_eq!(visible_messages(&aws).await, 0);
}

#[tokio::test]
async fn unknown_source_is_not_found() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let (status, answer) = invoke(&backend, WEBHOOK).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "source_not_found");
}

#[tokio::test]
async fn the_receiver_serves_no_admin_routes() {
    let aws = fresh_aws().await;
    let backend = aws.backend().await.unwrap();
    let mut event: Value = serde_json::from_str(WEBHOOK).unwrap();
    event["rawPath"] = json!("/v1/sources");
    event["requestContext"]["http"]["path"] = json!("/v1/sources");
    event["requestContext"]["http"]["method"] = json!("GET");
    event["headers"]["authorization"] = json!("Bearer anything");
    let (status, _) = invoke(&backend, &event.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn function_url_sample_is_stored_and_enqueued_like_the_http_api_one() {
    let (aws, backend) = with_github_source().await;

    let (status, answer) = invoke(&backend, FUNCTION_URL).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let event_id = answer["id"].as_str().expect("event id").to_string();
    let event = backend
        .events
        .get_event(&event_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (event.source_id.as_str(), event.event_type.as_str()),
        ("github", "push")
    );
    assert!(event.enqueued);
    assert_eq!(visible_messages(&aws).await, 1);

    // The same delivery through API Gateway is recognised as the duplicate it is.
    let (status, again) = invoke(&backend, WEBHOOK).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (again["duplicate"].as_bool(), again["id"].as_str()),
        (Some(true), Some(event_id.as_str()))
    );
}

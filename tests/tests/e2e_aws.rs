//! End to end on the AWS adapters against moto: POST → receiver → DynamoDB + SQS → dispatcher
//! worker → real local sinks, with retries across hopped SQS delays and a dispatcher crash.

use std::sync::Arc;
use std::time::Duration;

use hookhub::aws::{Aws, AwsSettings};
use hookhub::ports::{AttemptLog, Backend};
use hookhub_tests::moto::{fresh_aws, sdk_config};
use hookhub_tests::{wait_until, DevOptions, DevServer, Sink};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A server on the AWS adapters, with SQS delays hopping at most `hop` at a time so a
/// compressed schedule still exercises the long-delay path.
async fn start(settings: AwsSettings, options: DevOptions, hop: Duration) -> DevServer {
    DevServer::start_on(options, async move {
        // Clients are built on the server's runtime so they die with it.
        let aws = Aws::new(&sdk_config().await, settings);
        let store = Arc::new(aws.store());
        let queue = aws.queue().await.expect("queue").with_max_delay(hop);
        let backend = Backend::from_parts(
            store.clone(),
            store.clone(),
            store.clone(),
            store,
            Arc::new(queue),
        );
        (backend, None)
    })
    .await
}

async fn setup_source(server: &DevServer) {
    server
        .admin()
        .post(
            "/v1/sources",
            json!({"id": "shop", "verify": {"scheme": "standard-webhooks",
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}),
        )
        .await;
}

/// Signs as a Standard Webhooks provider would.
async fn post(server: &DevServer, msg_id: &str, body: &str) -> String {
    let ts = chrono::Utc::now().timestamp();
    let key = hookhub::signing::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signature = format!(
        "v1,{}",
        hookhub::signing::sign_with_key(&key, msg_id, ts, body.as_bytes())
    );
    let response = hookhub_tests::http_client()
        .post(server.ingest_url("shop"))
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_delivery_to_two_sinks_with_attempts_in_dynamodb() {
    let aws = fresh_aws().await;
    let server = start(
        aws.settings().clone(),
        DevOptions::default(),
        Duration::from_secs(900),
    )
    .await;
    setup_source(&server).await;
    let (a, b) = (Sink::start().await, Sink::start().await);
    let admin = server.admin();
    let sub_a = admin.post("/v1/subscriptions", json!({"url": a.url})).await;
    let sub_b = admin
        .post(
            "/v1/subscriptions",
            json!({"url": b.url, "event_types": ["order.*"]}),
        )
        .await;

    let body = r#"{"type":"order.paid","amount":4200}"#;
    let event_id = post(&server, "msg_aws_1", body).await;
    assert!(
        aws.is_minted_event_id(&event_id),
        "the receiver mints ids into the table's shards: {event_id}"
    );
    // The provider retries the same message: acknowledged with the same id, not delivered again.
    assert_eq!(post(&server, "msg_aws_1", body).await, event_id);

    for (sink, sub) in [(&a, &sub_a), (&b, &sub_b)] {
        let got = sink.wait_for(1, WAIT).await;
        assert_eq!(&got[0].body[..], body.as_bytes());
        assert_eq!(got[0].header("webhook-id"), event_id);
        assert!(got[0].signature_valid(sub["secret"].as_str().unwrap()));
    }
    // Read the attempt log straight from DynamoDB.
    let store = aws.store();
    let mut attempts = Vec::new();
    for _ in 0..150 {
        attempts = store
            .attempts_for_event(&event_id)
            .await
            .expect("DynamoDB query");
        if attempts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(attempts.len(), 2, "two attempts recorded in DynamoDB");
    assert!(attempts
        .iter()
        .all(|a| a.succeeded() && a.status_code == Some(200)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((a.count(), b.count()), (1, 1), "delivered once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_waits_across_hopped_sqs_delays() {
    let aws = fresh_aws().await;
    let options = DevOptions {
        // 4 s between attempts, carried by the queue in hops of at most 1 s.
        retry_schedule: vec![Duration::from_secs(4)],
        ..DevOptions::default()
    };
    let server = start(aws.settings().clone(), options, Duration::from_secs(1)).await;
    setup_source(&server).await;
    let sink = Sink::start().await;
    sink.script(&[503]);
    server
        .admin()
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;

    let event_id = post(&server, "msg_aws_2", r#"{"type":"order.paid"}"#).await;
    sink.wait_for(1, WAIT).await;
    let first = tokio::time::Instant::now();
    let got = sink.wait_for(2, WAIT).await;
    let waited = first.elapsed();
    assert!(
        waited >= Duration::from_millis(3500),
        "retried after {waited:?}"
    );
    assert!(got.iter().all(|r| r.header("webhook-id") == event_id));
    let log = server
        .admin()
        .get(&format!("/v1/events/{event_id}/attempts"))
        .await;
    let states: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.first(), Some(&"retrying"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_killed_mid_batch_redelivers_with_the_same_webhook_id() {
    let aws = fresh_aws().await;
    let options = DevOptions {
        // Short visibility so SQS hands the cut tasks out again quickly.
        visibility_timeout: Duration::from_secs(3),
        ..DevOptions::default()
    };
    let hop = Duration::from_secs(900);
    let server = start(aws.settings().clone(), options.clone(), hop).await;
    setup_source(&server).await;
    let sink = Sink::start().await;
    sink.set_delay(Duration::from_secs(2));
    server
        .admin()
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;

    let mut acknowledged = Vec::new();
    for n in 0..5 {
        acknowledged.push(
            post(
                &server,
                &format!("msg_batch_{n}"),
                &format!(r#"{{"type":"order.paid","n":{n}}}"#),
            )
            .await,
        );
    }
    sink.wait_for(1, WAIT).await;
    server.crash();
    sink.set_delay(Duration::ZERO);
    let _server = start(aws.settings().clone(), options, hop).await;

    let distinct = || {
        let mut ids: Vec<String> = sink
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    wait_until(WAIT, || distinct().len() == acknowledged.len())
        .await
        .unwrap_or_else(|_| panic!("delivered {} of {}", distinct().len(), acknowledged.len()));
    acknowledged.sort();
    assert_eq!(distinct(), acknowledged);
    println!(
        "sent={} acknowledged={} delivered={} duplicated={}",
        acknowledged.len(),
        acknowledged.len(),
        distinct().len(),
        sink.count() - distinct().len()
    );
}

/// What goes missing during the outage.
#[derive(Clone, Copy)]
enum Outage {
    Queue,
    EventsTable,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_unreachable_at_the_receiver_answers_503_and_the_retry_is_delivered_once() {
    outage_then_retry(Outage::Queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_unreachable_at_the_receiver_answers_503_and_the_retry_is_delivered_once() {
    outage_then_retry(Outage::EventsTable).await;
}

async fn outage_then_retry(outage: Outage) {
    let aws = fresh_aws().await;
    let options = DevOptions {
        // Keep the sweep out: the provider's retry must complete the work.
        sweep_grace: Duration::from_secs(3600),
        ..DevOptions::default()
    };
    let server = start(aws.settings().clone(), options, Duration::from_secs(900)).await;
    setup_source(&server).await;
    let sink = Sink::start().await;
    server
        .admin()
        .post("/v1/subscriptions", json!({"url": sink.url}))
        .await;

    // The task queue or the events table disappears (deleted, or unreachable).
    match outage {
        Outage::Queue => {
            let queue_url = aws.queue().await.unwrap().queue_url().to_string();
            aws.sqs()
                .delete_queue()
                .queue_url(&queue_url)
                .send()
                .await
                .unwrap();
        }
        Outage::EventsTable => {
            let table = aws.settings().events_table.clone();
            aws.dynamodb()
                .delete_table()
                .table_name(table)
                .send()
                .await
                .unwrap();
        }
    }
    let body = r#"{"type":"order.paid","n":"outage"}"#;
    let ts = chrono::Utc::now().timestamp();
    let key = hookhub::signing::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signature = format!(
        "v1,{}",
        hookhub::signing::sign_with_key(&key, "msg_outage", ts, body.as_bytes())
    );
    let send = || {
        hookhub_tests::http_client()
            .post(server.ingest_url("shop"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_outage")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature.clone())
            .body(body)
            .send()
    };
    let response = send().await.unwrap();
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "unavailable");

    // The resource is back; the provider retries.
    aws.ensure_resources().await.unwrap();
    let response = send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ok: Value = response.json().await.unwrap();
    // Queue down: the event was stored and the retry completes it (a duplicate of it).
    // Table down: nothing was stored and the retry stores it.
    assert_eq!(ok["duplicate"], matches!(outage, Outage::Queue));
    let got = sink.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), ok["id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "sent=2 acknowledged=1 delivered={} duplicated={}",
        sink.count(),
        sink.count() - 1
    );
    assert_eq!(sink.count(), 1, "delivered exactly once");
}

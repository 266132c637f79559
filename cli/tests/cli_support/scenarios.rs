//! The CLI runs shared by the SQLite and the AWS (moto) test files.

use std::time::Duration;

use hookhub_tests::Sink;
use serde_json::{json, Value};

use super::{Hub, Running};

/// Generous: a cold dev server on a busy 2-core machine, or moto.
pub const SOON: Duration = Duration::from_secs(30);

/// A source without verification and a subscription to `sink` for it; the subscription.
pub fn source_and_subscription(hub: &Hub, source: &str, sink: &Sink) -> Value {
    hub.ok(&["sources", "create", source, "--scheme", "none"]);
    hub.json(&[
        "subscriptions",
        "create",
        "--endpoint",
        &sink.url,
        "--source",
        source,
    ])
}

/// sources, subscriptions, events, attempts and replay, as an operator would run them.
pub async fn main_verbs(hub: &Hub) {
    let sink = Sink::start().await;
    let sub = source_and_subscription(hub, "shop", &sink);
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    assert!(
        sub["secret"].as_str().unwrap().starts_with("whsec_"),
        "{sub}"
    );

    let table = hub.ok(&["sources", "list"]);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("shop ")), "{table}");
    let subs = hub.ok(&["subscriptions", "list"]);
    assert!(subs.contains(&sub_id) && subs.contains("enabled"), "{subs}");

    let event_id = hub
        .ingest("shop", &json!({"type": "order.created", "n": 1}))
        .await;
    hub.ingest("shop", &json!({"type": "refund.created", "n": 2}))
        .await;
    let received = sink.wait_for(2, SOON).await;
    assert!(received[0].signature_valid(sub["secret"].as_str().unwrap()));

    // events list: filters by source, type (exact and prefix) and since.
    let listed = hub.json(&["events", "list", "--source", "shop", "--type", "order.*"]);
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [event_id.as_str()], "{listed}");
    let recent = hub.json(&["events", "list", "--since", "1h"]);
    assert_eq!(recent["data"].as_array().unwrap().len(), 2, "{recent}");
    let future = hub.json(&["events", "list", "--since", "2099-01-01T00:00:00Z"]);
    assert_eq!(future["data"], json!([]), "{future}");
    let human = hub.ok(&["events", "list", "--type", "refund.created"]);
    assert!(
        human.contains("refund.created") && !human.contains("order.created"),
        "{human}"
    );

    // events show, and the raw body.
    let shown = hub.ok(&["events", "show", &event_id]);
    assert!(
        shown.contains("headers:") && shown.contains("\"n\": 1"),
        "{shown}"
    );
    let body = hub.ok(&["events", "show", &event_id, "--body"]);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"type": "order.created", "n": 1})
    );

    // attempts of the event, then of the subscription.
    let attempts = hub.json(&["attempts", &event_id]);
    assert_eq!(attempts["data"][0]["state"], "succeeded", "{attempts}");
    let table = hub.ok(&["attempts", "--subscription", &sub_id]);
    assert!(
        table.contains("succeeded") && table.contains("200"),
        "{table}"
    );

    // replay: one more delivery.
    let replayed = hub.ok(&["replay", &event_id, "--subscription", &sub_id]);
    assert!(replayed.contains(&sub_id), "{replayed}");
    sink.wait_for(3, SOON).await;

    // disable / enable.
    assert!(hub
        .ok(&["subscriptions", "disable", &sub_id])
        .contains("disabled"));
    assert_eq!(
        hub.json(&["subscriptions", "show", &sub_id])["status"],
        "disabled"
    );
    assert!(hub
        .ok(&["subscriptions", "enable", &sub_id])
        .contains("enabled"));
}

/// `tail` prints new events and their attempts; `listen` forwards them, signed with the secret
/// it printed, to a real local server that checks the signature.
pub async fn tail_and_listen(hub: &Hub) {
    let sink = Sink::start().await;
    source_and_subscription(hub, "live", &sink);
    let handler = Sink::start().await;
    let mut tail = Running::start(hub.command(&["tail", "--source", "live"]));
    let mut listen =
        Running::start(hub.command(&["listen", "--forward-to", &handler.url, "--type", "ping.*"]));
    tail.line(SOON, |l| l.starts_with("following"));
    let secret_line = listen.line(SOON, |l| l.starts_with("signing secret: "));
    let secret = secret_line
        .trim_start_matches("signing secret: ")
        .to_owned();

    // Both print their first line once they know where they start from (the newest event).
    let id = hub.ingest("live", &json!({"type": "ping.sent"})).await;
    let other = hub.ingest("live", &json!({"type": "pong.sent"})).await;

    let line = tail.line(SOON, |l| l.contains(" event ") && l.contains(&id));
    assert!(
        line.contains("live") && line.contains("ping.sent"),
        "{line}"
    );
    tail.line(SOON, |l| l.contains(" event ") && l.contains(&other));
    let attempt = tail.line(SOON, |l| l.contains(" attempt ") && l.contains(&id));
    assert!(
        attempt.contains("succeeded") && attempt.contains("200"),
        "{attempt}"
    );

    let forwarded = listen.line(SOON, |l| l.contains(&id));
    assert!(
        forwarded.contains("-> 200 OK") && forwarded.contains(" ms"),
        "{forwarded}"
    );
    let got = handler.wait_for(1, SOON).await;
    assert_eq!(got[0].header("webhook-id"), id);
    assert!(got[0].signature_valid(&secret), "bad signature");
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        json!({"type": "ping.sent"})
    );
    // The `pong.sent` event is not of the selected type: never forwarded.
    handler.assert_no_more_than(1, Duration::from_secs(2)).await;
}

/// `GET /v1/events?after=…&wait=…`: waits for the next event, returns it as soon as it is
/// there, returns an empty page after `wait` when none comes, refuses bad values.
pub async fn long_poll(hub: &Hub) {
    hub.ok(&["sources", "create", "poll", "--scheme", "none"]);
    let first = hub.ingest("poll", &json!({"type": "a.one"})).await;

    // Nothing newer: an empty page after the wait, the cursor where it was.
    let (status, page) = hub.api(&format!("/v1/events?after={first}&wait=1s")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"], json!([]), "{page}");
    assert_eq!(page["next_cursor"], json!(first), "{page}");

    // A waiting request gets the event that arrives while it waits.
    let waiting = {
        let base = hub.dev.base.clone();
        let first = first.clone();
        tokio::spawn(async move {
            hookhub_tests::http_client()
                .get(format!("{base}/v1/events?after={first}&wait=20s"))
                .bearer_auth(super::KEY)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    hookhub_tests::holds_for(Duration::from_millis(300), || !waiting.is_finished())
        .await
        .expect("answered before any event came");
    let second = hub.ingest("poll", &json!({"type": "b.two"})).await;
    let third = hub.ingest("poll", &json!({"type": "a.three"})).await;
    let page = tokio::time::timeout(SOON, waiting).await.unwrap().unwrap();
    assert_eq!(page["data"][0]["id"], json!(second), "{page}");

    // Ascending, filtered by type: the cursor passes the skipped event.
    // (The server holds the answer until the new events have settled: one wait suffices.)
    let (_, found) = hub
        .api(&format!("/v1/events?after={first}&type=a.*&wait=10s"))
        .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["data"][0]["id"], json!(third), "{found}");
    assert_eq!(found["next_cursor"], json!(third), "{found}");

    // Bad values: 400 with a JSON error, nothing else.
    for (query, code) in [
        (format!("after={first}&wait=26s"), "invalid_wait"),
        (format!("after={first}&wait=soon"), "invalid_wait"),
        ("wait=5s".to_owned(), "invalid_wait"),
        ("after=nope".to_owned(), "invalid_after"),
        ("since=yesterday".to_owned(), "invalid_since"),
        ("type=a*b".to_owned(), "invalid_event_type"),
    ] {
        let (status, answer) = hub.api(&format!("/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{query}: {answer}");
    }
}

//! The web console (`/console`) and the admin routes it needs (`/v1/stats`,
//! `/v1/events/states`), on both backends; and the console itself driven in headless Chromium
//! (`tests/console/drive_console.py`, Playwright on Debian's `chromium`).
//!
//! `HOOKHUB_CONSOLE_SCREENSHOTS=1` makes the SQLite browser run refresh the screenshots in
//! `docs/` (`console-events.png`, `console-event.png`).

use std::path::Path;

use hookhub_tests::{
    on_both_backends, start_dev, BackendKind, DevOptions, DevServer, Sink, ADMIN_KEY,
};
use serde_json::{json, Value};

const SOURCE: &str = "shop";
/// Events before the one the browser opens: one more than a page of the console's list.
const OLDER_EVENTS: usize = 25;

async fn send(server: &DevServer, n: usize) -> String {
    let body = format!(r#"{{"type":"order.created","n":{n}}}"#);
    server.post_event(SOURCE, &body).await
}

/// A server with the open source and one subscription to a sink; returns the subscription id.
async fn setup(kind: BackendKind) -> (DevServer, tempfile::TempDir, Sink, String) {
    let (server, dir) = start_dev(kind, DevOptions::default()).await;
    server.open_source(SOURCE).await;
    let sink = Sink::start().await;
    let sub = server
        .admin()
        .post(
            "/v1/subscriptions",
            json!({"url": sink.url, "label": "orders"}),
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    (server, dir, sink, sub_id)
}

async fn get(server: &DevServer, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = hookhub_tests::http_client().get(format!("{}{path}", server.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn console_is_served_without_the_key_with_strict_headers(kind: BackendKind) {
    let (server, _dir) = start_dev(kind, DevOptions::default()).await;
    let mut total = 0;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let response = get(&server, path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        if path != "/console/" {
            total += response.bytes().await.unwrap().len();
        }
    }
    assert!(total <= 150 * 1024, "console assets total {total} bytes");

    // An unknown file is the API's JSON 404; the API itself still wants the key.
    let response = get(&server, "/console/nope.js", None).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let response = get(&server, "/v1/stats", None).await;
    assert_eq!(response.status(), 401);
    let response = get(&server, "/v1/events/states?ids=evt_x", Some("wrong")).await;
    assert_eq!(response.status(), 401);
}

async fn stats_and_states_count_delivered_and_failing(kind: BackendKind) {
    let (server, _dir, sink, _sub) = setup(kind).await;
    let admin = server.admin();
    let delivered = send(&server, 1).await;
    server
        .wait_for_attempts(&delivered, |a| a.iter().any(|a| a["state"] == "succeeded"))
        .await;
    sink.set_down(true);
    let failing = send(&server, 2).await;
    server.wait_for_attempts(&failing, |a| !a.is_empty()).await;

    let stats = admin.get("/v1/stats?window=1h").await;
    assert_eq!(stats["window_seconds"], 3600);
    assert_eq!(stats["received"], 2, "{stats}");
    assert_eq!(stats["delivered"], 1, "{stats}");
    assert_eq!(stats["failing"], 1, "{stats}");
    assert_eq!(stats["capped"], false);
    // The default window is the last hour.
    assert_eq!(admin.get("/v1/stats").await["received"], 2);

    let states = admin
        .list(&format!(
            "/v1/events/states?ids={delivered},{failing},evt_unknown"
        ))
        .await;
    let by_id: Vec<(&str, &str)> = states
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_id,
        [
            (delivered.as_str(), "delivered"),
            (failing.as_str(), "failing"),
            ("evt_unknown", "pending"),
        ]
    );

    // Bad input: a 4xx with the error's code.
    let too_many = vec!["evt_x"; 101].join(",");
    for (path, want, code) in [
        ("/v1/stats?window=5s".to_owned(), 422, "invalid_window"),
        ("/v1/stats?window=2d".to_owned(), 422, "invalid_window"),
        ("/v1/stats?window=soon".to_owned(), 422, "invalid_window"),
        (
            format!("/v1/events/states?ids={too_many}"),
            422,
            "too_many_ids",
        ),
        ("/v1/events/states".to_owned(), 400, "invalid_query"),
    ] {
        let (status, body) = admin.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
}

/// Log in (a wrong key first), see the delivered event, open it, replay it, see the new
/// attempt; no console errors, no request to another host.
async fn console_in_chromium(kind: BackendKind) {
    let (server, _dir, _sink, sub_id) = setup(kind).await;
    // More than a page of the list (25), the event the browser opens the newest.
    let mut events = Vec::new();
    for n in 0..OLDER_EVENTS {
        events.push(send(&server, 100 + n).await);
    }
    let event = send(&server, 1).await;
    events.push(event.clone());
    for id in &events {
        server
            .wait_for_attempts(id, |a| a.iter().any(|a| a["state"] == "succeeded"))
            .await;
    }

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = workspace.join("tests/console/drive_console.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut command = std::process::Command::new(python);
    command
        .arg(script)
        .env("HOOKHUB_URL", &server.base)
        .env("HOOKHUB_ADMIN_KEY", ADMIN_KEY)
        .env("EVENT_ID", &event)
        .env("SUBSCRIPTION_ID", &sub_id)
        .env("SOURCE_ID", SOURCE)
        .env("EVENT_COUNT", events.len().to_string());
    let refresh = std::env::var("HOOKHUB_CONSOLE_SCREENSHOTS").is_ok_and(|v| v == "1");
    if refresh && kind == BackendKind::Sqlite {
        command.env("SCREENSHOT_DIR", workspace.join("docs"));
    }
    // The browser run is bounded by the script's own per-step timeouts.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run tests/console/drive_console.py (scripts/install-deps.sh installs its needs)");
    assert!(
        output.status.success(),
        "console check failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The replay reached the subscriber: a second attempt, through the API too.
    let attempts = server.wait_for_attempts(&event, |a| a.len() == 2).await;
    assert!(attempts.iter().all(|a| a["state"] == "succeeded"));
}

on_both_backends!(
    console_is_served_without_the_key_with_strict_headers,
    stats_and_states_count_delivered_and_failing,
    console_in_chromium,
);

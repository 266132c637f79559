//! `hookhub-bench cost`: the measured cost model. For each row (body size, subscribers, config
//! cache) a `hookhub dev --backend aws` talks to moto through a recording proxy
//! (`hookhub_tests::recorder`); after a warm-up, N signed webhooks are sent and delivered to a
//! local sink answering 200, and every DynamoDB and SQS call they caused is priced
//! (`hookhub_tests::capacity`, `hookhub_tests::cost_model`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hookhub_tests::cost_model::{self, per_webhook, usd_per_million};
use hookhub_tests::recorder::{price, Recorder};
use hookhub_tests::Sink;
use serde_json::{json, Value};

use crate::ingest::ADMIN_KEY;
use crate::load::{self, github_webhook};
use crate::procs::Server;
use crate::{f2, table, Common};

/// Warm durations (ms, p50) used when `cost` runs without `coldstart`: the last release
/// measurement in bench/README.md (x86_64, against moto; the median of three runs).
pub const RECEIVER_WARM_MS: f64 = 12.69;
pub const DISPATCHER_WARM_MS: f64 = 13.90;

struct Row {
    body_bytes: usize,
    subscribers: usize,
    cache_seconds: u32,
}

/// Runs every row and returns the summary (`bench/cost.json`'s shape).
pub async fn run(common: &Common, receiver_ms: f64, dispatcher_ms: f64) -> anyhow::Result<Value> {
    let webhooks = if common.smoke { 5 } else { 40 };
    let rows = [
        (1024, 1, 0),
        (1024, 1, 5),
        (1024, 10, 5),
        (64 * 1024, 1, 5),
        (64 * 1024, 10, 5),
    ];
    let moto = hookhub_tests::moto::MotoServer::start()?;
    let mut results = Vec::new();
    for (i, (body_bytes, subscribers, cache_seconds)) in rows.into_iter().enumerate() {
        let row = Row {
            body_bytes,
            subscribers,
            cache_seconds,
        };
        let prefix = format!("cost{i}-");
        let measured = measure_row(common, moto.endpoint(), &prefix, &row, webhooks)
            .await
            .with_context(|| format!("cost row {body_bytes} B × {subscribers}"))?;
        let usd = usd_per_million(&measured, receiver_ms, dispatcher_ms);
        results.push(json!({
            "body_bytes": body_bytes,
            "subscribers": subscribers,
            "config_cache_seconds": cache_seconds,
            "per_webhook": measured,
            "usd_per_million": usd,
        }));
    }
    let summary = json!({
        "webhooks_per_row": webhooks,
        "receiver_ms": receiver_ms,
        "dispatcher_ms": dispatcher_ms,
        "rows": results,
    });
    print_tables(&summary);
    Ok(summary)
}

async fn measure_row(
    common: &Common,
    moto: &str,
    prefix: &str,
    row: &Row,
    webhooks: usize,
) -> anyhow::Result<Value> {
    let recorder = Recorder::start(moto).await?;
    let dir = tempfile::tempdir()?;
    let mut command = Command::new(common.bin("hookhub")?);
    command
        .args(["dev", "--listen", "127.0.0.1:0", "--admin-key", ADMIN_KEY])
        .args(["--backend", "aws"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("HOOKHUB_BACKEND")
        .env("AWS_ENDPOINT_URL", recorder.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("HOOKHUB_TABLE_PREFIX", prefix)
        .env("HOOKHUB_QUEUE_NAME", format!("{prefix}tasks"))
        .env(
            "HOOKHUB_CONFIG_CACHE_SECONDS",
            row.cache_seconds.to_string(),
        );
    let server = Server::start(command, &dir.path().join("server.log"))?;
    let admin = |path: &'static str, body: Value| {
        let base = server.base();
        async move {
            let response = crate::http_client()
                .post(format!("{base}{path}"))
                .bearer_auth(ADMIN_KEY)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "POST {path}: {}",
                response.status()
            );
            anyhow::Ok(())
        }
    };
    admin(
        "/v1/sources",
        json!({"id": "bench", "verify": {"scheme": "github", "secret": load::SOURCE_SECRET}}),
    )
    .await?;
    let sink = Sink::start().await;
    for _ in 0..row.subscribers {
        admin(
            "/v1/subscriptions",
            json!({"url": sink.url, "sources": ["bench"]}),
        )
        .await?;
    }
    // Warm-up: caches filled, connections open; not counted.
    let warm = 3;
    send(&server, "warm", warm, row.body_bytes).await?;
    let delivered = |n: usize| n * row.subscribers;
    wait_for_attempts(&recorder, prefix, &sink, delivered(warm)).await?;
    settle(&recorder).await;
    let mark = recorder.mark();
    send(&server, "measured", webhooks, row.body_bytes).await?;
    wait_for_attempts(&recorder, prefix, &sink, delivered(warm + webhooks)).await?;
    // The health update follows each attempt's record: wait until the per-webhook calls stop.
    settle(&recorder).await;
    let priced = price(&recorder.calls(), mark);
    drop(server);
    Ok(per_webhook(&priced, prefix, webhooks))
}

async fn send(server: &Server, run: &str, n: usize, body: usize) -> anyhow::Result<()> {
    let requests: Vec<_> = (0..n)
        .map(|i| github_webhook("bench", run, i, body))
        .collect();
    let result = load::run(server.addr, Arc::new(requests), 2, Duration::from_secs(120)).await?;
    anyhow::ensure!(result.ok == n, "{} of {n} webhooks accepted", result.ok);
    Ok(())
}

/// Until no call other than queue polling was made for a second (at most 30 s).
async fn settle(recorder: &Recorder) {
    let busy = || {
        recorder
            .calls()
            .iter()
            .filter(|c| !cost_model::is_polling(c))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = busy();
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = busy();
        if now == last {
            return;
        }
        last = now;
    }
}

/// Until the sink got `n` deliveries and `n` attempts were written.
async fn wait_for_attempts(
    recorder: &Recorder,
    prefix: &str,
    sink: &Sink,
    n: usize,
) -> anyhow::Result<()> {
    let attempts_table = format!("{prefix}attempts");
    let written = || {
        recorder
            .calls()
            .iter()
            .filter(|c| c.ok && c.table() == attempts_table)
            .map(|c| match c.operation() {
                "PutItem" => 1,
                "BatchWriteItem" => c.request["RequestItems"][&attempts_table]
                    .as_array()
                    .map_or(0, Vec::len),
                _ => 0,
            })
            .sum::<usize>()
    };
    hookhub_tests::wait_until(Duration::from_secs(120), || {
        sink.count() >= n && written() >= n
    })
    .await
    .map_err(|()| {
        anyhow::anyhow!(
            "{} of {n} deliveries, {} attempts written",
            sink.count(),
            written()
        )
    })
}

fn print_tables(summary: &Value) {
    let rows: Vec<Vec<String>> = summary["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let usd = &r["usd_per_million"];
            let n = |v: &Value| v.as_f64().unwrap_or(0.0);
            vec![
                format!("{} KiB", r["body_bytes"].as_u64().unwrap_or(0) / 1024),
                r["subscribers"].to_string(),
                format!("{} s", r["config_cache_seconds"]),
                format!("{:.2}", n(&r["per_webhook"]["wru"])),
                format!("{:.2}", n(&r["per_webhook"]["rru"])),
                format!("{:.2}", n(&usd["sqs_requests"])),
                f2(n(&usd["lambda"])),
                f2(n(&usd["sqs"])),
                f2(n(&usd["dynamodb"])),
                f2(n(&usd["total"])),
            ]
        })
        .collect();
    table(
        "measured cost per million webhooks (USD, us-east-1, no API Gateway)",
        &[
            "body", "subs", "cache", "WRU", "RRU", "SQS req", "Lambda", "SQS", "DynamoDB", "total",
        ],
        &rows,
    );
    for r in summary["rows"].as_array().into_iter().flatten() {
        let ops: Vec<Vec<String>> = r["per_webhook"]["ops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|op| {
                ["op", "calls", "wru", "rru", "sqs"]
                    .iter()
                    .map(|k| match &op[*k] {
                        Value::String(s) => s.clone(),
                        v => format!("{:.2}", v.as_f64().unwrap_or(0.0)),
                    })
                    .collect()
            })
            .collect();
        table(
            &format!(
                "per webhook: {} KiB, {} subscriber(s), cache {} s",
                r["body_bytes"].as_u64().unwrap_or(0) / 1024,
                r["subscribers"],
                r["config_cache_seconds"]
            ),
            &["call", "calls", "WRU", "RRU", "SQS"],
            &ops,
        );
    }
}

/// Writes `bench/cost.json` and the generated sections of README.md and bench/README.md
/// (from the repository root `root`).
pub fn write_outputs(root: &Path, summary: &Value) -> anyhow::Result<()> {
    std::fs::write(
        root.join("bench/cost.json"),
        serde_json::to_string_pretty(summary)? + "\n",
    )?;
    let body = cost_model::markdown(summary);
    for readme in ["README.md", "bench/README.md"] {
        let path = root.join(readme);
        let text = std::fs::read_to_string(&path)?;
        let updated = cost_model::with_section(&text, &body)
            .with_context(|| format!("{readme} has no cost-model markers"))?;
        std::fs::write(&path, updated)?;
    }
    Ok(())
}

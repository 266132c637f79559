//! `coldstart`'s cost line: the measured cost model's calls per webhook (`bench/cost.json`,
//! written by `hookhub-bench cost`: 1 KiB body, one subscriber, config cache 5 s) priced with
//! this run's warm durations and log bytes. Nothing here is counted by hand: the units come from
//! the recorded calls, the prices from `hookhub_tests::cost_model`.

use anyhow::Context;
use hookhub_tests::cost_model::{usd_per_million, HTTP_API_PER_M, MEMORY_MB};
use serde_json::{json, Value};

use crate::{f2, table};

/// CloudWatch Logs ingestion (standard class), per GB: the functions' log and EMF lines.
const LOGS_PER_GB: f64 = 0.50;

/// The committed measured model; `tests/tests/cost_model.rs` keeps the READMEs equal to it.
const MEASURED: &str = include_str!("../cost.json");

/// The measured row priced here: 1 KiB, one subscriber, config cache 5 s (the template default).
fn measured_row(model: &Value) -> anyhow::Result<&Value> {
    model["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            r["body_bytes"] == 1024 && r["subscribers"] == 1 && r["config_cache_seconds"] == 5
        })
        .context("bench/cost.json has no 1 KiB, 1 subscriber, 5 s row")
}

/// `coldstart` is the summary of the cold start run (warm durations per function).
pub fn report(coldstart: &Value) -> anyhow::Result<Value> {
    let model: Value = serde_json::from_str(MEASURED).context("bench/cost.json")?;
    let units = &measured_row(&model)?["per_webhook"];
    let warm = |f: &str| coldstart[f]["warm_ms_p50"].as_f64().unwrap_or(0.0);
    let (receiver_ms, dispatcher_ms) = (warm("receiver"), warm("dispatcher"));
    let usd = usd_per_million(units, receiver_ms, dispatcher_ms);
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    // Measured bytes per invocation; one receiver and one dispatcher task per webhook.
    let log_bytes = |f: &str| n(&coldstart[f]["log_bytes_per_invocation"]);
    let webhook_log_bytes = log_bytes("receiver") + log_bytes("dispatcher");
    let logs = webhook_log_bytes * 1e6 / 1e9 * LOGS_PER_GB;
    let total = n(&usd["total"]) + logs;
    let rows = vec![
        vec![
            format!("Lambda (arm64, {MEMORY_MB} MB)"),
            format!(
                "receiver {receiver_ms:.1} ms + dispatcher {dispatcher_ms:.1} ms per task (measured warm p50), tasks batched by 10"
            ),
            f2(n(&usd["lambda"])),
        ],
        vec![
            "SQS".into(),
            format!("{} requests (measured)", n(&usd["sqs_requests"])),
            f2(n(&usd["sqs"])),
        ],
        vec![
            "DynamoDB on-demand".into(),
            format!(
                "{} WRU + {} RRU (measured)",
                n(&units["wru"]),
                n(&units["rru"])
            ),
            f2(n(&usd["dynamodb"])),
        ],
        vec![
            "CloudWatch Logs ingestion".into(),
            format!(
                "{webhook_log_bytes:.0} bytes of log and EMF lines (receiver {:.0} + dispatcher {:.0}, measured)",
                log_bytes("receiver"),
                log_bytes("dispatcher")
            ),
            f2(logs),
        ],
        vec![
            "total (Lambda + SQS + DynamoDB + Logs)".into(),
            String::new(),
            f2(total),
        ],
        vec![
            "API Gateway HTTP API (not in total)".into(),
            "1 request".into(),
            f2(HTTP_API_PER_M),
        ],
    ];
    table(
        "cost per million webhooks (1 KiB, one subscriber, config cache 5 s), USD, us-east-1 list prices; calls from bench/cost.json (`hookhub-bench cost`)",
        &["item", "per webhook", "USD / 1M"],
        &rows,
    );
    Ok(json!({
        "usd_per_million_webhooks": total,
        "lambda_usd": usd["lambda"],
        "sqs_usd": usd["sqs"],
        "dynamodb_usd": usd["dynamodb"],
        "cloudwatch_logs_usd": logs,
        "log_bytes_per_webhook": webhook_log_bytes,
        "api_gateway_http_api_usd_not_in_total": HTTP_API_PER_M,
        "memory_mb": MEMORY_MB,
        "receiver_warm_ms": receiver_ms,
        "dispatcher_warm_ms": dispatcher_ms,
        "units_per_webhook": units,
        "units_from": "bench/cost.json (hookhub-bench cost)",
        "note": "warm durations measured against moto on loopback; on AWS each DynamoDB or SQS call adds a few ms of network time",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_model_has_the_row_priced() {
        let model: Value = serde_json::from_str(MEASURED).unwrap();
        let row = measured_row(&model).unwrap();
        assert!(row["per_webhook"]["wru"].as_f64().unwrap() > 0.0);
    }
}

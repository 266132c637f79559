//! Cost per million webhooks at AWS list prices, from the measured warm durations and the
//! requests and capacity units each webhook costs on the code paths (receiver: `Ingestor::handle`
//! on DynamoDB + SQS; dispatcher: `Dispatcher::process` of one dispatch task).

use serde_json::{json, Value};

use crate::{f2, table};

/// us-east-1 list prices (USD), as published by AWS in 2025.
const LAMBDA_ARM_GB_S: f64 = 0.000_013_333_4;
const LAMBDA_PER_M_REQUESTS: f64 = 0.20;
const SQS_PER_M_REQUESTS: f64 = 0.40;
const DYNAMO_PER_M_WRU: f64 = 0.625;
const DYNAMO_PER_M_RRU: f64 = 0.125;
const HTTP_API_PER_M: f64 = 1.00;
/// CloudWatch Logs ingestion (standard class), per GB: the functions' log and EMF lines.
const LOGS_PER_GB: f64 = 0.50;
/// The memory setting costed (Lambda's smallest; every function's peak RSS fits in it).
const MEMORY_MB: f64 = 128.0;

/// Requests and capacity units per webhook, read off the code paths (1 KiB body, one
/// subscription, strongly consistent reads, items rounded up to 1 KB per WRU / 4 KB per RRU).
fn units() -> Value {
    json!({
        "receiver": {
            "dynamodb_rru": 1,
            "dynamodb_wru": 12,
            "sqs_requests": 1,
            "detail": "GetItem source (consistent, 1 RRU); TransactWriteItems of the event (~2 KB: 2x2 WRU) and its dedup marker (2x1 WRU) plus the event's 3 keys-only index entries (by-source, by-time, unenqueued: 3 WRU); SendMessage (1 SQS request); UpdateItem mark_enqueued (2 WRU, and 1 WRU to leave the unenqueued index)"
        },
        "dispatcher_per_subscription": {
            "dynamodb_rru": 3,
            "dynamodb_wru": 2,
            "sqs_requests": 2,
            "detail": "GetItem event (consistent, 1 RRU); Scan subscriptions (small table, 1 RRU); Query attempts of the event (1 RRU); PutItem attempt (1 WRU) and its by-subscription index entry (1 WRU); the event source mapping's ReceiveMessage and DeleteMessage (counted as 1 each: batches of 10 make it 0.2)"
        }
    })
}

/// `coldstart` is the summary of the cold start run (warm durations per function).
pub fn report(coldstart: &Value) -> Value {
    let warm = |f: &str| coldstart[f]["warm_ms_p50"].as_f64().unwrap_or(0.0);
    let units = units();
    let gb = MEMORY_MB / 1024.0;
    let lambda = |ms: f64| {
        // Lambda bills whole milliseconds.
        let billed = ms.ceil().max(1.0);
        billed / 1000.0 * gb * LAMBDA_ARM_GB_S * 1e6 + LAMBDA_PER_M_REQUESTS
    };
    let receiver_ms = warm("receiver");
    let dispatcher_ms = warm("dispatcher");
    let r = &units["receiver"];
    let d = &units["dispatcher_per_subscription"];
    let n = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let lambda_cost = lambda(receiver_ms) + lambda(dispatcher_ms);
    let sqs_cost = (n(r, "sqs_requests") + n(d, "sqs_requests")) * SQS_PER_M_REQUESTS;
    let dynamo_cost = (n(r, "dynamodb_wru") + n(d, "dynamodb_wru")) * DYNAMO_PER_M_WRU
        + (n(r, "dynamodb_rru") + n(d, "dynamodb_rru")) * DYNAMO_PER_M_RRU;
    // Measured bytes per invocation (coldstart); one receiver and one dispatcher call per webhook.
    let log_bytes = |f: &str| {
        coldstart[f]["log_bytes_per_invocation"]
            .as_f64()
            .unwrap_or(0.0)
    };
    let webhook_log_bytes = log_bytes("receiver") + log_bytes("dispatcher");
    let logs_cost = webhook_log_bytes * 1e6 / 1e9 * LOGS_PER_GB;
    let total = lambda_cost + sqs_cost + dynamo_cost + logs_cost;
    let rows = vec![
        vec![
            "Lambda (arm64, 128 MB)".into(),
            format!(
                "receiver {receiver_ms:.1} ms + dispatcher {dispatcher_ms:.1} ms (measured warm p50), 2 requests"
            ),
            f2(lambda_cost),
        ],
        vec![
            "SQS".into(),
            format!("{} requests", n(r, "sqs_requests") + n(d, "sqs_requests")),
            f2(sqs_cost),
        ],
        vec![
            "DynamoDB on-demand".into(),
            format!(
                "{} WRU + {} RRU",
                n(r, "dynamodb_wru") + n(d, "dynamodb_wru"),
                n(r, "dynamodb_rru") + n(d, "dynamodb_rru")
            ),
            f2(dynamo_cost),
        ],
        vec![
            "CloudWatch Logs ingestion".into(),
            format!(
                "{webhook_log_bytes:.0} bytes of log and EMF lines (receiver {:.0} + dispatcher {:.0}, measured)",
                log_bytes("receiver"),
                log_bytes("dispatcher")
            ),
            f2(logs_cost),
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
        "cost per million webhooks (1 KiB, one subscription), USD, us-east-1 list prices",
        &["item", "per webhook", "USD / 1M"],
        &rows,
    );
    json!({
        "usd_per_million_webhooks": total,
        "lambda_usd": lambda_cost,
        "sqs_usd": sqs_cost,
        "dynamodb_usd": dynamo_cost,
        "cloudwatch_logs_usd": logs_cost,
        "log_bytes_per_webhook": webhook_log_bytes,
        "api_gateway_http_api_usd_not_in_total": HTTP_API_PER_M,
        "memory_mb": MEMORY_MB,
        "receiver_warm_ms": receiver_ms,
        "dispatcher_warm_ms": dispatcher_ms,
        "note": "warm durations measured against moto on loopback; on AWS each of the receiver's 4 and the dispatcher's 4 calls adds a few ms of network time",
        "prices": {
            "lambda_arm64_usd_per_gb_s": LAMBDA_ARM_GB_S,
            "lambda_usd_per_million_requests": LAMBDA_PER_M_REQUESTS,
            "sqs_usd_per_million_requests": SQS_PER_M_REQUESTS,
            "dynamodb_on_demand_usd_per_million_wru": DYNAMO_PER_M_WRU,
            "dynamodb_on_demand_usd_per_million_rru": DYNAMO_PER_M_RRU,
            "http_api_usd_per_million_requests": HTTP_API_PER_M,
            "cloudwatch_logs_ingestion_usd_per_gb": LOGS_PER_GB
        },
        "units_per_webhook": units,
    })
}

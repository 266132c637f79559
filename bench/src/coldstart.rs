//! Cold start of each Lambda binary under a minimal local Lambda Runtime API stand-in, on moto.
//!
//! The stand-in serves `GET /2018-06-01/runtime/invocation/next` (one prepared event per call,
//! then it holds the call open), and records `POST …/{id}/response`, `…/{id}/error` and
//! `/init/error`. Each function process is started with the variables Lambda sets
//! (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`…) and Hookhub's own, pointing at moto
//! where its tables, queues, a source, a subscription and events were created first.
//!
//! Measured per process: init (start → first `next`), first invocation answered (start →
//! first `response`), warm invocations (`next` → `response`), CPU time, peak RSS (VmHWM, read
//! before the process is stopped), and the binary's size.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use hookhub::aws::{Aws, AwsSettings};
use hookhub::domain::{Event, Source, Subscription, Task};
use hookhub::verify::VerifyConfig;
use serde_json::{json, Value};

use crate::load::{github_webhook, ms, percentile};
use crate::procs::{cpu_time, peak_rss_kib};
use crate::{f1, f2, table, Common};

const ADMIN_KEY: &str = "hh_bench_admin_key";

#[derive(Default)]
struct Invocations {
    events: Vec<Value>,
    next: usize,
    started: Vec<Instant>,
    answered: BTreeMap<usize, (Instant, Value)>,
    errors: Vec<String>,
}

type Shared = Arc<Mutex<Invocations>>;

async fn next(State(s): State<Shared>) -> Response {
    let work = {
        let mut s = s.lock().unwrap();
        (s.next < s.events.len()).then(|| {
            let i = s.next;
            s.next += 1;
            s.started.push(Instant::now());
            (i, s.events[i].clone())
        })
    };
    let Some((i, event)) = work else {
        // No more work: hold the call, as Lambda does between invocations.
        std::future::pending::<()>().await;
        unreachable!();
    };
    let mut headers = HeaderMap::new();
    let deadline = Utc::now().timestamp_millis() + 30_000;
    let h = |v: String| HeaderValue::from_str(&v).expect("header value");
    headers.insert("lambda-runtime-aws-request-id", h(format!("req-{i}")));
    headers.insert("lambda-runtime-deadline-ms", h(deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        h("arn:aws:lambda:us-east-1:123456789012:function:bench".into()),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        h(format!("Root=1-00000000-{i:024x};Sampled=0")),
    );
    (StatusCode::OK, headers, axum::Json(event)).into_response()
}

fn request_index(id: &str) -> usize {
    id.trim_start_matches("req-").parse().unwrap_or(usize::MAX)
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    s.lock()
        .unwrap()
        .answered
        .insert(request_index(&id), (Instant::now(), value));
    StatusCode::ACCEPTED
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let mut s = s.lock().unwrap();
    s.errors.push(format!("{id}: {body}"));
    let i = request_index(&id);
    s.answered
        .insert(i, (Instant::now(), json!({"error": body})));
    StatusCode::ACCEPTED
}

async fn init_error(State(s): State<Shared>, body: String) -> StatusCode {
    s.lock().unwrap().errors.push(format!("init: {body}"));
    StatusCode::ACCEPTED
}

/// Starts a stand-in serving `events` in order; returns its `host:port`.
async fn runtime_api(events: Vec<Value>) -> anyhow::Result<(String, Shared)> {
    let shared: Shared = Arc::new(Mutex::new(Invocations {
        events,
        ..Invocations::default()
    }));
    let app = axum::Router::new()
        .route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(next),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            axum::routing::post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            axum::routing::post(error),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            axum::routing::post(init_error),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, shared))
}

/// An API Gateway HTTP API (payload v2) event.
fn http_event(method: &str, path: &str, headers: &[(&str, String)], body: &str) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "hookhub-bench"},
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

fn sqs_event(tasks: &[Task]) -> Value {
    let records: Vec<Value> = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            json!({
                "messageId": format!("m-{i}"),
                "receiptHandle": format!("r-{i}"),
                "body": task.to_json(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1767225600000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:cold-tasks",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// One process: spawn, serve its events, measure, stop.
struct Run {
    init: Duration,
    first: Duration,
    first_handler: Duration,
    warm: Vec<Duration>,
    warm_cpu_per_invocation: Option<Duration>,
    init_cpu: Option<Duration>,
    peak_rss_kib: Option<u64>,
    /// Bytes the process wrote to stdout and stderr (its CloudWatch Logs ingestion on Lambda:
    /// log lines and EMF metric lines), over all its invocations.
    output_bytes: u64,
    ok: usize,
    errors: Vec<String>,
}

async fn run_process(
    binary: &std::path::Path,
    env: &[(String, String)],
    events: Vec<Value>,
    log: &std::path::Path,
    is_ok: fn(&Value) -> bool,
) -> anyhow::Result<Run> {
    let n = events.len();
    let (api, shared) = runtime_api(events).await?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out"))?)
        .stderr(std::fs::File::create(log)?);
    let spawned = Instant::now();
    let mut child = command.spawn()?;
    let pid = child.id();
    let deadline = spawned + Duration::from_secs(60);
    let mut init_cpu = None;
    let mut cpu_after_first = None;
    loop {
        let (answered, errors) = {
            let s = shared.lock().unwrap();
            (s.answered.len(), s.errors.len())
        };
        if answered >= 1 && init_cpu.is_none() {
            init_cpu = cpu_time(pid);
            cpu_after_first = init_cpu;
        }
        if answered >= n || Instant::now() > deadline || child.try_wait()?.is_some() {
            break;
        }
        if errors > 0 && answered == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let cpu_end = cpu_time(pid);
    let peak = peak_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let s = shared.lock().unwrap();
    let first_answer = s.answered.get(&0).map(|(t, _)| *t);
    let Some(first_answer) = first_answer else {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        anyhow::bail!(
            "{} answered nothing (errors: {:?}); log:\n{}",
            binary.display(),
            s.errors,
            crate::procs::last_lines(&tail, 20)
        );
    };
    let warm: Vec<Duration> = (1..n)
        .filter_map(|i| Some(s.answered.get(&i)?.0 - *s.started.get(i)?))
        .collect();
    let ok = s.answered.values().filter(|(_, v)| is_ok(v)).count();
    Ok(Run {
        init: s.started[0] - spawned,
        first: first_answer - spawned,
        first_handler: first_answer - s.started[0],
        warm_cpu_per_invocation: cpu_end
            .zip(cpu_after_first)
            .filter(|_| n > 1)
            .map(|(end, first)| end.saturating_sub(first) / (n as u32 - 1)),
        warm,
        init_cpu,
        peak_rss_kib: peak,
        output_bytes: [log.to_path_buf(), log.with_extension("out")]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum(),
        ok,
        errors: s.errors.clone(),
    })
}

fn http_ok(v: &Value) -> bool {
    v.get("statusCode")
        .and_then(Value::as_u64)
        .is_some_and(|s| (200..300).contains(&s))
}

fn batch_ok(v: &Value) -> bool {
    v.get("batchItemFailures")
        .and_then(Value::as_array)
        .is_some_and(|f| f.is_empty())
}

pub async fn run(common: &Common) -> anyhow::Result<Value> {
    let (runs, warm) = if common.smoke { (1, 3) } else { (5, 50) };
    let moto = hookhub_tests::moto::MotoServer::start()?;
    let sdk = hookhub_tests::moto::sdk_config_for(moto.endpoint()).await;
    let aws = Aws::new(&sdk, AwsSettings::with_prefix("cold-"));
    aws.ensure_resources().await?;
    let backend = aws.backend().await?;
    let queue = aws.queue().await?;
    let now = Utc::now();
    backend
        .sources
        .create_source(&Source {
            id: "bench".into(),
            verify: VerifyConfig::Github(hookhub::verify::GithubConfig {
                secret: crate::load::SOURCE_SECRET.into(),
            }),
            dedup_config: None,
            created_at: now,
        })
        .await?;
    // One subscriber for the dispatcher to deliver to.
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_url = format!("http://{}/hook", sink.local_addr()?);
    tokio::spawn(async move {
        axum::serve(sink, axum::Router::new().fallback(|| async { "ok" })).await
    });
    backend
        .subscriptions
        .create_subscription(&Subscription {
            label: Some("bench".into()),
            ..Subscription::new(
                hookhub::domain::new_id("sub"),
                sink_url,
                hookhub::signing::generate_secret(),
                now,
            )
        })
        .await?;

    let common_env = |name: &str| -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("HOOKHUB_TABLE_PREFIX", "cold-"),
            ("HOOKHUB_QUEUE_URL", queue.queue_url()),
            ("HOOKHUB_DLQ_URL", queue.dead_letter_queue_url()),
            ("HOOKHUB_ALLOW_PRIVATE_TARGETS", "true"),
            ("HOOKHUB_ADMIN_KEY", ADMIN_KEY),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };

    let logs = tempfile::tempdir()?;
    let mut rows = Vec::new();
    let mut out = serde_json::Map::new();
    for function in ["receiver", "dispatcher", "admin"] {
        let binary = common.bin(function)?;
        let size = std::fs::metadata(&binary)?.len();
        let mut results = Vec::new();
        for r in 0..runs {
            let events: Vec<Value> = match function {
                "receiver" => (0..=warm)
                    .map(|i| {
                        let p = github_webhook("bench", &format!("cold-{r}"), i, 1024);
                        let body = String::from_utf8(p.body.to_vec()).expect("JSON body");
                        let mut headers = p.headers.clone();
                        headers.push(("content-length", body.len().to_string()));
                        http_event("POST", &p.path, &headers, &body)
                    })
                    .collect(),
                "dispatcher" => {
                    let mut events = Vec::new();
                    for i in 0..=warm {
                        let event = Event {
                            id: hookhub::domain::new_id("evt"),
                            source_id: "bench".into(),
                            event_type: "push".into(),
                            received_at: Utc::now(),
                            content_type: Some("application/json".into()),
                            dedup_key: format!("id:cold-dispatch-{r}-{i}"),
                            headers: Default::default(),
                            body: github_webhook("bench", "d", i, 1024).body,
                            enqueued: true,
                        };
                        backend
                            .events
                            .insert_event(&event, Duration::from_secs(3600))
                            .await?;
                        events.push(sqs_event(&[hookhub::intake::dispatch_task(&event)]));
                    }
                    events
                }
                _ => (0..=warm)
                    .map(|_| {
                        http_event(
                            "GET",
                            "/v1/sources",
                            &[("authorization", format!("Bearer {ADMIN_KEY}"))],
                            "",
                        )
                    })
                    .collect(),
            };
            let is_ok = if function == "dispatcher" {
                batch_ok
            } else {
                http_ok
            };
            let log = logs.path().join(format!("{function}-{r}.log"));
            let run = run_process(&binary, &common_env(function), events, &log, is_ok).await?;
            anyhow::ensure!(
                run.ok == warm + 1,
                "{function}: {} of {} invocations succeeded; errors {:?}; log {}",
                run.ok,
                warm + 1,
                run.errors,
                std::fs::read_to_string(&log)
                    .map(|t| crate::procs::last_lines(&t, 10))
                    .unwrap_or_default()
            );
            results.push(run);
        }
        let median = |f: fn(&Run) -> Duration| {
            let mut v: Vec<Duration> = results.iter().map(f).collect();
            v.sort_unstable();
            percentile(&v, 0.5)
        };
        let mut warm_all: Vec<Duration> = results
            .iter()
            .flat_map(|r| r.warm.iter().copied())
            .collect();
        warm_all.sort_unstable();
        let peak = results.iter().filter_map(|r| r.peak_rss_kib).max();
        let init_cpu = results.iter().filter_map(|r| r.init_cpu).min();
        let mut warm_cpu: Vec<Duration> = results
            .iter()
            .filter_map(|r| r.warm_cpu_per_invocation)
            .collect();
        warm_cpu.sort_unstable();
        let warm_cpu = (!warm_cpu.is_empty()).then(|| percentile(&warm_cpu, 0.5));
        // Log and metric output per invocation (init lines included, spread over the calls).
        let mut output: Vec<f64> = results
            .iter()
            .map(|r| r.output_bytes as f64 / (warm + 1) as f64)
            .collect();
        output.sort_by(f64::total_cmp);
        let output_per_call = output[output.len() / 2];
        rows.push(vec![
            function.to_string(),
            f2(size as f64 / 1_048_576.0),
            f2(ms(median(|r| r.init))),
            f2(ms(median(|r| r.first_handler))),
            f2(ms(median(|r| r.first))),
            f2(ms(percentile(&warm_all, 0.5))),
            f2(ms(percentile(&warm_all, 0.99))),
            warm_cpu.map(|c| f2(ms(c))).unwrap_or_else(|| "-".into()),
            peak.map(|k| f1(k as f64 / 1024.0)).unwrap_or_default(),
            format!("{output_per_call:.0}"),
        ]);
        out.insert(
            function.into(),
            json!({
                "binary_bytes": size,
                "runs": runs,
                "warm_invocations_per_run": warm,
                "init_ms_median": ms(median(|r| r.init)),
                "init_ms_all": results.iter().map(|r| ms(r.init)).collect::<Vec<_>>(),
                "first_invocation_handler_ms_median": ms(median(|r| r.first_handler)),
                "start_to_first_answer_ms_median": ms(median(|r| r.first)),
                "warm_ms_p50": ms(percentile(&warm_all, 0.5)),
                "warm_ms_p99": ms(percentile(&warm_all, 0.99)),
                "warm_cpu_ms_per_invocation": warm_cpu.map(ms),
                "init_cpu_ms_min": init_cpu.map(ms),
                "peak_rss_kib_max": peak,
                "log_bytes_per_invocation": output_per_call,
            }),
        );
    }
    table(
        &format!(
            "cold start under a local Runtime API stand-in, on moto ({} build, {}; median of {runs} starts, {warm} warm calls each)",
            common.profile(),
            std::env::consts::ARCH
        ),
        &[
            "function",
            "binary MB",
            "init ms",
            "1st call ms",
            "start→1st answer ms",
            "warm p50 ms",
            "warm p99 ms",
            "warm CPU ms",
            "peak RSS MB",
            "log B/call",
        ],
        &rows,
    );
    Ok(Value::Object(out))
}

//! Delivery: a burst of N events fanned out by `hookhub dev` (SQLite) to K local sinks, with and
//! without one slow subscriber (every answer after 2 s) listening to the same events. Reports
//! deliveries/s, the time until the last fast delivery, and lost and duplicated deliveries
//! (counted by `webhook-id` per subscription; both must be 0).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{json, Value};

use crate::ingest::Dev;
use crate::load::{self, github_webhook};
use crate::{f1, f2, table, Common};

const SLOW: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Sinks {
    /// Per subscription index (the slow one last): deliveries per webhook-id.
    seen: Vec<HashMap<String, u32>>,
    fast_distinct: usize,
    last_fast: Option<Instant>,
}

type Shared = Arc<Mutex<Sinks>>;

fn record(sinks: &Shared, index: usize, headers: &HeaderMap, fast: bool) {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("missing")
        .to_string();
    let mut s = sinks.lock().unwrap();
    let count = s.seen[index].entry(id).or_insert(0);
    *count += 1;
    if fast {
        if *count == 1 {
            s.fast_distinct += 1;
        }
        s.last_fast = Some(Instant::now());
    }
}

async fn start_sinks(k: usize) -> anyhow::Result<(String, Shared)> {
    let sinks: Shared = Arc::new(Mutex::new(Sinks {
        seen: vec![HashMap::new(); k + 1],
        ..Sinks::default()
    }));
    let app = axum::Router::new()
        .route(
            "/fast/{k}",
            axum::routing::post(
                |State(s): State<Shared>, Path(i): Path<usize>, headers: HeaderMap| async move {
                    record(&s, i, &headers, true);
                    "ok"
                },
            ),
        )
        .route(
            "/slow",
            axum::routing::post(
                move |State(s): State<Shared>, headers: HeaderMap| async move {
                    tokio::time::sleep(SLOW).await;
                    record(&s, k, &headers, false);
                    "ok"
                },
            ),
        )
        .with_state(sinks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, sinks))
}

struct Outcome {
    events: usize,
    k: usize,
    slow: bool,
    ingest: load::LoadResult,
    last: Option<Duration>,
    lost: usize,
    duplicated: usize,
    slow_delivered: usize,
}

async fn scenario(
    common: &Common,
    events: usize,
    k: usize,
    slow: bool,
    limit: Duration,
) -> anyhow::Result<Outcome> {
    let dev = Dev::sqlite(common).await?;
    let (sink, sinks) = start_sinks(k).await?;
    for i in 0..k {
        dev.admin(
            "/v1/subscriptions",
            json!({"url": format!("{sink}/fast/{i}"), "sources": ["bench"], "label": format!("fast-{i}")}),
        )
        .await?;
    }
    if slow {
        dev.admin(
            "/v1/subscriptions",
            json!({"url": format!("{sink}/slow"), "label": "slow"}),
        )
        .await?;
    }
    let requests: Vec<_> = (0..events)
        .map(|i| github_webhook("bench", &format!("delivery-{k}-{slow}"), i, 1024))
        .collect();
    let started = Instant::now();
    let ingest = load::run(dev.server.addr, Arc::new(requests), 16, limit).await?;
    let expected = ingest.ok * k;
    let deadline = started + limit;
    while Instant::now() < deadline && sinks.lock().unwrap().fast_distinct < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A little longer, so late duplicates would be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = sinks.lock().unwrap();
    let last = (s.fast_distinct >= expected)
        .then(|| s.last_fast.map(|t| t - started))
        .flatten();
    let mut lost = 0;
    let mut duplicated = 0;
    for seen in &s.seen[..k] {
        lost += ingest.ok.saturating_sub(seen.len());
        duplicated += seen
            .values()
            .map(|n| (*n as usize).saturating_sub(1))
            .sum::<usize>();
    }
    let slow_delivered = s.seen[k].len();
    duplicated += s.seen[k]
        .values()
        .map(|n| (*n as usize).saturating_sub(1))
        .sum::<usize>();
    Ok(Outcome {
        events,
        k,
        slow,
        ingest,
        last,
        lost,
        duplicated,
        slow_delivered,
    })
}

pub async fn run(common: &Common) -> anyhow::Result<Value> {
    let (events, limit) = if common.smoke {
        (20, Duration::from_secs(30))
    } else {
        (common.events, Duration::from_secs(180))
    };
    let mut outcomes = Vec::new();
    for (k, slow) in [(1, false), (1, true), (10, false), (10, true)] {
        outcomes.push(scenario(common, events, k, slow, limit).await?);
    }
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for o in &outcomes {
        let deliveries = o.ingest.ok * o.k;
        let per_s = o.last.map(|t| deliveries as f64 / t.as_secs_f64());
        rows.push(vec![
            o.events.to_string(),
            o.k.to_string(),
            if o.slow { "yes" } else { "no" }.to_string(),
            deliveries.to_string(),
            f1(o.ingest.rps()),
            o.last
                .map(|t| f2(t.as_secs_f64()))
                .unwrap_or_else(|| "timeout".into()),
            per_s.map(f1).unwrap_or_else(|| "-".into()),
            o.lost.to_string(),
            o.duplicated.to_string(),
            if o.slow {
                format!("{}/{}", o.slow_delivered, o.ingest.ok)
            } else {
                "-".into()
            },
        ]);
        out.push(json!({
            "events": o.events,
            "subscriptions": o.k,
            "slow_subscriber": o.slow,
            "accepted": o.ingest.ok,
            "ingest_errors": o.ingest.errors,
            "deliveries": deliveries,
            "ingest_requests_per_s": o.ingest.rps(),
            "time_to_last_delivery_s": o.last.map(|t| t.as_secs_f64()),
            "deliveries_per_s": per_s,
            "lost": o.lost,
            "duplicated": o.duplicated,
            "slow_delivered_when_fast_done": o.slow_delivered,
        }));
    }
    table(
        "delivery: burst fanned out by hookhub dev (sqlite) to local sinks",
        &[
            "events",
            "K",
            "slow sub",
            "deliveries",
            "ingest req/s",
            "last fast delivery s",
            "deliveries/s",
            "lost",
            "dup",
            "slow delivered",
        ],
        &rows,
    );
    Ok(json!({ "scenarios": out, "slow_response_s": SLOW.as_secs_f64() }))
}

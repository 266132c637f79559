//! Rate limit: a burst of N events to one subscription limited to R deliveries per second, through
//! `hookhub dev` on SQLite and on moto, delivered to a sink on 127.0.0.1 that notes when each
//! event first arrives. The delivered rate is (N - 1) / (last first arrival - first one), reported
//! as a ratio to R (the target: within ±10 %), with lost and duplicated deliveries (both
//! must be 0). The burst is ingested much faster than R, so the limiter is what paces it, and it
//! outlasts the dispatcher's in-process wait (5 s), so parked deliveries are part of the run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{json, Value};

use crate::ingest::Dev;
use crate::load::{self, github_webhook};
use crate::{f1, f2, table, Common};

/// webhook-id → (first arrival, deliveries).
type Arrivals = Arc<Mutex<HashMap<String, (Instant, u32)>>>;

async fn start_sink() -> anyhow::Result<(String, Arrivals)> {
    let arrivals: Arrivals = Arc::default();
    let app = axum::Router::new()
        .route(
            "/limited",
            axum::routing::post(
                |State(seen): State<Arrivals>, headers: HeaderMap| async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("missing")
                        .to_owned();
                    let now = Instant::now();
                    seen.lock().unwrap().entry(id).or_insert((now, 0)).1 += 1;
                    "ok"
                },
            ),
        )
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/limited", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, arrivals))
}

struct Run {
    backend: &'static str,
    rate: f64,
    accepted: usize,
    ingest_s: f64,
    delivered: usize,
    duplicated: usize,
    measured: Option<f64>,
    timed_out: bool,
}

async fn burst(
    dev: Dev,
    backend: &'static str,
    rate: f64,
    events: usize,
    limit: Duration,
) -> anyhow::Result<Run> {
    let (url, arrivals) = start_sink().await?;
    dev.admin(
        "/v1/subscriptions",
        json!({"url": url, "sources": ["bench"], "rate_limit": rate, "label": "limited"}),
    )
    .await?;
    let requests: Vec<_> = (0..events)
        .map(|i| github_webhook("bench", &format!("rate-{backend}"), i, 1024))
        .collect();
    let ingest = load::run(dev.server.addr, Arc::new(requests), 8, limit).await?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && arrivals.lock().unwrap().len() < ingest.ok {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let timed_out = arrivals.lock().unwrap().len() < ingest.ok;
    // A little longer, so late duplicates would be counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = arrivals.lock().unwrap();
    let firsts: Vec<Instant> = seen.values().map(|(t, _)| *t).collect();
    let measured = match (firsts.iter().min(), firsts.iter().max()) {
        (Some(first), Some(last)) if firsts.len() > 1 && last > first => {
            Some((firsts.len() - 1) as f64 / (*last - *first).as_secs_f64())
        }
        _ => None,
    };
    Ok(Run {
        backend,
        rate,
        accepted: ingest.ok,
        ingest_s: ingest.elapsed.as_secs_f64(),
        delivered: seen.len(),
        duplicated: seen.values().map(|(_, n)| *n as usize - 1).sum(),
        measured,
        timed_out,
    })
}

pub async fn run(common: &Common) -> anyhow::Result<Value> {
    // (rate, events): ~10 s of pacing on SQLite, ~15 s on moto. moto ingests only about a dozen
    // webhooks per second (one Python process, four calls each), so its limit is set well below
    // that: the limiter, not the ingest, must be what paces the deliveries.
    let (sqlite, moto, limit) = if common.smoke {
        ((20.0, 10), (5.0, 5), Duration::from_secs(30))
    } else {
        ((50.0, 500), (2.0, 30), Duration::from_secs(120))
    };
    let mut runs = Vec::new();
    let dev = Dev::sqlite(common).await?;
    runs.push(burst(dev, "sqlite", sqlite.0, sqlite.1, limit).await?);
    if !common.no_moto {
        let dev = Dev::moto(common).await?;
        runs.push(burst(dev, "moto", moto.0, moto.1, limit).await?);
    }
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for r in &runs {
        let ratio = r.measured.map(|m| m / r.rate);
        let lost = r.accepted - r.delivered.min(r.accepted);
        rows.push(vec![
            r.backend.to_owned(),
            f1(r.rate),
            r.accepted.to_string(),
            f2(r.ingest_s),
            r.measured.map(f2).unwrap_or_else(|| "-".into()),
            ratio.map(f2).unwrap_or_else(|| "-".into()),
            lost.to_string(),
            r.duplicated.to_string(),
            if r.timed_out { "timeout" } else { "" }.to_owned(),
        ]);
        out.push(json!({
            "backend": r.backend,
            "rate_limit": r.rate,
            "events": r.accepted,
            "ingest_s": r.ingest_s,
            "delivered": r.delivered,
            "delivered_per_s": r.measured,
            "ratio_to_limit": ratio,
            "lost": lost,
            "duplicated": r.duplicated,
            "timed_out": r.timed_out,
        }));
    }
    table(
        "rate-limit: a burst to one subscription limited to R/s, delivered to 127.0.0.1",
        &[
            "backend",
            "R /s",
            "events",
            "ingest s",
            "delivered /s",
            "x R",
            "lost",
            "dup",
            "",
        ],
        &rows,
    );
    Ok(json!({ "runs": out }))
}

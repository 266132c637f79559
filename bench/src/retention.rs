//! The SQLite retention sweep under load: ingest latency (the receiver in process on a real
//! database file, 32 concurrent requests) without a sweep, then while a sweep deletes a million
//! expired rows (events, their attempts and dedup markers). Target: p99 during the sweep within
//! 2× of without.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hookhub::ingest::{Ingestor, ReceiverConfig};
use hookhub::sqlite::SqliteBackend;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::load::{github_webhook, ms, percentile};
use crate::{f1, f2, table, Common};

const CLIENTS: usize = 32;
const RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Writes `events` expired events (40 days old, 256-byte bodies), each with one attempt and one
/// dedup marker, straight into the schema `SqliteBackend::open` made: three rows per event.
fn plant(path: &std::path::Path, events: usize) -> anyhow::Result<()> {
    let mut c = rusqlite::Connection::open(path)?;
    let tx = c.transaction()?;
    let old = Utc::now() - chrono::Duration::days(40);
    let received_at = old.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let body = vec![b'x'; 256];
    {
        let mut event = tx.prepare(
            "INSERT INTO events (id, source_id, event_type, received_at, content_type, dedup_key,
                                 headers, body, enqueued)
             VALUES (?1, 'bench', 'push', ?2, 'application/json', ?3, '{}', ?4, 1)",
        )?;
        let mut marker = tx.prepare(
            "INSERT INTO event_dedup (source_id, dedup_key, event_id, received_at)
             VALUES ('bench', ?1, ?2, ?3)",
        )?;
        let mut attempt = tx.prepare(
            "INSERT INTO attempts (event_id, subscription_id, attempt, started_at, data)
             VALUES (?1, 'sub_bench', 1, ?2, '{}')",
        )?;
        for i in 0..events {
            let ms = old.timestamp_millis() as u64 + i as u64;
            let id = format!("evt_{}", ulid::Ulid::from_parts(ms, i as u128));
            let key = format!("id:planted-{i}");
            event.execute(rusqlite::params![id, received_at, key, body])?;
            marker.execute(rusqlite::params![key, id, received_at])?;
            attempt.execute(rusqlite::params![id, received_at])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Ingest from `CLIENTS` concurrent callers until `n` requests are done and `until` (if any)
/// has turned true; returns every request's latency.
async fn ingest(
    app: &axum::Router,
    label: &str,
    n: usize,
    until: Option<Arc<AtomicBool>>,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (app, next, until, label) =
            (app.clone(), next.clone(), until.clone(), label.to_string());
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let done = until.as_ref().is_none_or(|u| u.load(Ordering::Relaxed));
                if i >= n && done {
                    return anyhow::Ok(latencies);
                }
                let request = github_webhook("bench", &label, i, 1024).request()?;
                let started = Instant::now();
                let response = app.clone().oneshot(request).await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "ingest answered {}",
                    response.status()
                );
                latencies.push(started.elapsed());
            }
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = clients.join_next().await {
        all.extend(joined??);
    }
    all.sort_unstable();
    Ok(all)
}

pub async fn run(common: &Common) -> anyhow::Result<Value> {
    let (events, n) = if common.smoke {
        (3_000, 300)
    } else {
        (333_334, 5_000)
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hookhub.db");
    drop(SqliteBackend::open(&path)?);
    let planted = Instant::now();
    plant(&path, events)?;
    let planted = planted.elapsed();

    let sqlite = SqliteBackend::open(&path)?;
    let backend = sqlite.clone().into_backend();
    let admin = hookhub::admin::Admin::new(backend.clone());
    admin
        .create_source(serde_json::from_value(json!({
            "id": "bench",
            "verify": {"scheme": "github", "secret": crate::load::SOURCE_SECRET},
        }))?)
        .await?;
    let ingestor = Ingestor::new(backend.clone(), ReceiverConfig::default());
    let app = hookhub::http::receiver_router(ingestor);

    // Warm-up, then the baseline.
    ingest(&app, "warm", n / 5, None).await?;
    let quiet = ingest(&app, "quiet", n, None).await?;

    let swept = Arc::new(AtomicBool::new(false));
    let sweep = {
        let (sqlite, swept) = (sqlite.clone(), swept.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let report = sqlite.sweep_expired(RETENTION).await;
            swept.store(true, Ordering::Relaxed);
            report.map(|r| (r, started.elapsed()))
        })
    };
    let during = ingest(&app, "sweep", n, Some(swept)).await?;
    let (report, took) = sweep.await??;
    anyhow::ensure!(
        report.events == events,
        "swept {} of {events}",
        report.events
    );

    let rows_deleted = report.events + report.attempts + report.dedup_markers;
    let p99 = |l: &[Duration]| ms(percentile(l, 0.99));
    let ratio = p99(&during) / p99(&quiet).max(f64::EPSILON);
    let row = |label: &str, l: &[Duration]| {
        vec![
            label.to_string(),
            l.len().to_string(),
            f2(ms(percentile(l, 0.5))),
            f2(p99(l)),
            f2(ms(l.last().copied().unwrap_or_default())),
        ]
    };
    table(
        &format!(
            "ingest during a retention sweep of {rows_deleted} rows (SQLite file, {CLIENTS} \
             callers in process; target p99 <= 2x; sweep took {} s, {} pages freed)",
            f1(took.as_secs_f64()),
            report.pages_freed
        ),
        &["phase", "requests", "p50 ms", "p99 ms", "max ms"],
        &[row("no sweep", &quiet), row("during the sweep", &during)],
    );
    println!("p99 during / without: {}", f2(ratio));
    Ok(json!({
        "rows_deleted": rows_deleted,
        "planted_s": planted.as_secs_f64(),
        "sweep_s": took.as_secs_f64(),
        "pages_freed": report.pages_freed,
        "p99_ms_without": p99(&quiet),
        "p99_ms_during": p99(&during),
        "p99_ratio": ratio,
        "requests_during": during.len(),
    }))
}

//! The receiver handler alone: the receiver's axum router called in process (no sockets) on a
//! backend whose stores answer at once, so what is measured is Hookhub's own work per webhook
//! (routing, body, verification, typing, dedup key, event record) without AWS I/O. The source
//! is decoded from JSON on every lookup, as a real store would.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookhub::decision::health::ProbeClaim;
use hookhub::decision::{DisabledReason, HealthChange, HealthOutcome, HealthPolicy};
use hookhub::domain::{
    Attempt, Event, EventSummary, SentFirst, Source, Subscription, SubscriptionRoute, Task,
};
use hookhub::ingest::{Ingestor, ReceiverConfig};
use hookhub::ports::{
    AttemptLog, AttemptPage, Backend, DisableOutcome, EventQuery, EventRange, EventStore,
    InsertOutcome, ReceivedTask, SourceStore, StoreResult, SubscriptionStore, TaskQueue,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::load::{github_webhook, ms, percentile};
use crate::{f2, table, Common};

/// Stores that keep nothing and answer at once.
struct NullBackend {
    source_json: String,
}

#[async_trait]
impl SourceStore for NullBackend {
    async fn create_source(&self, _: &Source) -> StoreResult<()> {
        Ok(())
    }
    async fn update_source(&self, _: &Source) -> StoreResult<()> {
        Ok(())
    }
    async fn get_source(&self, _: &str) -> StoreResult<Option<Source>> {
        Ok(Some(
            serde_json::from_str(&self.source_json).expect("valid source"),
        ))
    }
    async fn list_sources(&self) -> StoreResult<Vec<Source>> {
        Ok(Vec::new())
    }
    async fn delete_source(&self, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
}

#[async_trait]
impl SubscriptionStore for NullBackend {
    async fn create_subscription(&self, _: &Subscription) -> StoreResult<()> {
        Ok(())
    }
    async fn update_subscription(&self, _: &Subscription) -> StoreResult<()> {
        Ok(())
    }
    async fn get_subscription(&self, _: &str) -> StoreResult<Option<Subscription>> {
        Ok(None)
    }
    async fn list_subscription_routes(&self) -> StoreResult<Vec<SubscriptionRoute>> {
        Ok(Vec::new())
    }
    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        Ok(Vec::new())
    }
    async fn delete_subscription(&self, _: &str) -> StoreResult<bool> {
        Ok(false)
    }
    async fn disable_subscription(
        &self,
        _: &str,
        _: DisabledReason,
        _: DateTime<Utc>,
    ) -> StoreResult<DisableOutcome> {
        Ok(DisableOutcome::NotFound)
    }
    async fn record_outcome(
        &self,
        _: &str,
        _: HealthOutcome,
        _: DateTime<Utc>,
        _: &HealthPolicy,
    ) -> StoreResult<Option<HealthChange>> {
        Ok(None)
    }
    async fn claim_probe(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: &HealthPolicy,
    ) -> StoreResult<Option<ProbeClaim>> {
        Ok(None)
    }
    async fn reserve_slot(
        &self,
        _: &str,
        _: f64,
        _: DateTime<Utc>,
        _: Duration,
    ) -> StoreResult<hookhub::decision::rate::Slot> {
        Ok(hookhub::decision::rate::Slot::Now {
            wait: Duration::ZERO,
        })
    }
}

#[async_trait]
impl EventStore for NullBackend {
    fn new_event_id(&self) -> String {
        hookhub::domain::new_id("evt")
    }
    async fn insert_event(&self, _: &Event, _: Duration) -> StoreResult<InsertOutcome> {
        Ok(InsertOutcome::Inserted)
    }
    async fn insert_sent(&self, _: &Event, _: &SentFirst) -> StoreResult<InsertOutcome> {
        Ok(InsertOutcome::Inserted)
    }
    async fn get_event(&self, _: &str) -> StoreResult<Option<Event>> {
        Ok(None)
    }
    async fn list_events(&self, _: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        Ok(Vec::new())
    }
    async fn mark_enqueued(&self, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn list_unenqueued(&self, _: DateTime<Utc>, _: usize) -> StoreResult<Vec<Event>> {
        Ok(Vec::new())
    }
    async fn events_page(&self, _: &EventRange, _: usize) -> StoreResult<Vec<EventSummary>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl AttemptLog for NullBackend {
    async fn record_attempt(&self, _: &Attempt) -> StoreResult<()> {
        Ok(())
    }
    async fn attempts_for_event(&self, _: &str) -> StoreResult<Vec<Attempt>> {
        Ok(Vec::new())
    }
    async fn attempts_for_subscription(&self, _: &str, _: usize) -> StoreResult<Vec<Attempt>> {
        Ok(Vec::new())
    }
    async fn attempts_for_subscription_page(
        &self,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: Option<&str>,
        _: usize,
    ) -> StoreResult<AttemptPage> {
        Ok(AttemptPage::default())
    }
}

#[async_trait]
impl TaskQueue for NullBackend {
    async fn send(&self, _: &Task, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn send_batch(&self, _: &[(Task, Duration)]) -> StoreResult<()> {
        Ok(())
    }
    async fn receive(&self, _: usize, _: Duration) -> StoreResult<Vec<ReceivedTask>> {
        Ok(Vec::new())
    }
    async fn extend(&self, _: &str, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn ack(&self, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn dead_letter(&self, _: &ReceivedTask, _: &str) -> StoreResult<()> {
        Ok(())
    }
}

pub async fn run(common: &Common) -> anyhow::Result<Value> {
    let n = if common.smoke { 500 } else { 20_000 };
    let source = json!({
        "id": "bench",
        "verify": {"scheme": "github", "secret": crate::load::SOURCE_SECRET},
        "created_at": Utc::now(),
    });
    let backend = Backend::from_single(std::sync::Arc::new(NullBackend {
        source_json: source.to_string(),
    }));
    let ingestor = Ingestor::new(backend.clone(), ReceiverConfig::default());
    let app = hookhub::http::receiver_router(ingestor);
    let mut rows = Vec::new();
    let mut out = serde_json::Map::new();
    for size in [1024usize, 64 * 1024] {
        let requests: Vec<_> = (0..n + n / 10)
            .map(|i| github_webhook("bench", "handler", i, size))
            .collect();
        let mut latencies = Vec::with_capacity(n);
        for (i, prepared) in requests.iter().enumerate() {
            let request = prepared.request()?;
            let started = Instant::now();
            let response = app.clone().oneshot(request).await?;
            let status = response.status();
            axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            let took = started.elapsed();
            anyhow::ensure!(status.is_success(), "handler answered {status}");
            // The first tenth warms caches and the allocator.
            if i >= n / 10 {
                latencies.push(took);
            }
        }
        latencies.sort_unstable();
        let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
        let label = if size == 1024 { "1KiB" } else { "64KiB" };
        rows.push(vec![
            label.to_string(),
            latencies.len().to_string(),
            f2(ms(mean) * 1000.0),
            f2(ms(percentile(&latencies, 0.5)) * 1000.0),
            f2(ms(percentile(&latencies, 0.99)) * 1000.0),
            f2(ms(latencies.last().copied().unwrap_or_default()) * 1000.0),
        ]);
        out.insert(
            label.into(),
            json!({
                "requests": latencies.len(),
                "mean_us": ms(mean) * 1000.0,
                "p50_us": ms(percentile(&latencies, 0.5)) * 1000.0,
                "p99_us": ms(percentile(&latencies, 0.99)) * 1000.0,
                "max_us": ms(latencies.last().copied().unwrap_or_default()) * 1000.0,
            }),
        );
    }
    table(
        "receiver handler in process, no I/O (GitHub scheme; target p99 <= 1000 µs)",
        &["body", "requests", "mean µs", "p50 µs", "p99 µs", "max µs"],
        &rows,
    );
    Ok(Value::Object(out))
}

//! A warm-process cache of sources and subscriptions, with bounded staleness.
//!
//! The receiver looks a source up and the dispatcher lists subscriptions for every webhook;
//! on DynamoDB that is a read per webhook for the source and a `Scan` of the whole
//! subscriptions table per task. [`CachedConfig`] wraps the two stores so a warm process reads
//! each at most once per `ttl`: what a task reads no longer grows with the number of
//! subscriptions, and an admin change made elsewhere (another Lambda) is seen within `ttl`.
//! Changes made through the wrapper itself (one process: `hookhub dev`) are seen at once.
//!
//! Unknown sources are not cached, so a new source accepts webhooks at once; a deleted or
//! changed one stops being served from the cache within `ttl`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::decision::health::ProbeClaim;
use crate::decision::rate::Slot;
use crate::decision::{DisabledReason, HealthChange, HealthOutcome, HealthPolicy};
use crate::domain::{Source, Subscription, SubscriptionRoute};
use crate::ports::{DisableOutcome, SourceStore, StoreResult, SubscriptionStore};

/// Whether something loaded at `loaded_at` may still be served at `now`.
pub fn is_fresh(loaded_at: Instant, now: Instant, ttl: Duration) -> bool {
    now.checked_duration_since(loaded_at)
        .is_some_and(|age| age < ttl)
}

/// A list held in `slot` while fresh, else `load`ed into it (the slot's lock held across the
/// load, so concurrent callers of a cold process wait for one read). `load` is lazy: not polled
/// when the cached list is served.
async fn cached_list<T: Clone>(
    slot: &tokio::sync::Mutex<Option<(Instant, Vec<T>)>>,
    ttl: Duration,
    load: impl std::future::Future<Output = StoreResult<Vec<T>>>,
) -> StoreResult<Vec<T>> {
    let mut cached = slot.lock().await;
    if let Some((loaded_at, list)) = cached.as_ref() {
        if is_fresh(*loaded_at, Instant::now(), ttl) {
            return Ok(list.clone());
        }
    }
    let loaded_at = Instant::now();
    let list = load.await?;
    *cached = Some((loaded_at, list.clone()));
    Ok(list)
}

/// Caching [`SourceStore`] and [`SubscriptionStore`] over the real ones. Cheap to share.
pub struct CachedConfig {
    sources: Arc<dyn SourceStore>,
    subscriptions: Arc<dyn SubscriptionStore>,
    ttl: Duration,
    cached_sources: Mutex<HashMap<String, (Instant, Source)>>,
    /// A tokio mutex: held across the reload, so concurrent tasks of a cold process wait for
    /// one `Scan` instead of each running their own.
    cached_subscriptions: tokio::sync::Mutex<Option<(Instant, Vec<Subscription>)>>,
    /// The receiver's view (ids and filters), cached apart: it may not read the rest.
    cached_routes: tokio::sync::Mutex<Option<(Instant, Vec<SubscriptionRoute>)>>,
}

impl CachedConfig {
    pub fn new(
        sources: Arc<dyn SourceStore>,
        subscriptions: Arc<dyn SubscriptionStore>,
        ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            sources,
            subscriptions,
            ttl,
            cached_sources: Mutex::new(HashMap::new()),
            cached_subscriptions: tokio::sync::Mutex::new(None),
            cached_routes: tokio::sync::Mutex::new(None),
        })
    }

    fn forget_source(&self, id: &str) {
        self.lock_sources().remove(id);
    }

    async fn forget_subscriptions(&self) {
        *self.cached_subscriptions.lock().await = None;
        *self.cached_routes.lock().await = None;
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Source)>> {
        // A panic elsewhere while holding it leaves a map that is still valid.
        self.cached_sources
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl SourceStore for CachedConfig {
    async fn create_source(&self, source: &Source) -> StoreResult<()> {
        self.sources.create_source(source).await
    }

    async fn update_source(&self, source: &Source) -> StoreResult<()> {
        let result = self.sources.update_source(source).await;
        self.forget_source(&source.id);
        result
    }

    async fn get_source(&self, id: &str) -> StoreResult<Option<Source>> {
        let now = Instant::now();
        if let Some((loaded_at, source)) = self.lock_sources().get(id) {
            if is_fresh(*loaded_at, now, self.ttl) {
                return Ok(Some(source.clone()));
            }
        }
        let found = self.sources.get_source(id).await?;
        let mut cache = self.lock_sources();
        match &found {
            Some(source) => {
                cache.insert(id.to_string(), (now, source.clone()));
            }
            None => {
                cache.remove(id);
            }
        }
        Ok(found)
    }

    async fn list_sources(&self) -> StoreResult<Vec<Source>> {
        self.sources.list_sources().await
    }

    async fn delete_source(&self, id: &str) -> StoreResult<bool> {
        let result = self.sources.delete_source(id).await;
        self.forget_source(id);
        result
    }
}

#[async_trait]
impl SubscriptionStore for CachedConfig {
    async fn create_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        let result = self.subscriptions.create_subscription(subscription).await;
        self.forget_subscriptions().await;
        result
    }

    async fn update_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        let result = self.subscriptions.update_subscription(subscription).await;
        self.forget_subscriptions().await;
        result
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<Subscription>> {
        // One item, read fresh: retries and the admin API see the stored state.
        self.subscriptions.get_subscription(id).await
    }

    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let load = self.subscriptions.list_subscriptions();
        cached_list(&self.cached_subscriptions, self.ttl, load).await
    }

    async fn list_subscription_routes(&self) -> StoreResult<Vec<SubscriptionRoute>> {
        let load = self.subscriptions.list_subscription_routes();
        cached_list(&self.cached_routes, self.ttl, load).await
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        let result = self.subscriptions.delete_subscription(id).await;
        self.forget_subscriptions().await;
        result
    }

    async fn disable_subscription(
        &self,
        id: &str,
        reason: DisabledReason,
        at: DateTime<Utc>,
    ) -> StoreResult<DisableOutcome> {
        let result = self
            .subscriptions
            .disable_subscription(id, reason, at)
            .await;
        self.forget_subscriptions().await;
        result
    }

    async fn record_outcome(
        &self,
        id: &str,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<HealthChange>> {
        let change = self
            .subscriptions
            .record_outcome(id, outcome, at, policy)
            .await?;
        // Only a change of state (breaker opened or closed, disabled) matters to later tasks
        // of this process; the streak counters alone do not.
        if change.is_some_and(|c| c != HealthChange::default()) {
            self.forget_subscriptions().await;
        }
        Ok(change)
    }

    async fn claim_probe(
        &self,
        id: &str,
        now: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<ProbeClaim>> {
        let claim = self.subscriptions.claim_probe(id, now, policy).await?;
        if claim.as_ref().is_some_and(|c| c.claimed) {
            self.forget_subscriptions().await;
        }
        Ok(claim)
    }

    async fn reserve_slot(
        &self,
        subscription_id: &str,
        rate: f64,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> StoreResult<Slot> {
        self.subscriptions
            .reserve_slot(subscription_id, rate, now, max_wait)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (age, ttl, fresh)
        let cases = [
            (s(0), s(5), true),
            (s(4), s(5), true),
            (s(5), s(5), false),
            (s(6), s(5), false),
            // A zero ttl caches nothing.
            (s(0), s(0), false),
        ];
        for (age, ttl, fresh) in cases {
            assert_eq!(
                is_fresh(t0, t0 + age, ttl),
                fresh,
                "age {age:?}, ttl {ttl:?}"
            );
        }
        // A clock reading before the load (cannot happen with Instant, but never "fresh").
        assert!(!is_fresh(t0 + s(1), t0, s(5)));
    }
}

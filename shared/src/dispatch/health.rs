//! The dispatcher's side of endpoint health: recording outcomes (only those that change
//! something, [`health::needs_write`], judged with this process's memory of its own writes,
//! which the cached subscription may predate) and disabling a subscription.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::decision::health::{self, SUCCESS_RESOLUTION};
use crate::decision::{DisabledReason, HealthOutcome};
use crate::domain::{Event, Subscription};
use crate::operational::{self, OperationalEvent};
use crate::ports::{DisableOutcome, StoreError};

use super::Dispatcher;

/// Per subscription, the latest outcome this process wrote and when. One small entry per
/// subscription this process delivered to.
#[derive(Clone, Default)]
pub(super) struct HealthMemo(Arc<Mutex<HashMap<String, Written>>>);

/// An outcome written, and the attempt time it was written for.
type Written = (HealthOutcome, DateTime<Utc>);

impl HealthMemo {
    /// Whether `outcome` must be written for `subscription` (its `health` as last read).
    pub(super) fn needs_write(
        &self,
        subscription: &Subscription,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
    ) -> bool {
        let written = self.lock().get(&subscription.id).copied();
        health::needs_write(
            &subscription.health,
            written,
            outcome,
            at,
            SUCCESS_RESOLUTION,
        )
    }

    /// Remembers a write that went through.
    pub(super) fn wrote(&self, subscription_id: &str, outcome: HealthOutcome, at: DateTime<Utc>) {
        let mut memo = self.lock();
        let entry = memo
            .entry(subscription_id.to_owned())
            .or_insert((outcome, at));
        // Concurrent deliveries finish out of order: keep the latest.
        if at >= entry.1 {
            *entry = (outcome, at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Dispatcher {
    /// Health is bookkeeping: a store failure here is logged, not allowed to fail a delivery
    /// that is already logged and scheduled.
    pub(super) async fn record_health(
        &self,
        event: &Event,
        subscription: &Subscription,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
    ) {
        if !self.health_memo.needs_write(subscription, outcome, at) {
            return;
        }
        // The lock covers the update only: emitting its events need not hold up the next one.
        let recorded = {
            let lock = self.health_locks.of(&subscription.id);
            let _one_at_a_time = lock.lock().await;
            self.backend
                .subscriptions
                .record_outcome(&subscription.id, outcome, at, &self.config.health)
                .await
        };
        if recorded.is_ok() {
            self.health_memo.wrote(&subscription.id, outcome, at);
        }
        match recorded {
            Ok(Some(change)) => {
                if let Some(circuit) = change.circuit {
                    tracing::warn!(
                        event_id = %event.id,
                        subscription_id = %subscription.id,
                        circuit = ?circuit,
                        "circuit changed"
                    );
                }
                if let Some(reason) = change.disabled {
                    tracing::warn!(
                        event_id = %event.id,
                        subscription_id = %subscription.id,
                        reason = reason.code(),
                        "subscription disabled"
                    );
                }
                for op in operational::from_health_change(&subscription.id, &change) {
                    operational::emit(&*self.backend.intake, &op).await;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                event_id = %event.id,
                subscription_id = %subscription.id,
                error = %e,
                "could not record the endpoint's health"
            ),
        }
    }

    pub(super) async fn disable(
        &self,
        subscription: &Subscription,
        reason: DisabledReason,
    ) -> Result<(), StoreError> {
        // Only the three fields change, so a concurrent admin change is not overwritten (and
        // the dispatcher needs no right to replace whole subscriptions).
        let disabled = self
            .backend
            .subscriptions
            .disable_subscription(&subscription.id, reason, Utc::now())
            .await?;
        if disabled != DisableOutcome::NotFound {
            tracing::warn!(
                subscription_id = %subscription.id,
                reason = reason.code(),
                "subscription disabled"
            );
        }
        // Reported once: by the one concurrent delivery whose call disabled it.
        if disabled == DisableOutcome::Disabled {
            let op = OperationalEvent::SubscriptionDisabled {
                subscription_id: subscription.id.clone(),
                reason,
            };
            operational::emit(&*self.backend.intake, &op).await;
        }
        Ok(())
    }
}

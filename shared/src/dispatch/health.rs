//! The dispatcher's side of endpoint health: recording outcomes (only those that change
//! something, [`health::needs_write`], judged with this process's own latest write, which the
//! cached subscription may predate) and disabling a subscription.

use chrono::{DateTime, Utc};

use crate::decision::health::{self, SUCCESS_RESOLUTION};
use crate::decision::{DisabledReason, HealthOutcome};
use crate::domain::{Event, Subscription};
use crate::operational::{self, OperationalEvent};
use crate::ports::{DisableOutcome, StoreError};

use super::Dispatcher;

/// An outcome this process wrote for a subscription, and the attempt time it was for: kept
/// under the subscription's health lock.
pub(super) type Written = (HealthOutcome, DateTime<Utc>);

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
        // Checked under the lock, so a write in flight (a failure, say) is seen before a success
        // is judged. The lock covers the update only: emitting its events need not hold up the
        // next one.
        let recorded = {
            let lock = self.health_locks.of(&subscription.id);
            let mut written = lock.lock().await;
            let known = &subscription.health;
            if !health::needs_write(known, *written, outcome, at, SUCCESS_RESOLUTION) {
                return;
            }
            let recorded = self
                .backend
                .subscriptions
                .record_outcome(&subscription.id, outcome, at, &self.config.health)
                .await;
            // Concurrent deliveries finish out of order: keep the latest.
            if recorded.is_ok() && written.is_none_or(|(_, t)| at >= t) {
                *written = Some((outcome, at));
            }
            recorded
        };
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

//! Pacing deliveries under a subscription's `rate_limit`: book a slot in the store (so the limit
//! holds across dispatcher instances) and wait for it in-process when it is near; otherwise park
//! the delivery until a slot will be within reach. Neither uses an attempt number.

use chrono::{DateTime, Utc};

use super::Dispatcher;
use crate::decision::rate::Slot;
use crate::decision::Gate;
use crate::domain::{Event, Subscription};
use crate::ports::StoreError;

impl Dispatcher {
    /// `None` when the delivery may go now (after waiting for its slot, if it had to); else the
    /// time to try again. Subscriptions without a limit, disabled ones (their deliveries are
    /// skipped, not sent) and those whose open circuit parks the delivery cost nothing here.
    pub(super) async fn pace(
        &self,
        event: &Event,
        subscription: &Subscription,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(rate) = subscription.rate_limit.filter(|_| subscription.enabled) else {
            return Ok(None);
        };
        // The gate parks it anyway: no slot is taken from deliveries that can go.
        if matches!(subscription.health.gate(Utc::now()), Gate::Park(_)) {
            return Ok(None);
        }
        let (now, slot) = {
            // One booking at a time per subscription in this process: the store's
            // compare-and-set then only races other processes.
            let lock = self.slot_locks.of(&subscription.id);
            let _one_at_a_time = lock.lock().await;
            let now = Utc::now();
            let slot = self
                .backend
                .subscriptions
                .reserve_slot(&subscription.id, rate, now, self.config.rate_limit_max_wait)
                .await?;
            (now, slot)
        };
        match slot {
            Slot::Now { wait } => {
                // The slot is a time: the store took part of the wait to answer, and sleeping
                // all of it again would skew the spacing.
                let slot = now + chrono::Duration::from_std(wait).unwrap_or_default();
                let wait = (slot - Utc::now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    tracing::debug!(
                        event_id = %event.id,
                        subscription_id = %subscription.id,
                        wait_ms = wait.as_millis() as u64,
                        "rate limit: waiting for the booked slot"
                    );
                    // The worker keeps extending the message's lease meanwhile.
                    tokio::time::sleep(wait).await;
                }
                Ok(None)
            }
            Slot::Later { retry_at } => Ok(Some(retry_at)),
        }
    }
}

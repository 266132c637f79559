//! This process's memory of its own health writes, so a success that changes nothing is not
//! written ([`health::needs_write`]): the cached subscription may predate this process's last
//! write, which the memory fills in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::decision::health::{self, SUCCESS_RESOLUTION};
use crate::decision::HealthOutcome;
use crate::domain::Subscription;

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

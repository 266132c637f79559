//! Recording an attempt: under its plan or on its own, patiently.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::Attempt;
use crate::ports::{StoreError, PLANNED_START_MAX_LAG};

/// How long after an event's receipt its fan-out still records attempts under the plan stored
/// with it: half of [`PLANNED_START_MAX_LAG`], so that deliveries held behind slower ones still
/// start within the lag. An older one (a queue backlog) writes one plan record for all, where
/// each late attempt would otherwise be recorded on its own, with a record each.
pub(super) const STORED_PLAN_MAX_AGE: Duration = Duration::from_secs(30);

/// Whether a fan-out records the attempts a stored plan names under it (no plan record of its
/// own): only under the layout the plan was made for (attempts keyed under another would not be
/// where the plan says), and while the event is at most [`STORED_PLAN_MAX_AGE`] old (`age`;
/// negative, a clock behind the receiver's: no).
pub(super) fn relies_on_stored_plan(
    own_layout: Option<u32>,
    plan_layout: u32,
    age: chrono::TimeDelta,
) -> bool {
    own_layout == Some(plan_layout) && age.to_std().is_ok_and(|age| age <= STORED_PLAN_MAX_AGE)
}

/// The plan an attempt is recorded under: none when it started more than
/// [`PLANNED_START_MAX_LAG`] after it (queued behind slow deliveries), so that pages by start time
/// need look back no further than the lag.
pub(super) fn as_planned(
    planned_at: Option<DateTime<Utc>>,
    started_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // Negative (the wall clock stepped back) fails `to_std`: recorded on its own too, as pages
    // rely on a plan never sorting after its start.
    planned_at.filter(|at| {
        (started_at - *at)
            .to_std()
            .is_ok_and(|lag| lag <= PLANNED_START_MAX_LAG)
    })
}

/// Extra rounds of [`record_patiently`] after the store's own (SDK) retries, and the first pause.
const RECORD_ROUNDS: u32 = 3;
const RECORD_PAUSE: Duration = Duration::from_millis(200);

/// Logs an attempt, trying a transient failure again a few times (200, 400, 800 ms apart): an
/// attempt delivered but not logged is delivered again when its task runs again, a duplicate
/// for the subscriber. Under sustained throttling the SDK's own retries alone lose about one
/// attempt write in 400 (tests/tests/throttling.rs).
pub(super) async fn record_patiently(
    attempts: &dyn crate::ports::AttemptLog,
    record: &Attempt,
    planned_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let write = || async {
        match planned_at {
            Some(at) => attempts.record_planned_attempt(record, at).await,
            None => attempts.record_attempt(record).await,
        }
    };
    let mut pause = RECORD_PAUSE;
    for _ in 0..RECORD_ROUNDS {
        match write().await {
            Err(StoreError::Unavailable(error)) => {
                tracing::warn!(
                    event_id = %record.event_id,
                    subscription_id = %record.subscription_id,
                    error = %error,
                    "attempt log write failed; trying again"
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    write().await
}

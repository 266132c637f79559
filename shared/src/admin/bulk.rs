//! Bulk recovery (`POST /v1/subscriptions/{id}/recover`) and bulk replay
//! (`POST /v1/events/replay`): validated here, counted, and handed to the dispatcher as the
//! first page of a job (`hookhub::bulk`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{invalid, Admin, AdminResult};
use crate::bulk::{count_recover, count_replay, Count, COUNT_BUDGET};
use crate::domain::{new_id, DeliveryState, RecoverJob, ReplayJob, Task};

/// `POST /v1/subscriptions/{id}/recover` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// RFC 3339; attempts started at or after it.
    pub since: String,
    /// RFC 3339, at or before it; now when absent (and never later than now).
    #[serde(default)]
    pub until: Option<String>,
    /// States of a pair's latest attempt to recover; `failed` and `skipped` when absent.
    #[serde(default)]
    pub states: Option<Vec<String>>,
    /// Count only; nothing is enqueued.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/events/replay` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReplayRequest {
    #[serde(default)]
    pub source: Option<String>,
    /// An exact type or a `prefix.*` filter.
    #[serde(default)]
    pub event_type: Option<String>,
    /// RFC 3339; events received at or after it.
    pub since: String,
    #[serde(default)]
    pub until: Option<String>,
    /// Only to this subscription (it must be enabled; its filters still apply).
    #[serde(default)]
    pub subscription_id: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// The 202 answer of both.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkAccepted {
    /// The job's id (in its log lines); absent for a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Pairs (event, subscription) the job re-delivers.
    pub matched: u64,
    /// False when counting took too long and `matched` is a lower bound: the job itself
    /// still covers the whole range.
    pub matched_exact: bool,
    pub dry_run: bool,
    /// The range in force (`until` defaulted or limited to now).
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// States a recovery may select: a pair whose latest attempt is `retrying` has a retry pending.
const RECOVERABLE: [(&str, DeliveryState); 3] = [
    ("failed", DeliveryState::Failed),
    ("skipped", DeliveryState::Skipped),
    ("succeeded", DeliveryState::Succeeded),
];

impl Admin {
    /// Re-delivers, as a new attempt series each, the subscription's pairs whose latest attempt
    /// is in `states` and started within the range.
    pub async fn recover_subscription(
        &self,
        id: &str,
        req: RecoverRequest,
    ) -> AdminResult<BulkAccepted> {
        let now = Utc::now();
        let (since, until) = range(&req.since, req.until.as_deref(), now)?;
        let states = recover_states(req.states.as_deref())?;
        let subscription = self.load_subscription(id).await?;
        enabled(&subscription)?;
        let job = RecoverJob {
            job_id: new_id("job"),
            subscription_id: subscription.id,
            since,
            until,
            states,
            started_at: now,
            cursor: None,
            enqueued: 0,
        };
        let count = count_recover(&self.backend, &job, COUNT_BUDGET).await?;
        let job_id = job.job_id.clone();
        self.start(Task::Recover(job), req.dry_run, count, job_id, since, until)
            .await
    }

    /// Replays the events received within the range (of a source, of a type) to their matching
    /// enabled subscriptions, or to the one named.
    pub async fn replay_events(&self, req: BulkReplayRequest) -> AdminResult<BulkAccepted> {
        let now = Utc::now();
        let (since, until) = range(&req.since, req.until.as_deref(), now)?;
        super::events_query::check_selection(req.source.as_deref(), req.event_type.as_deref())?;
        if let Some(sub_id) = &req.subscription_id {
            enabled(&self.load_subscription(sub_id).await?)?;
        }
        let job = ReplayJob {
            job_id: new_id("job"),
            source_id: req.source,
            event_type: req.event_type,
            subscription_id: req.subscription_id,
            since,
            until,
            started_at: now,
            after: None,
            enqueued: 0,
        };
        let count = count_replay(&self.backend, &job, COUNT_BUDGET).await?;
        let job_id = job.job_id.clone();
        self.start(Task::Replay(job), req.dry_run, count, job_id, since, until)
            .await
    }

    /// Enqueues the job's first page (unless a dry run) and makes the answer.
    async fn start(
        &self,
        first_page: Task,
        dry_run: bool,
        count: Count,
        job_id: String,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> AdminResult<BulkAccepted> {
        if !dry_run {
            self.backend
                .queue
                .send(&first_page, std::time::Duration::ZERO)
                .await?;
            tracing::info!(
                job_id,
                matched = count.matched,
                matched_exact = count.exact,
                "bulk job started"
            );
        }
        Ok(BulkAccepted {
            job_id: (!dry_run).then_some(job_id),
            matched: count.matched,
            matched_exact: count.exact,
            dry_run,
            since,
            until,
        })
    }
}

fn enabled(subscription: &crate::domain::Subscription) -> AdminResult<()> {
    if subscription.enabled {
        Ok(())
    } else {
        Err(invalid(
            "subscription_disabled",
            format!(
                "subscription {} is disabled; enable it first",
                subscription.id
            ),
        ))
    }
}

/// `[since, until]`, `until` defaulting to (and limited to) `now`.
fn range(
    since: &str,
    until: Option<&str>,
    now: DateTime<Utc>,
) -> AdminResult<(DateTime<Utc>, DateTime<Utc>)> {
    let since = time("since", since)?;
    let until = match until {
        Some(until) => time("until", until)?.min(now),
        None => now,
    };
    if since > until {
        return Err(invalid(
            "invalid_range",
            format!("since ({since}) is after until ({until}, or now)"),
        ));
    }
    Ok((since, until))
}

fn time(field: &str, value: &str) -> AdminResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            invalid(
                "invalid_time",
                format!("{field} {value:?} is not an RFC 3339 time: {e}"),
            )
        })
}

fn recover_states(states: Option<&[String]>) -> AdminResult<Vec<DeliveryState>> {
    let Some(states) = states else {
        return Ok(vec![DeliveryState::Failed, DeliveryState::Skipped]);
    };
    if states.is_empty() {
        return Err(invalid(
            "invalid_state",
            "states must name at least one state",
        ));
    }
    states
        .iter()
        .map(|name| {
            RECOVERABLE
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, state)| *state)
                .ok_or_else(|| {
                    invalid(
                        "invalid_state",
                        format!("{name:?} is not a recoverable state (failed, skipped, succeeded)"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ok = |since: &str, until: Option<&str>| range(since, until, now).is_ok();
        assert!(ok("2026-01-01T00:00:00Z", None));
        assert!(ok(
            "2026-01-01T00:00:00+02:00",
            Some("2026-01-01T12:00:00Z")
        ));
        // A future until is limited to now.
        let (_, until) = range("2026-01-01T00:00:00Z", Some("2030-01-01T00:00:00Z"), now).unwrap();
        assert_eq!(until, now);
        assert!(!ok("yesterday", None));
        assert!(!ok("2026-01-01", None));
        assert!(!ok("2026-01-01T00:00:00Z", Some("2025-12-31T00:00:00Z")));
        assert!(!ok("2027-01-01T00:00:00Z", None));
    }

    #[test]
    fn states() {
        let names = |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            recover_states(None).unwrap(),
            [DeliveryState::Failed, DeliveryState::Skipped]
        );
        assert_eq!(
            recover_states(Some(&names(&["succeeded"]))).unwrap(),
            [DeliveryState::Succeeded]
        );
        for bad in [&[][..], &["retrying"], &["failed", "lost"], &["FAILED"]] {
            assert!(recover_states(Some(&names(bad))).is_err(), "{bad:?}");
        }
    }
}

//! Delivery decisions as data: what an attempt's outcome means for its (event, subscription)
//! pair. [`judge`] is the one place that turns an [`Outcome`] into a [`Verdict`]; the dispatcher,
//! the admin replay and the queue adapters only carry verdicts out. Endpoint health (circuit
//! breaker, auto-disable) is decided in [`health`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Attempt, DeliveryState};
use crate::retry::{parse_retry_after, RetryPolicy};

pub mod health;
pub mod rate;

pub use health::{
    Circuit, DisabledReason, Gate, Health, HealthChange, HealthOutcome, HealthPolicy,
};

/// Why an attempt got no HTTP status. `code()` is what the attempt log stores and the README's
/// table lists (a test keeps the two equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryError {
    Timeout,
    Connect,
    Dns,
    Tls,
    Blocked,
    Request,
    Signing,
    TransformFailed,
}

impl DeliveryError {
    pub const ALL: [DeliveryError; 8] = [
        Self::Timeout,
        Self::Connect,
        Self::Dns,
        Self::Tls,
        Self::Blocked,
        Self::Request,
        Self::Signing,
        Self::TransformFailed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Blocked => "blocked",
            Self::Request => "request",
            Self::Signing => "signing",
            Self::TransformFailed => "transform_failed",
        }
    }

    /// One line for the README's error code table.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Timeout => "no complete answer within the request timeout (15 s)",
            Self::Connect => "the TCP connection failed (refused, reset, unreachable)",
            Self::Dns => "the host name did not resolve",
            Self::Tls => "the TLS handshake failed (certificate, protocol)",
            Self::Blocked => "the address is not public and the SSRF guard is on; nothing was sent",
            Self::Request => "any other transport failure (malformed URL, broken response)",
            Self::Signing => {
                "the subscription's secret could not sign the delivery; nothing was sent"
            }
            Self::TransformFailed => {
                "the subscription's jq filter or transform failed on this event (the reason is \
                 the response excerpt); nothing was sent, not retried: replay after fixing it"
            }
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }

    /// The README table (header included), generated from the enum.
    pub fn markdown_table() -> String {
        let mut table = String::from("| code | meaning |\n| --- | --- |\n");
        for e in Self::ALL {
            table.push_str(&format!("| `{}` | {} |\n", e.code(), e.meaning()));
        }
        table
    }
}

impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An attempt and the series it belongs to: the original delivery (starting at 1), or a replay
/// or recovery (starting after the pair's last recorded attempt). The retry schedule restarts
/// with each series; attempt numbers never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub attempt: u32,
    pub start: u32,
}

impl Series {
    pub const FIRST: Series = Series {
        attempt: 1,
        start: 1,
    };

    pub fn new(attempt: u32, start: u32) -> Self {
        Self { attempt, start }
    }

    /// The series a task carries; `None` when the numbers contradict each other.
    pub fn from_task(attempt: u32, series_start: Option<u32>) -> Option<Self> {
        let start = series_start.unwrap_or(1);
        (attempt > 0 && start > 0 && start <= attempt).then_some(Self::new(attempt, start))
    }

    /// A new series after the pair's `latest` attempt (replay, recovery). A retry still pending
    /// keeps its number, so the new series takes the one after it.
    pub fn after(latest: Option<&Attempt>) -> Self {
        let start = match latest {
            None => 1,
            Some(a) if a.state == DeliveryState::Retrying => a.attempt + 2,
            Some(a) => a.attempt + 1,
        };
        Self::new(start, start)
    }

    /// 1-based position in the retry schedule.
    pub fn position(self) -> u32 {
        self.attempt - self.start + 1
    }

    pub fn next(self) -> Self {
        Self::new(self.attempt + 1, self.start)
    }

    pub fn is_replay(self) -> bool {
        self.start > 1
    }

    /// `series_start` as tasks carry it: absent for the original series.
    pub fn task_start(self) -> Option<u32> {
        (self.start > 1).then_some(self.start)
    }
}

/// What is known about one attempt of a pair when it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The subscriber answered.
    Status {
        code: u16,
        /// The raw `Retry-After` header, honoured on 429 and 503.
        retry_after: Option<String>,
    },
    /// No answer.
    Failed(DeliveryError),
    /// Not attempted: the subscription is disabled.
    Disabled,
    /// Not attempted: the endpoint's circuit is open until then.
    CircuitOpen { until: DateTime<Utc> },
    /// Not attempted: the subscription's rate limit has no slot near enough; try at `until`.
    RateLimited { until: DateTime<Utc> },
}

impl Outcome {
    pub fn error(&self) -> Option<DeliveryError> {
        match self {
            Self::Failed(e) => Some(*e),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Why a delivery was skipped without an HTTP call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    SubscriptionDisabled,
}

/// What happens to the pair after an attempt (or instead of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Failed; the next attempt of the series goes out after this wait.
    Retry {
        after: Duration,
    },
    /// Failed, and the schedule has no attempt left.
    Exhausted,
    /// The endpoint answered 410 Gone: no retry, and the subscription is disabled.
    Gone,
    /// Failed on Hookhub's side before anything was sent (the subscription's transform): no
    /// retry, since the same input fails the same way, and no mark against the endpoint.
    Rejected,
    /// Not attempted (no attempt number used, nothing logged): the same attempt is re-scheduled
    /// for `until`.
    Parked {
        until: DateTime<Utc>,
    },
    /// Not attempted, logged as `skipped` and not retried (recoverable later).
    Skipped {
        reason: SkipReason,
    },
}

impl Verdict {
    /// The state an attempt-log entry records; `None` for a parked delivery, which logs none.
    pub fn state(self) -> Option<DeliveryState> {
        Some(match self {
            Self::Succeeded => DeliveryState::Succeeded,
            Self::Retry { .. } => DeliveryState::Retrying,
            Self::Exhausted | Self::Gone | Self::Rejected => DeliveryState::Failed,
            Self::Skipped { .. } => DeliveryState::Skipped,
            Self::Parked { .. } => return None,
        })
    }

    /// The wait before the next attempt of the series, if one is scheduled.
    pub fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Retry { after } => Some(after),
            _ => None,
        }
    }

    /// What the outcome tells about the endpoint's health; `None` when nothing was sent.
    pub fn health(self) -> Option<HealthOutcome> {
        match self {
            Self::Succeeded => Some(HealthOutcome::Success),
            Self::Retry { .. } | Self::Exhausted | Self::Gone => Some(HealthOutcome::Failure),
            Self::Parked { .. } | Self::Skipped { .. } | Self::Rejected => None,
        }
    }
}

/// The decision about attempt `series.attempt` of a pair, given its outcome. Pure: jitter comes
/// from the policy's random source only through [`RetryPolicy::next_delay`] (zero jitter in
/// tests makes it deterministic).
pub fn judge(
    outcome: &Outcome,
    series: Series,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Verdict {
    let retry_after = match outcome {
        Outcome::Disabled => {
            return Verdict::Skipped {
                reason: SkipReason::SubscriptionDisabled,
            }
        }
        Outcome::CircuitOpen { until } | Outcome::RateLimited { until } => {
            return Verdict::Parked { until: *until }
        }
        Outcome::Failed(DeliveryError::TransformFailed) => return Verdict::Rejected,
        Outcome::Status {
            code: 200..=299, ..
        } => return Verdict::Succeeded,
        Outcome::Status { code: 410, .. } => return Verdict::Gone,
        Outcome::Status {
            code: 429 | 503,
            retry_after: Some(value),
        } => parse_retry_after(value, now.into()),
        Outcome::Status { .. } | Outcome::Failed(_) => None,
    };
    match policy.next_delay(series.position(), retry_after) {
        Some(after) => Verdict::Retry { after },
        None => Verdict::Exhausted,
    }
}

#[cfg(test)]
mod tests;

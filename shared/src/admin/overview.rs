//! What the console's header and events list show beyond the stored rows: counts of a recent
//! window (`GET /v1/stats`) and each event's delivery state (`GET /v1/events/states`). Both are
//! computed from the existing ports' reads, with a fixed ceiling on the rows read per request.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{invalid, Admin, AdminResult};
use crate::bulk::{id_ceiling, id_floor};
use crate::domain::{Attempt, DeliveryState};
use crate::ports::EventRange;

/// Longest `window` of `GET /v1/stats`.
pub const STATS_MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Rows (events, and attempts) one stats request reads at most; beyond it the counts are
/// lower bounds and `capped` is true. Keeps a request's cost bounded on a busy deployment.
/// Counted as returned: on DynamoDB a page also reads the attempts planned within the minute
/// before the window and left out of it, up to a minute's more per subscription.
pub const STATS_MAX_ROWS: usize = 10_000;
/// Ids one `GET /v1/events/states` request takes at most (one attempts read each).
pub const STATES_MAX_IDS: usize = 100;
const PAGE: usize = 500;

/// Where an event's deliveries stand, from the latest attempt of each subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Every subscription's latest attempt succeeded.
    Delivered,
    /// Some subscription's latest attempt failed (retrying, failed for good, or skipped).
    Failing,
    /// No attempt yet (queued, or no subscription matched it).
    Pending,
}

impl EventState {
    pub fn code(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failing => "failing",
            Self::Pending => "pending",
        }
    }
}

/// The state of one event given its attempts (any order, any subscriptions).
pub fn event_state(attempts: &[Attempt]) -> EventState {
    let mut latest: BTreeMap<&str, &Attempt> = BTreeMap::new();
    for a in attempts {
        let slot = latest.entry(a.subscription_id.as_str()).or_insert(a);
        if (a.attempt, a.started_at) > (slot.attempt, slot.started_at) {
            *slot = a;
        }
    }
    if latest.is_empty() {
        EventState::Pending
    } else if latest.values().all(|a| a.state == DeliveryState::Succeeded) {
        EventState::Delivered
    } else {
        EventState::Failing
    }
}

/// `GET /v1/stats` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub window_seconds: u64,
    pub since: DateTime<Utc>,
    /// Events received in the window.
    pub received: usize,
    /// Events with attempts in the window whose deliveries all succeeded.
    pub delivered: usize,
    /// Events with attempts in the window, some delivery of which is failing.
    pub failing: usize,
    /// True when [`STATS_MAX_ROWS`] was reached: the counts are lower bounds.
    pub capped: bool,
}

/// One row of `GET /v1/events/states`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventStateView {
    pub id: String,
    pub state: EventState,
    pub attempts: usize,
}

/// Parses `window` (humantime, `1m` to `24h`); one hour when absent.
pub fn parse_window(text: Option<&str>) -> AdminResult<Duration> {
    let Some(text) = text else {
        return Ok(Duration::from_secs(3600));
    };
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d >= Duration::from_secs(60) && d <= STATS_MAX_WINDOW => Ok(d),
        _ => Err(invalid(
            "invalid_window",
            format!("window must be a duration from 1m to 24h (e.g. 1h), not {text:?}"),
        )),
    }
}

impl Admin {
    /// Counts of the last `window`: events received (an id-range scan, ids being receive-time
    /// ULIDs) and, per event with attempts in the window, its state (a time-range scan of each
    /// subscription's attempts). At most [`STATS_MAX_ROWS`] rows of each are read.
    pub async fn stats(&self, window: Duration) -> AdminResult<Stats> {
        let now = Utc::now();
        let since = now - chrono::Duration::from_std(window).unwrap_or_default();
        let mut capped = false;

        let mut received = 0;
        let mut range = EventRange {
            source_id: None,
            after: id_floor(since),
            through: id_ceiling(now),
        };
        loop {
            let page = self.backend.events.events_page(&range, PAGE).await?;
            received += page.len();
            match page.last() {
                Some(last) if page.len() == PAGE => range.after = last.id.clone(),
                _ => break,
            }
            if received >= STATS_MAX_ROWS {
                capped = true;
                break;
            }
        }

        let mut by_event: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
        let mut read = 0;
        'subs: for sub in self.backend.subscriptions.list_subscriptions().await? {
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .backend
                    .attempts
                    .attempts_for_subscription_page(&sub.id, since, now, cursor.as_deref(), PAGE)
                    .await?;
                read += page.attempts.len();
                for a in page.attempts {
                    by_event.entry(a.event_id.clone()).or_default().push(a);
                }
                if read >= STATS_MAX_ROWS {
                    capped = true;
                    break 'subs;
                }
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        let states: Vec<EventState> = by_event.values().map(|a| event_state(a)).collect();
        let count = |s: EventState| states.iter().filter(|x| **x == s).count();
        Ok(Stats {
            window_seconds: window.as_secs(),
            since,
            received,
            delivered: count(EventState::Delivered),
            failing: count(EventState::Failing),
            capped,
        })
    }

    /// The delivery state of each listed event, in the order given (an unknown id has no
    /// attempts: `pending`): one attempts read per id, at most [`STATES_MAX_IDS`].
    pub async fn event_states(&self, ids: &str) -> AdminResult<Vec<EventStateView>> {
        let ids: Vec<&str> = ids
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if ids.len() > STATES_MAX_IDS {
            return Err(invalid(
                "too_many_ids",
                format!("at most {STATES_MAX_IDS} ids per request"),
            ));
        }
        let reads = ids
            .iter()
            .map(|id| self.backend.attempts.attempts_for_event(id));
        let results = futures::future::join_all(reads).await;
        let mut out = Vec::with_capacity(ids.len());
        for (id, attempts) in ids.iter().zip(results) {
            let attempts = attempts?;
            out.push(EventStateView {
                id: (*id).to_owned(),
                state: event_state(&attempts),
                attempts: attempts.len(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(sub: &str, n: u32, state: DeliveryState) -> Attempt {
        serde_json::from_value(serde_json::json!({
            "event_id": "evt_1", "subscription_id": sub, "attempt": n, "state": state,
            "url": "http://127.0.0.1/", "started_at": Utc::now(), "duration_ms": 1,
        }))
        .unwrap()
    }

    #[test]
    fn event_state_table() {
        use DeliveryState::*;
        // (subscription, attempt number, state) rows → the event's state.
        type Rows = &'static [(&'static str, u32, DeliveryState)];
        let cases: &[(Rows, EventState)] = &[
            (&[], EventState::Pending),
            (&[("a", 1, Succeeded)], EventState::Delivered),
            (&[("a", 1, Retrying)], EventState::Failing),
            (
                &[("a", 1, Failed), ("a", 2, Succeeded)],
                EventState::Delivered,
            ),
            // The latest attempt decides, whatever the order they come in.
            (
                &[("a", 2, Succeeded), ("a", 1, Failed)],
                EventState::Delivered,
            ),
            (
                &[("a", 1, Succeeded), ("a", 2, Failed)],
                EventState::Failing,
            ),
            (
                &[("a", 1, Succeeded), ("b", 1, Skipped)],
                EventState::Failing,
            ),
            (
                &[("a", 1, Succeeded), ("b", 3, Succeeded)],
                EventState::Delivered,
            ),
        ];
        for (rows, want) in cases {
            let attempts: Vec<Attempt> =
                rows.iter().map(|(s, n, st)| attempt(s, *n, *st)).collect();
            assert_eq!(event_state(&attempts), *want, "{rows:?}");
        }
    }

    #[test]
    fn window_parsing() {
        assert_eq!(parse_window(None).unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_window(Some("15m")).unwrap(), Duration::from_secs(900));
        for bad in ["", "0s", "30s", "25h", "soon", "-1h"] {
            assert!(parse_window(Some(bad)).is_err(), "{bad}");
        }
    }
}

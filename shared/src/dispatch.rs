//! The dispatcher service: turn queue tasks into signed deliveries, log every attempt and
//! schedule retries per (event, subscription) pair.
//!
//! Idempotence: a task may run more than once (queue redelivery after a crash, a sweep that
//! enqueued twice). Before delivering attempt `n` of a pair, the attempt log is consulted: a pair
//! that already succeeded, or already has attempt `n`, is not delivered again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use futures::stream::{self, StreamExt};
use http::{HeaderMap, HeaderValue};

use crate::delivery::{DeliveryClient, DeliveryResponse};
use crate::domain::{Attempt, DeliveryState, Event, Subscription, Task};
use crate::jq::Prepared;
use crate::ports::{Backend, ReceivedTask, StoreError};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::signing;

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub retry: RetryPolicy,
    /// Deliveries of one event in flight at once.
    pub fan_out_concurrency: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            fan_out_concurrency: 16,
        }
    }
}

/// What to do with a processed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Done (delivered, retry scheduled, or nothing to do): delete the message.
    Done,
    /// Can never be processed: move it to the dead-letter queue.
    Malformed(String),
}

/// Infrastructure failures: the message stays on the queue and is tried again.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Dispatcher {
    backend: Backend,
    client: DeliveryClient,
    config: Arc<DispatcherConfig>,
}

impl Dispatcher {
    pub fn new(backend: Backend, client: DeliveryClient, config: DispatcherConfig) -> Self {
        Self {
            backend,
            client,
            config: Arc::new(config),
        }
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Processes one queue message. `receive_count > 1` means an earlier run may have stopped
    /// half-way, which is when missing retry tasks are re-sent.
    pub async fn process(&self, message: &ReceivedTask) -> Result<TaskOutcome, DispatchError> {
        let task = match Task::from_json(&message.body) {
            Ok(task) => task,
            Err(e) => return Ok(TaskOutcome::Malformed(format!("not a task: {e}"))),
        };
        let redelivered = message.receive_count > 1;
        match task {
            Task::Dispatch { event_id } => self.fan_out(&event_id, redelivered).await?,
            Task::Deliver {
                event_id,
                subscription_id,
                attempt,
                series_start,
                ..
            } => {
                let series = Series::new(attempt, series_start.unwrap_or(1));
                if attempt == 0 || series.start > attempt {
                    return Ok(TaskOutcome::Malformed(format!(
                        "attempt {attempt} does not belong to a series starting at {}",
                        series.start
                    )));
                }
                self.deliver_pair(&event_id, &subscription_id, series, redelivered)
                    .await?
            }
        }
        Ok(TaskOutcome::Done)
    }

    /// First delivery of an event to every matching subscription, concurrently.
    async fn fan_out(&self, event_id: &str, redelivered: bool) -> Result<(), DispatchError> {
        let Some(event) = self.backend.events.get_event(event_id).await? else {
            tracing::warn!(event_id, "dispatch task for an event that no longer exists");
            return Ok(());
        };
        let subscriptions = matching_subscriptions(&self.backend, &event).await?;
        if subscriptions.is_empty() {
            tracing::info!(event_id, event_type = %event.event_type, "no matching subscription");
            return Ok(());
        }
        let latest = latest_attempts(self.backend.attempts.attempts_for_event(event_id).await?);
        let event = Arc::new(event);
        let mut resends = Vec::new();
        let mut work = Vec::new();
        let first = Series::new(1, 1);
        for subscription in subscriptions {
            match plan(latest.get(subscription.id.as_str()), first, redelivered) {
                Plan::Deliver => work.push(subscription),
                Plan::Skip => {}
                Plan::Resend(task, delay) => resends.push((task, delay)),
            }
        }
        if !resends.is_empty() {
            self.backend.queue.send_batch(&resends).await?;
        }
        // Each pair schedules its own retry as soon as its attempt ends: a slow sibling must
        // not hold it back.
        let results: Vec<Result<(), StoreError>> = stream::iter(work)
            .map(|subscription| {
                let event = event.clone();
                async move { self.attempt(&event, &subscription, first).await }
            })
            .buffer_unordered(self.config.fan_out_concurrency.max(1))
            .collect()
            .await;
        // Report a pair that failed to record or schedule, so the task runs again (recorded
        // pairs are skipped then, or their retry re-sent).
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Attempt `series.attempt` of one (event, subscription) pair.
    async fn deliver_pair(
        &self,
        event_id: &str,
        subscription_id: &str,
        series: Series,
        redelivered: bool,
    ) -> Result<(), DispatchError> {
        let Some(event) = self.backend.events.get_event(event_id).await? else {
            tracing::warn!(event_id, "retry for an event that no longer exists");
            return Ok(());
        };
        let subscription = match self
            .backend
            .subscriptions
            .get_subscription(subscription_id)
            .await?
        {
            Some(s) if s.enabled => s,
            _ => {
                tracing::info!(
                    event_id,
                    subscription_id,
                    "subscription deleted or disabled; retry dropped"
                );
                return Ok(());
            }
        };
        let prior: Vec<Attempt> = self
            .backend
            .attempts
            .attempts_for_event(event_id)
            .await?
            .into_iter()
            .filter(|a| a.subscription_id == subscription_id)
            .collect();
        let latest = prior.iter().max_by_key(|a| a.attempt);
        match plan(latest, series, redelivered) {
            Plan::Deliver => self.attempt(&event, &subscription, series).await?,
            Plan::Skip => {}
            Plan::Resend(task, delay) => self.backend.queue.send(&task, delay).await?,
        }
        Ok(())
    }

    /// Delivers once, records the attempt, then schedules the retry, if any.
    async fn attempt(
        &self,
        event: &Event,
        subscription: &Subscription,
        series: Series,
    ) -> Result<(), StoreError> {
        let attempt = series.attempt;
        let started_at = Utc::now();
        // The subscription's jq filter and transform decide what (if anything) is sent.
        let response = match crate::jq::prepare(event, subscription).await {
            Prepared::FilteredOut => {
                tracing::info!(
                    event_id = %event.id,
                    subscription_id = %subscription.id,
                    attempt,
                    "filtered out by the subscription's filter; not delivered"
                );
                return Ok(());
            }
            Prepared::Deliver(payload) => {
                match signed_headers(&payload, subscription, started_at.timestamp()) {
                    Ok(headers) => {
                        self.client
                            .post(&subscription.url, headers, payload.body.clone())
                            .await
                    }
                    Err(_) => DeliveryResponse {
                        status: None,
                        error: Some("signing"),
                        retry_after: None,
                        excerpt: None,
                        duration: Duration::ZERO,
                    },
                }
            }
            Prepared::Failed(message) => DeliveryResponse {
                status: None,
                error: Some("transform_failed"),
                retry_after: None,
                excerpt: Some(message),
                duration: (Utc::now() - started_at).to_std().unwrap_or_default(),
            },
        };

        let gone = response.status == Some(410);
        let (state, next) = if response.is_success() {
            (DeliveryState::Succeeded, None)
        } else if gone || response.error == Some("transform_failed") {
            // The same input fails the same transform again: no retry (replay after a fix).
            (DeliveryState::Failed, None)
        } else {
            let retry_after = match response.status {
                Some(429 | 503) => response
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
                _ => None,
            };
            match self.config.retry.next_delay(series.position(), retry_after) {
                Some(delay) => (DeliveryState::Retrying, Some(delay)),
                None => (DeliveryState::Failed, None),
            }
        };
        let record = Attempt {
            event_id: event.id.clone(),
            subscription_id: subscription.id.clone(),
            attempt,
            url: subscription.url.clone(),
            started_at,
            duration_ms: response.duration.as_millis() as u64,
            status_code: response.status,
            error: response.error.map(str::to_string),
            response_excerpt: response.excerpt.clone(),
            state,
            next_attempt_at: next
                .map(|d| started_at + chrono::Duration::from_std(d).unwrap_or_default()),
        };
        tracing::info!(
            event_id = %event.id,
            subscription_id = %subscription.id,
            attempt,
            status = ?response.status,
            error = ?response.error,
            state = ?state,
            duration_ms = record.duration_ms,
            "delivery attempt"
        );
        self.backend.attempts.record_attempt(&record).await?;
        if gone {
            self.disable(subscription, "the endpoint answered 410 Gone")
                .await?;
        }
        if let Some(delay) = next {
            let task = retry_task(event, subscription, series.next());
            self.backend.queue.send(&task, delay).await?;
        }
        Ok(())
    }

    async fn disable(&self, subscription: &Subscription, reason: &str) -> Result<(), StoreError> {
        // Only the three fields change, so a concurrent admin change is not overwritten (and
        // the dispatcher needs no right to replace whole subscriptions).
        let disabled = self
            .backend
            .subscriptions
            .disable_subscription(&subscription.id, reason, Utc::now())
            .await?;
        if disabled {
            tracing::warn!(subscription_id = %subscription.id, reason, "subscription disabled");
        }
        Ok(())
    }
}

/// The enabled subscriptions that want `event`.
pub async fn matching_subscriptions(
    backend: &Backend,
    event: &Event,
) -> Result<Vec<Subscription>, StoreError> {
    Ok(backend
        .subscriptions
        .list_subscriptions()
        .await?
        .into_iter()
        .filter(|s| s.matches(&event.source_id, &event.event_type))
        .collect())
}

enum Plan {
    Deliver,
    Skip,
    /// The attempt was made and recorded by an earlier run that stopped before scheduling the
    /// retry: schedule it now.
    Resend(Task, Duration),
}

/// An attempt and the series it belongs to (the original delivery, or a replay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Series {
    attempt: u32,
    start: u32,
}

impl Series {
    fn new(attempt: u32, start: u32) -> Self {
        Self { attempt, start }
    }

    /// 1-based position in the retry schedule.
    fn position(self) -> u32 {
        self.attempt - self.start + 1
    }

    fn next(self) -> Self {
        Self::new(self.attempt + 1, self.start)
    }

    fn is_replay(self) -> bool {
        self.start > 1
    }
}

/// Decides whether an attempt of a pair should be delivered, given the pair's latest recorded
/// attempt.
fn plan(latest: Option<&Attempt>, series: Series, redelivered: bool) -> Plan {
    let Some(latest) = latest else {
        return Plan::Deliver;
    };
    if latest.attempt < series.attempt {
        // A success ends the series; only a replay's first attempt goes out after one.
        return if latest.succeeded() && !(series.is_replay() && series.attempt == series.start) {
            Plan::Skip
        } else {
            Plan::Deliver
        };
    }
    match (
        latest.attempt == series.attempt,
        redelivered,
        latest.next_attempt_at,
    ) {
        (true, true, Some(next)) if latest.state == DeliveryState::Retrying => {
            let delay = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            Plan::Resend(
                deliver_task(&latest.event_id, &latest.subscription_id, series.next()),
                delay,
            )
        }
        _ => Plan::Skip,
    }
}

fn latest_attempts(attempts: Vec<Attempt>) -> HashMap<String, Attempt> {
    let mut latest: HashMap<String, Attempt> = HashMap::new();
    for a in attempts {
        match latest.get(&a.subscription_id) {
            Some(existing) if existing.attempt >= a.attempt => {}
            _ => {
                latest.insert(a.subscription_id.clone(), a);
            }
        }
    }
    latest
}

fn retry_task(event: &Event, subscription: &Subscription, series: Series) -> Task {
    deliver_task(&event.id, &subscription.id, series)
}

fn deliver_task(event_id: &str, subscription_id: &str, series: Series) -> Task {
    Task::Deliver {
        event_id: event_id.to_string(),
        subscription_id: subscription_id.to_string(),
        attempt: series.attempt,
        not_before: None,
        series_start: (series.start > 1).then_some(series.start),
    }
}

/// The Standard Webhooks headers plus the original content type.
pub fn signed_headers(
    event: &Event,
    subscription: &Subscription,
    timestamp: i64,
) -> Result<HeaderMap, signing::SigningError> {
    let at = chrono::DateTime::from_timestamp(timestamp, 0).unwrap_or_default();
    let signature = signing::signature_header_all(
        subscription.signing_secrets(at),
        &event.id,
        timestamp,
        &event.body,
    )?;
    let mut headers = HeaderMap::new();
    let value =
        |s: &str| HeaderValue::from_str(s).map_err(|_| signing::SigningError::MalformedSecret);
    headers.insert("webhook-id", value(&event.id)?);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    headers.insert("webhook-signature", value(&signature)?);
    let content_type = event
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        headers.insert(http::header::CONTENT_TYPE, ct);
    }
    crate::custom_headers::apply(&mut headers, subscription);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32, state: DeliveryState) -> Attempt {
        Attempt {
            event_id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            attempt: n,
            url: "https://example.com".into(),
            started_at: Utc::now(),
            duration_ms: 1,
            status_code: Some(500),
            error: None,
            response_excerpt: None,
            state,
            next_attempt_at: (state == DeliveryState::Retrying)
                .then(|| Utc::now() + chrono::Duration::seconds(30)),
        }
    }

    fn decide(
        latest: Option<&Attempt>,
        attempt: u32,
        start: u32,
        redelivered: bool,
    ) -> &'static str {
        match plan(latest, Series::new(attempt, start), redelivered) {
            Plan::Deliver => "deliver",
            Plan::Skip => "skip",
            Plan::Resend(..) => "resend",
        }
    }

    #[test]
    fn first_attempts_and_retries() {
        assert_eq!(decide(None, 1, 1, false), "deliver");
        let failed = attempt(1, DeliveryState::Retrying);
        assert_eq!(decide(Some(&failed), 2, 1, false), "deliver");
        // The same task again: already done.
        assert_eq!(decide(Some(&failed), 1, 1, false), "skip");
        // Redelivered after recording but maybe before scheduling: schedule again.
        assert_eq!(decide(Some(&failed), 1, 1, true), "resend");
    }

    #[test]
    fn success_ends_a_series_but_not_a_replay() {
        let ok = attempt(2, DeliveryState::Succeeded);
        assert_eq!(decide(Some(&ok), 3, 1, false), "skip");
        assert_eq!(decide(Some(&ok), 2, 1, true), "skip");
        assert_eq!(decide(Some(&ok), 3, 3, false), "deliver");
        // A replay's own retry after a success within it is not sent.
        let replay_ok = attempt(3, DeliveryState::Succeeded);
        assert_eq!(decide(Some(&replay_ok), 4, 3, false), "skip");
    }

    #[test]
    fn schedule_positions_restart_with_each_series() {
        assert_eq!(Series::new(1, 1).position(), 1);
        assert_eq!(Series::new(3, 1).position(), 3);
        assert_eq!(Series::new(9, 9).position(), 1);
        assert_eq!(Series::new(10, 9).position(), 2);
        assert_eq!(Series::new(9, 9).next(), Series::new(10, 9));
    }

    #[test]
    fn resent_retries_keep_their_series() {
        let failed = attempt(5, DeliveryState::Retrying);
        match plan(Some(&failed), Series::new(5, 5), true) {
            Plan::Resend(
                Task::Deliver {
                    attempt,
                    series_start,
                    ..
                },
                delay,
            ) => {
                assert_eq!((attempt, series_start), (6, Some(5)));
                assert!(delay <= Duration::from_secs(30));
            }
            _ => panic!("expected a resend"),
        }
    }
}

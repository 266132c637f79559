//! The dispatcher service: turn queue tasks into signed deliveries, log every attempt and
//! schedule retries per (event, subscription) pair.
//!
//! Idempotence: a task may run more than once (queue redelivery after a crash, a sweep that
//! enqueued twice). Before delivering attempt `n` of a pair, the attempt log is consulted: a pair
//! that already succeeded, or already has attempt `n`, is not delivered again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use http::{HeaderMap, HeaderValue};

use crate::decision::{
    judge, DeliveryError, DisabledReason, Gate, HealthPolicy, Outcome, Series, Verdict,
};
use crate::delivery::{DeliveryClient, DeliveryResponse};
use crate::domain::{
    Attempt, DeliveryState, Event, StoredPlan, Subscription, SubscriptionRoute, Task,
};
use crate::jq::Prepared;
use crate::metrics::{self, DeliveryOutcome};
use crate::operational::{self, OperationalEvent};
use crate::ports::{Backend, Confirmed, PlannedAttempt, ReceivedTask, StoreError};
use crate::retry::RetryPolicy;
use crate::signing;
use locks::{PerPair, PerSubscription};
use record::{as_planned, record_patiently, relies_on_stored_plan};

mod health;
mod locks;
mod rate_limit;
mod record;

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub retry: RetryPolicy,
    /// Circuit breaker and auto-disable.
    pub health: HealthPolicy,
    /// Deliveries of one event in flight at once.
    pub fan_out_concurrency: usize,
    /// A rate-limited delivery whose slot is at most this far ahead waits for it in-process;
    /// one further ahead is re-scheduled (well inside the Lambda timeout and the lease).
    pub rate_limit_max_wait: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            health: HealthPolicy::default(),
            fan_out_concurrency: 16,
            rate_limit_max_wait: Duration::from_secs(5),
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
    health_locks: PerSubscription<Option<health::Written>>,
    /// Per-subscription locks for rate-limit bookings (the same kind of map).
    slot_locks: PerSubscription<()>,
    /// One run at a time per (event, subscription) pair in this process ([`PerPair`]).
    pair_turns: PerPair,
}

impl Dispatcher {
    pub fn new(backend: Backend, client: DeliveryClient, config: DispatcherConfig) -> Self {
        Self {
            backend,
            client,
            config: Arc::new(config),
            health_locks: PerSubscription::default(),
            slot_locks: PerSubscription::default(),
            pair_turns: PerPair::default(),
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
            Task::Dispatch {
                event_id,
                event,
                sent_first,
            } => {
                let event = match event.map(|e| e.for_task(&event_id)).transpose() {
                    Ok(event) => event,
                    Err(reason) => return Ok(TaskOutcome::Malformed(reason)),
                };
                if let Some(sent_first) = &sent_first {
                    let Some(event) = &event else {
                        return Ok(TaskOutcome::Malformed(format!(
                            "dispatch task for {event_id} sent before its store without the event"
                        )));
                    };
                    let confirmed = self.backend.events.confirm_sent(event, sent_first);
                    match confirmed.await? {
                        Confirmed::Holder => {}
                        Confirmed::Superseded { original_id } => {
                            tracing::info!(
                                event_id,
                                original_id,
                                "duplicate sent ahead of its store; the original is delivered"
                            );
                            return Ok(TaskOutcome::Done);
                        }
                        Confirmed::Unverifiable => {
                            tracing::warn!(
                                event_id,
                                "task sent before its store arrived late, the event unstored"
                            );
                            return Ok(TaskOutcome::Malformed(format!(
                                "dispatch task for {event_id}, sent before its store, arrived \
                                 past its dedup window and 5 min without the event stored: \
                                 kept unsent"
                            )));
                        }
                    }
                }
                // The plan the receiver stored with the event, if it made one.
                let stored_plan = sent_first.and_then(|s| s.plan);
                self.fan_out(&event_id, event, stored_plan, redelivered)
                    .await?
            }
            Task::Deliver {
                event_id,
                subscription_id,
                attempt,
                series_start,
                ..
            } => {
                let Some(series) = Series::from_task(attempt, series_start) else {
                    return Ok(TaskOutcome::Malformed(format!(
                        "attempt {attempt} does not belong to a series starting at {}",
                        series_start.unwrap_or(1)
                    )));
                };
                self.deliver_pair(&event_id, &subscription_id, series, redelivered)
                    .await?
            }
            Task::Recover(job) => crate::bulk::run_recover_page(&self.backend, job).await?,
            Task::Replay(job) => crate::bulk::run_replay_page(&self.backend, job).await?,
        }
        Ok(TaskOutcome::Done)
    }

    /// First delivery of an event to every matching subscription, concurrently.
    /// `inline` is the event carried by the task, if any; otherwise it is read by id.
    /// `stored_plan`, stored with the event, already announces the attempts it names: they are
    /// looked for under it whatever this log's layout, and recorded under it when this log can
    /// rely on it ([`relies_on_stored_plan`]).
    async fn fan_out(
        &self,
        event_id: &str,
        inline: Option<Event>,
        stored_plan: Option<StoredPlan>,
        redelivered: bool,
    ) -> Result<(), DispatchError> {
        tracing::debug!(event_id, inline = inline.is_some(), "dispatching");
        let event = match inline {
            Some(event) => event,
            None => match self.backend.events.get_event(event_id).await? {
                Some(event) => event,
                None => {
                    tracing::warn!(event_id, "dispatch task for an event that no longer exists");
                    return Ok(());
                }
            },
        };
        // Disabled subscriptions too: the events they would get are logged as skipped.
        let subscriptions = wanting_subscriptions(&self.backend, &event).await?;
        if subscriptions.is_empty() {
            tracing::info!(event_id, event_type = %event.event_type, "no matching subscription");
            return Ok(());
        }
        // Each pair's turn, taken in id order (no two runs wait on each other), is held from this
        // read of the log until its attempt is recorded.
        let mut turns = HashMap::new();
        let mut ids: Vec<&str> = subscriptions.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let turn = self.pair_turns.of(event_id, id).lock_owned().await;
            turns.insert(id.to_owned(), turn);
        }
        let logged = self
            .backend
            .attempts
            .attempts_for_dispatch(&event, stored_plan.as_ref());
        let latest = latest_attempts(logged.await?);
        let event = Arc::new(event);
        let mut resends = Vec::new();
        let mut work = Vec::new();
        let first = Series::FIRST;
        for subscription in subscriptions {
            match plan(latest.get(subscription.id.as_str()), first, redelivered) {
                Plan::Deliver => work.push(subscription),
                Plan::Skip => {}
                Plan::Resend(task, delay) => resends.push((task, delay)),
            }
        }
        // Pairs not delivered now are done with: their retries need not wait for the fan-out.
        turns.retain(|id, _| work.iter().any(|s| s.id == *id));
        if !resends.is_empty() {
            self.backend.queue.send_batch(&resends).await?;
        }
        // Announced before any is made: a crash between a delivery and its record must not
        // leave that record where the event cannot find it (DynamoDB's plan records). Those
        // the stored plan names are announced already, planned at the event's receipt.
        let planned_at = Utc::now();
        let own_layout = self.backend.attempts.stored_plan_layout();
        let age = planned_at - event.received_at;
        let relied_on = (stored_plan.as_ref())
            .filter(|plan| relies_on_stored_plan(own_layout, plan.layout, age));
        let in_stored_plan =
            |s: &Subscription| relied_on.is_some_and(|plan| plan.covers(&s.id, first.attempt));
        let planned: Vec<PlannedAttempt> = work
            .iter()
            .filter(|s| !in_stored_plan(s))
            .map(|s| PlannedAttempt {
                subscription_id: s.id.clone(),
                attempt: first.attempt,
            })
            .collect();
        if !planned.is_empty() {
            self.backend
                .attempts
                .plan_attempts(event_id, planned_at, &planned)
                .await?;
        }
        // Each pair schedules its own retry as soon as its attempt ends: a slow sibling must
        // not hold it back.
        let results: Vec<Result<(), StoreError>> = stream::iter(work)
            .map(|subscription| {
                let event = event.clone();
                let planned = Some(match in_stored_plan(&subscription) {
                    true => event.received_at,
                    false => planned_at,
                });
                let turn = turns.remove(&subscription.id);
                async move {
                    let done = self.attempt(&event, &subscription, first, planned).await;
                    drop(turn);
                    done
                }
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
        let Some(subscription) = self
            .backend
            .subscriptions
            .get_subscription(subscription_id)
            .await?
        else {
            tracing::info!(
                event_id,
                subscription_id,
                "subscription deleted; retry dropped"
            );
            return Ok(());
        };
        if operational::excluded_subscription(&event).as_deref() == Some(subscription_id) {
            tracing::warn!(
                event_id,
                subscription_id,
                "operational event about this subscription; never delivered to it"
            );
            return Ok(());
        }
        let turn = self.pair_turns.of(event_id, subscription_id);
        let _turn = turn.lock().await;
        let prior = self
            .backend
            .attempts
            .attempts_for_pair(event_id, subscription_id)
            .await?;
        let latest = prior.iter().max_by_key(|a| a.attempt);
        match plan(latest, series, redelivered) {
            Plan::Deliver => self.attempt(&event, &subscription, series, None).await?,
            Plan::Skip => {}
            Plan::Resend(task, delay) => self.backend.queue.send(&task, delay).await?,
        }
        Ok(())
    }

    /// Judges whether the endpoint may be called now (disabled: skipped; circuit open: parked),
    /// delivers once if so, and carries out the verdict: log the attempt, schedule the retry or
    /// re-schedule the parked delivery, update the endpoint's health.
    async fn attempt(
        &self,
        event: &Event,
        subscription: &Subscription,
        series: Series,
        planned_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut started_at = Utc::now();
        // The subscription's jq filter and transform decide what, if anything, is sent; they
        // run before the gate so a filtered-out event never takes the breaker's probe.
        let payload = match crate::jq::prepare(event, subscription).await {
            Prepared::FilteredOut => {
                tracing::info!(
                    event_id = %event.id,
                    subscription_id = %subscription.id,
                    attempt = series.attempt,
                    "filtered out by the subscription's filter; not delivered"
                );
                metrics::delivery(&subscription.id, DeliveryOutcome::Filtered, None, None);
                return Ok(());
            }
            Prepared::Deliver(payload) => Ok(payload),
            Prepared::Failed(message) => Err(DeliveryResponse {
                status: None,
                error: Some(DeliveryError::TransformFailed),
                retry_after: None,
                excerpt: Some(message),
                duration: (Utc::now() - started_at).to_std().unwrap_or_default(),
            }),
        };
        // Past the rate limit: parked like an open circuit. After waiting for its slot, the
        // attempt starts now.
        let paced = match &payload {
            Ok(_) => self.pace(event, subscription).await?,
            Err(_) => None,
        };
        if payload.is_ok() && paced.is_none() {
            started_at = Utc::now();
        }
        let (outcome, response) = match (payload, paced) {
            (Err(failed), _) => (
                Outcome::Failed(DeliveryError::TransformFailed),
                Some(failed),
            ),
            (Ok(_), Some(until)) => (Outcome::RateLimited { until }, None),
            (Ok(payload), None) => match self.gate(subscription, started_at).await? {
                Some(outcome) => (outcome, None),
                None => {
                    let response = self.post(&payload, subscription, started_at).await;
                    let outcome = match (response.status, response.error) {
                        (Some(code), _) => Outcome::Status {
                            code,
                            retry_after: response.retry_after.clone(),
                        },
                        (None, error) => Outcome::Failed(error.unwrap_or(DeliveryError::Request)),
                    };
                    (outcome, Some(response))
                }
            },
        };
        let verdict = judge(&outcome, series, &self.config.retry, started_at);
        let Some(state) = verdict.state() else {
            // Parked: the same attempt again later, no number used, nothing logged.
            let until = match verdict {
                Verdict::Parked { until } => until,
                _ => started_at,
            };
            let reason = match outcome {
                Outcome::RateLimited { .. } => "rate_limit",
                _ => "circuit_open",
            };
            tracing::info!(
                event_id = %event.id,
                subscription_id = %subscription.id,
                attempt = series.attempt,
                until = %until,
                reason,
                "delivery parked"
            );
            metrics::delivery(&subscription.id, DeliveryOutcome::Parked, None, None);
            let delay = (until - started_at).to_std().unwrap_or(Duration::ZERO);
            return self
                .backend
                .queue
                .send(&retry_task(event, subscription, series), delay)
                .await;
        };
        let next = verdict.retry_after();
        let response_duration = response.as_ref().map(|r| r.duration);
        let record = Attempt {
            event_id: event.id.clone(),
            subscription_id: subscription.id.clone(),
            attempt: series.attempt,
            url: subscription.url.clone(),
            started_at,
            duration_ms: response
                .as_ref()
                .map_or(0, |r| r.duration.as_millis() as u64),
            status_code: outcome.status(),
            error: outcome.error().map(|e| e.code().to_string()),
            response_excerpt: response.and_then(|r| r.excerpt),
            state,
            next_attempt_at: next
                .map(|d| started_at + chrono::Duration::from_std(d).unwrap_or_default()),
        };
        tracing::info!(
            event_id = %event.id,
            subscription_id = %subscription.id,
            attempt = series.attempt,
            status = record.status_code,
            error = record.error.as_deref(),
            state = state.code(),
            duration_ms = record.duration_ms,
            "delivery attempt"
        );
        metrics::delivery_attempted(event, subscription, verdict, &outcome, response_duration);
        let planned_at = as_planned(planned_at, started_at);
        record_patiently(&*self.backend.attempts, &record, planned_at).await?;
        if verdict == Verdict::Exhausted && operational::emits_exhausted(event) {
            let exhausted = OperationalEvent::DeliveryExhausted {
                subscription_id: subscription.id.clone(),
                event_id: event.id.clone(),
                attempts: series.attempt,
            };
            operational::emit(&*self.backend.intake, &exhausted).await;
        }
        if verdict == Verdict::Gone {
            self.disable(subscription, DisabledReason::Gone).await?;
        }
        if let Some(delay) = next {
            let task = retry_task(event, subscription, series.next());
            self.backend.queue.send(&task, delay).await?;
        }
        if let Some(health) = verdict.health() {
            self.record_health(event, subscription, health, started_at)
                .await;
        }
        Ok(())
    }

    /// Why the endpoint must not be called now, if it must not: the subscription is disabled,
    /// or its circuit is open (a due probe is claimed here, and then the call goes ahead).
    async fn gate(
        &self,
        subscription: &Subscription,
        now: DateTime<Utc>,
    ) -> Result<Option<Outcome>, StoreError> {
        if !subscription.enabled {
            return Ok(Some(Outcome::Disabled));
        }
        let policy = &self.config.health;
        let health = match subscription.health.gate(now) {
            Gate::Deliver => return Ok(None),
            Gate::Park(until) => return Ok(Some(Outcome::CircuitOpen { until })),
            Gate::Probe => {
                let lock = self.health_locks.of(&subscription.id);
                let _one_at_a_time = lock.lock().await;
                match self
                    .backend
                    .subscriptions
                    .claim_probe(&subscription.id, now, policy)
                    .await?
                {
                    Some(claim) if claim.claimed => {
                        tracing::info!(subscription_id = %subscription.id, "circuit half-open; probing");
                        return Ok(None);
                    }
                    Some(claim) => claim.health,
                    // Deleted meanwhile: nothing is sent to it.
                    None => return Ok(Some(Outcome::Disabled)),
                }
            }
        };
        Ok(match health.gate(now) {
            Gate::Deliver => None,
            Gate::Park(until) => Some(Outcome::CircuitOpen { until }),
            // Someone else's claim is not visible yet: look again after one backoff.
            Gate::Probe => Some(Outcome::CircuitOpen {
                until: now + chrono::Duration::from_std(policy.probe_backoff).unwrap_or_default(),
            }),
        })
    }

    async fn post(
        &self,
        event: &Event,
        subscription: &Subscription,
        at: DateTime<Utc>,
    ) -> DeliveryResponse {
        match signed_headers(event, subscription, at.timestamp()) {
            Ok(headers) => {
                self.client
                    .post(&subscription.url, headers, event.body.clone())
                    .await
            }
            Err(_) => DeliveryResponse {
                status: None,
                error: Some(DeliveryError::Signing),
                retry_after: None,
                excerpt: None,
                duration: Duration::ZERO,
            },
        }
    }
}

/// Every subscription whose filters select `event`, enabled or not, but the one an operational
/// event is about ([`operational::excluded_subscription`]).
pub async fn wanting_subscriptions(
    backend: &Backend,
    event: &Event,
) -> Result<Vec<Subscription>, StoreError> {
    Ok(backend
        .subscriptions
        .list_subscriptions()
        .await?
        .into_iter()
        .filter(|s| wants(s, event))
        .collect())
}

/// Whether `subscription` wants `event` (enabled or not): its source and type filters, and not
/// an operational event about itself.
pub fn wants(subscription: &Subscription, event: &Event) -> bool {
    subscription.wants(&event.source_id, &event.event_type)
        && operational::excluded_subscription(event).as_deref() != Some(subscription.id.as_str())
}

/// [`wants`] from a subscription's route alone (the receiver's plan): the same answer.
pub fn route_wants(route: &SubscriptionRoute, event: &Event) -> bool {
    route.wants(&event.source_id, &event.event_type)
        && operational::excluded_subscription(event).as_deref() != Some(route.id.as_str())
}

/// The enabled subscriptions that want `event`.
pub async fn matching_subscriptions(
    backend: &Backend,
    event: &Event,
) -> Result<Vec<Subscription>, StoreError> {
    let mut wanting = wanting_subscriptions(backend, event).await?;
    wanting.retain(|s| s.enabled);
    Ok(wanting)
}

enum Plan {
    Deliver,
    Skip,
    /// The attempt was made and recorded by an earlier run that stopped before scheduling the
    /// retry: schedule it now.
    Resend(Task, Duration),
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

pub(crate) fn deliver_task(event_id: &str, subscription_id: &str, series: Series) -> Task {
    Task::Deliver {
        event_id: event_id.to_string(),
        subscription_id: subscription_id.to_string(),
        attempt: series.attempt,
        not_before: None,
        series_start: series.task_start(),
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
mod tests;

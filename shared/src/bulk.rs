//! Bulk recovery and bulk replay, run in the background one bounded page per queue task.
//!
//! The admin call validates the request, counts what matches and enqueues the job's first page
//! ([`Task::Recover`] / [`Task::Replay`]). The dispatcher processes one page per task: it reads
//! one page of the store (a subscription's attempts by start time, or events by id), sends the
//! page's deliver tasks with `send_batch`, then the task for the next page, and only then is the
//! message acked. A million matching pairs are so many small tasks, none near a timeout.
//!
//! Crash safety: a page is a pure function of its task and of the attempt log *before the job
//! started*. A pair with an attempt started since [`RecoverJob::started_at`] was dealt with
//! already (by this job's own delivery, before a crash) and is left alone; any other pair gets
//! the series [`Series::after`] its latest attempt, which is the same every time the page is
//! redone. A redone page therefore enqueues the very same `Deliver { attempt n, series_start n }`
//! tasks, which the dispatcher's per-attempt check (`dispatch::plan`) delivers once. Two records
//! of one attempt number (a task run twice at once) are recovered at the later one's row only,
//! so no two copies of one delivery task run; should that row be written after the page passed
//! its place, the pair is not recovered by this job.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::decision::Series;
use crate::dispatch::deliver_task;
use crate::domain::{Attempt, EventSummary, RecoverJob, ReplayJob, Subscription, Task};
use crate::operational::RecoveryKind;
use crate::ports::{Backend, EventRange, StoreResult};

/// Pairs (recovery: attempt-log rows) or events (replay) read per page of a job: a bounded
/// amount of work, far inside a dispatcher's timeout.
pub const PAGE_SIZE: usize = 100;
/// Rows per page when the admin call counts the matches (the same reads, fewer round trips).
const COUNT_PAGE_SIZE: usize = 1000;
/// How long the admin call may spend counting before it answers with a lower bound.
pub const COUNT_BUDGET: Duration = Duration::from_secs(10);
/// Attempt-log lookups in flight at once while a page is planned.
const LOOKUP_CONCURRENCY: usize = 16;

/// What one page amounts to: the deliveries to enqueue and the job's next page, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct PagePlan<J> {
    pub deliveries: Vec<Task>,
    pub next: Option<J>,
}

/// How many pairs a job matches. `exact` is false when counting ran out of [`COUNT_BUDGET`]:
/// `matched` is then what the pages read so far held, a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub matched: u64,
    pub exact: bool,
}

// ----- pure decisions -----

/// The series a recovery starts for the pair of attempt-log row `row`, given all the pair's
/// attempts; `None` when the pair is not recovered (by this row). A pair is recovered once, at
/// the row of its latest attempt, when that attempt is in the job's states and range, and only
/// when no attempt of the pair started since the job did.
pub fn recover_series(row: &Attempt, pair: &[Attempt], job: &RecoverJob) -> Option<Series> {
    let latest = latest_before(pair, job.started_at)?;
    let fresh = pair.iter().any(|a| a.started_at >= job.started_at);
    // The same number and start: two records of one number (a task run twice at once, each
    // recording its own delivery) are recovered at one of their rows only.
    let matches = latest.attempt == row.attempt
        && latest.started_at == row.started_at
        && job.states.contains(&latest.state)
        && job.since <= latest.started_at
        && latest.started_at <= job.until;
    (matches && !fresh).then(|| Series::after(Some(latest)))
}

/// The series a replay starts for an (event, subscription) pair with these attempts; `None`
/// when an attempt of the pair started since the job did.
pub fn replay_series(pair: &[Attempt], started_at: DateTime<Utc>) -> Option<Series> {
    if pair.iter().any(|a| a.started_at >= started_at) {
        return None;
    }
    Some(Series::after(latest_before(pair, started_at)))
}

/// The pair's latest attempt (by number, then start) that started before `at`.
fn latest_before(pair: &[Attempt], at: DateTime<Utc>) -> Option<&Attempt> {
    pair.iter()
        .filter(|a| a.started_at < at)
        .max_by_key(|a| (a.attempt, a.started_at))
}

/// Whether a replay job selects the event (the store already applied the source and id range).
pub fn replay_selects(job: &ReplayJob, event: &EventSummary) -> bool {
    job.event_type
        .as_deref()
        .is_none_or(|filter| crate::filter::matches(filter, &event.event_type))
}

/// The subscriptions a replay delivers `event` to: enabled ones whose filters want it, limited
/// to the one named by the job, if any.
pub fn replay_targets<'a>(
    job: &ReplayJob,
    subscriptions: &'a [Subscription],
    event: &EventSummary,
) -> Vec<&'a Subscription> {
    subscriptions
        .iter()
        .filter(|s| s.matches(&event.source_id, &event.event_type))
        .filter(|s| job.subscription_id.as_deref().is_none_or(|id| id == s.id))
        .collect()
}

/// The exclusive lower id bound of events received at or after `since`: event ids are
/// `evt_<ULID>`, whose first part is the receive time in milliseconds.
pub fn id_floor(since: DateTime<Utc>) -> String {
    match u64::try_from(since.timestamp_millis()) {
        Ok(ms) if ms > 0 => format!("evt_{}", ulid::Ulid::from_parts(ms - 1, u128::MAX)),
        _ => "evt_".to_owned(),
    }
}

/// The inclusive upper id bound of events received at or before `until`.
pub fn id_ceiling(until: DateTime<Utc>) -> String {
    let ms = u64::try_from(until.timestamp_millis()).unwrap_or(0);
    format!("evt_{}", ulid::Ulid::from_parts(ms, u128::MAX))
}

// ----- planning a page (store reads only, nothing sent) -----

/// One page of a recovery: the subscription's attempts after the job's cursor, and for each
/// row in the job's states, the pair's attempts (to find its latest).
pub async fn plan_recover_page(
    backend: &Backend,
    job: &RecoverJob,
    limit: usize,
) -> StoreResult<PagePlan<RecoverJob>> {
    let page = backend
        .attempts
        .attempts_for_subscription_page(
            &job.subscription_id,
            job.since,
            job.until,
            job.cursor.as_deref(),
            limit,
        )
        .await?;
    // Futures made up front (not in a stream closure) keep the page's future `Send`.
    let lookups: Vec<_> = page
        .attempts
        .iter()
        .filter(|row| job.states.contains(&row.state))
        .map(|row| recover_lookup(backend, job, row))
        .collect();
    let deliveries: Vec<Task> = stream::iter(lookups)
        .buffered(LOOKUP_CONCURRENCY)
        .try_collect::<Vec<Option<Task>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let next = page.cursor.map(|cursor| RecoverJob {
        cursor: Some(cursor),
        enqueued: job.enqueued + deliveries.len() as u64,
        ..job.clone()
    });
    Ok(PagePlan { deliveries, next })
}

/// The pair of attempt-log row `row`, read whole, and the delivery it gets, if any.
async fn recover_lookup(
    backend: &Backend,
    job: &RecoverJob,
    row: &Attempt,
) -> StoreResult<Option<Task>> {
    let pair = backend
        .attempts
        .attempts_for_pair(&row.event_id, &job.subscription_id)
        .await?;
    Ok(recover_series(row, &pair, job)
        .map(|series| deliver_task(&row.event_id, &job.subscription_id, series)))
}

/// The deliveries of one replayed event to its targets, numbered after each pair's attempts.
async fn replay_lookup(
    backend: &Backend,
    job: &ReplayJob,
    event: &EventSummary,
    targets: &[Subscription],
) -> StoreResult<Vec<Task>> {
    let attempts = backend.attempts.attempts_for_event(&event.id).await?;
    Ok(targets
        .iter()
        .filter_map(|sub| {
            let pair: Vec<Attempt> = attempts
                .iter()
                .filter(|a| a.subscription_id == sub.id)
                .cloned()
                .collect();
            replay_series(&pair, job.started_at)
                .map(|series| deliver_task(&event.id, &sub.id, series))
        })
        .collect())
}

/// The events of one replay page with their targets, and the job's next page.
async fn replay_page_targets(
    backend: &Backend,
    job: &ReplayJob,
    limit: usize,
) -> StoreResult<(Vec<(EventSummary, Vec<Subscription>)>, Option<String>)> {
    let range = EventRange {
        source_id: job.source_id.clone(),
        after: job.after.clone().unwrap_or_else(|| id_floor(job.since)),
        through: id_ceiling(job.until),
    };
    let events = backend.events.events_page(&range, limit).await?;
    let after = (events.len() >= limit)
        .then(|| events.last().map(|e| e.id.clone()))
        .flatten();
    if events.is_empty() {
        return Ok((Vec::new(), after));
    }
    let subscriptions = backend.subscriptions.list_subscriptions().await?;
    let targeted = events
        .into_iter()
        .filter(|event| replay_selects(job, event))
        .filter_map(|event| {
            let targets: Vec<Subscription> = replay_targets(job, &subscriptions, &event)
                .into_iter()
                .cloned()
                .collect();
            (!targets.is_empty()).then_some((event, targets))
        })
        .collect();
    Ok((targeted, after))
}

/// One page of a replay: events by id after the job's cursor, their targets, and for each
/// event with a target, its attempts (to number the new series).
pub async fn plan_replay_page(
    backend: &Backend,
    job: &ReplayJob,
    limit: usize,
) -> StoreResult<PagePlan<ReplayJob>> {
    let (targeted, after) = replay_page_targets(backend, job, limit).await?;
    let lookups: Vec<_> = targeted
        .iter()
        .map(|(event, targets)| replay_lookup(backend, job, event, targets))
        .collect();
    let per_event: Vec<Vec<Task>> = stream::iter(lookups)
        .buffered(LOOKUP_CONCURRENCY)
        .try_collect()
        .await?;
    let deliveries: Vec<Task> = per_event.into_iter().flatten().collect();
    let next = after.map(|after| ReplayJob {
        after: Some(after),
        enqueued: job.enqueued + deliveries.len() as u64,
        ..job.clone()
    });
    Ok(PagePlan { deliveries, next })
}

// ----- counting (the admin call) -----

/// Counts the pairs a recovery matches by planning its pages, for at most `budget`.
pub async fn count_recover(
    backend: &Backend,
    job: &RecoverJob,
    budget: Duration,
) -> StoreResult<Count> {
    count_pages(job.clone(), budget, |job| async move {
        let plan = plan_recover_page(backend, &job, COUNT_PAGE_SIZE).await?;
        Ok((plan.deliveries.len() as u64, plan.next))
    })
    .await
}

/// Counts the (event, subscription) pairs a replay matches, for at most `budget`. Nothing has
/// started since the job (it has not been enqueued yet), so the attempt log is not read.
pub async fn count_replay(
    backend: &Backend,
    job: &ReplayJob,
    budget: Duration,
) -> StoreResult<Count> {
    count_pages(job.clone(), budget, |mut job| async move {
        let (targeted, after) = replay_page_targets(backend, &job, COUNT_PAGE_SIZE).await?;
        let matched = targeted.iter().map(|(_, t)| t.len() as u64).sum::<u64>();
        let next = after.map(|after| {
            job.after = Some(after);
            job
        });
        Ok((matched, next))
    })
    .await
}

/// Adds up `page`'s counts, page after page, until the pages end (exact) or `budget` has run
/// out (then the count so far is a lower bound). `page` answers a count and the next page.
async fn count_pages<J, F, Fut>(mut job: J, budget: Duration, mut page: F) -> StoreResult<Count>
where
    F: FnMut(J) -> Fut,
    Fut: std::future::Future<Output = StoreResult<(u64, Option<J>)>>,
{
    let deadline = Instant::now() + budget;
    let mut matched = 0;
    loop {
        let (counted, next) = page(job).await?;
        matched += counted;
        match next {
            None => {
                return Ok(Count {
                    matched,
                    exact: true,
                })
            }
            Some(_) if Instant::now() >= deadline => {
                return Ok(Count {
                    matched,
                    exact: false,
                })
            }
            Some(next) => job = next,
        }
    }
}

// ----- running a page (the dispatcher) -----

/// Runs one page of a recovery: its deliveries, then the next page's task.
pub async fn run_recover_page(backend: &Backend, job: RecoverJob) -> StoreResult<()> {
    if backend
        .subscriptions
        .get_subscription(&job.subscription_id)
        .await?
        .is_none()
    {
        job_finished(
            backend,
            &JobEnd::recover(&job, job.enqueued, "subscription deleted"),
        )
        .await;
        return Ok(());
    }
    let plan = plan_recover_page(backend, &job, PAGE_SIZE).await?;
    let end = JobEnd::recover(&job, job.enqueued, "completed");
    carry_out(backend, &plan.deliveries, plan.next.map(Task::Recover), end).await
}

/// Runs one page of a replay: its deliveries, then the next page's task.
pub async fn run_replay_page(backend: &Backend, job: ReplayJob) -> StoreResult<()> {
    let plan = plan_replay_page(backend, &job, PAGE_SIZE).await?;
    let end = JobEnd::replay(&job, job.enqueued);
    carry_out(backend, &plan.deliveries, plan.next.map(Task::Replay), end).await
}

/// Sends a page's deliveries, then the job's next page; without one, the job has ended (`end`
/// counts the pairs of the pages before this one).
async fn carry_out(
    backend: &Backend,
    deliveries: &[Task],
    next: Option<Task>,
    end: JobEnd,
) -> StoreResult<()> {
    send_deliveries(backend, deliveries).await?;
    match next {
        Some(next) => backend.queue.send(&next, Duration::ZERO).await,
        None => {
            let end = JobEnd {
                enqueued: end.enqueued + deliveries.len() as u64,
                ..end
            };
            job_finished(backend, &end).await;
            Ok(())
        }
    }
}

async fn send_deliveries(backend: &Backend, deliveries: &[Task]) -> StoreResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let batch: Vec<(Task, Duration)> = deliveries
        .iter()
        .map(|task| (task.clone(), Duration::ZERO))
        .collect();
    backend.queue.send_batch(&batch).await
}

// ----- the end of a job -----

/// What is known when a bulk job ends: what the `recovery.finished` operational event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    pub job_id: String,
    pub kind: RecoveryKind,
    pub subscription_id: Option<String>,
    pub source_id: Option<String>,
    pub event_type: Option<String>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Pairs whose delivery was enqueued (a job's pages redone after a crash may count some
    /// twice; the deliveries themselves go out once).
    pub enqueued: u64,
    /// `completed`, or why the job stopped early.
    pub outcome: &'static str,
}

impl JobEnd {
    fn recover(job: &RecoverJob, enqueued: u64, outcome: &'static str) -> Self {
        Self {
            job_id: job.job_id.clone(),
            kind: RecoveryKind::Recover,
            subscription_id: Some(job.subscription_id.clone()),
            source_id: None,
            event_type: None,
            since: job.since,
            until: job.until,
            enqueued,
            outcome,
        }
    }

    fn replay(job: &ReplayJob, enqueued: u64) -> Self {
        Self {
            job_id: job.job_id.clone(),
            kind: RecoveryKind::Replay,
            subscription_id: job.subscription_id.clone(),
            source_id: job.source_id.clone(),
            event_type: job.event_type.clone(),
            since: job.since,
            until: job.until,
            enqueued,
            outcome: "completed",
        }
    }
}

/// The one place a bulk job ends: logged, and reported as a `recovery.finished` operational
/// event (whose failure is logged by the emitter and does not fail the page).
pub async fn job_finished(backend: &Backend, end: &JobEnd) {
    tracing::info!(
        job_id = %end.job_id,
        kind = end.kind.code(),
        subscription_id = end.subscription_id.as_deref().unwrap_or_default(),
        source_id = end.source_id.as_deref().unwrap_or_default(),
        event_type = end.event_type.as_deref().unwrap_or_default(),
        since = %end.since,
        until = %end.until,
        enqueued = end.enqueued,
        outcome = end.outcome,
        "bulk job finished"
    );
    crate::operational::emit_recovery_finished(
        &*backend.intake,
        end.kind,
        end.subscription_id.as_deref(),
        end.enqueued,
    )
    .await;
}

#[cfg(test)]
mod tests;

//! The dispatcher function: SQS task batches (from the event source mapping) to signed
//! deliveries. `main.rs` builds a [`DispatcherContext`] once at init and hands each batch to
//! [`handle_batch`]; tests call the same function with events read from JSON.
//!
//! Each record is settled on its own and the outcome is reported per message
//! (`ReportBatchItemFailures` must be enabled on the event source mapping):
//!
//! | record | effect | reported |
//! | --- | --- | --- |
//! | not due yet (`not_before` in the future) | re-sent with the remaining delay | success |
//! | processed (delivered, retry scheduled, nothing to do) | — | success |
//! | malformed | copied to the dead-letter queue, deleted | success |
//! | table or queue unreachable | — | failure: SQS redelivers that message only |
//!
//! A subscriber that fails is never a batch failure: `Dispatcher::process` records the attempt
//! and schedules the retry as a new task.

use futures::stream::{self, StreamExt};
use hookhub::aws::{Aws, SqsQueue};
use hookhub::delivery::{DeliveryClient, DeliveryOptions};
use hookhub::dispatch::{DispatchError, Dispatcher, DispatcherConfig, TaskOutcome};
use hookhub::ports::{ReceivedTask, StoreError, TaskQueue};
use tracing::Instrument;

pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

/// Records of one batch processed at once. SQS batches hold 10 records unless a batching
/// window is configured; this bounds open connections (times the fan-out concurrency) then.
pub const RECORD_CONCURRENCY: usize = 10;

/// What a process needs to settle task records. Built once per process (Lambda init).
#[derive(Clone)]
pub struct DispatcherContext {
    dispatcher: Dispatcher,
    /// The concrete queue: the long-delay hop (`defer_if_not_due`) is SQS-specific.
    queue: SqsQueue,
}

/// Failures building the context at init.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("connecting to DynamoDB/SQS: {0}")]
    Backend(#[from] StoreError),
    #[error("building the delivery HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

impl DispatcherContext {
    pub fn new(dispatcher: Dispatcher, queue: SqsQueue) -> Self {
        Self { dispatcher, queue }
    }

    /// Every port on `aws`, one delivery client for the process.
    pub async fn from_aws(
        aws: &Aws,
        config: DispatcherConfig,
        delivery: &DeliveryOptions,
    ) -> Result<Self, InitError> {
        // Queues configured by URL (deployments) make no call here; by name, one lookup each.
        let backend = aws.backend().await?;
        let queue = aws.queue().await?;
        let client = DeliveryClient::new(delivery)?;
        Ok(Self::new(Dispatcher::new(backend, client, config), queue))
    }
}

/// What the dispatcher function is invoked with: task batches from the SQS event source
/// mapping, or a schedule (EventBridge) asking it to sweep for events that were stored but never
/// enqueued (a receiver that died between the two writes).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum DispatcherInput {
    Tasks(SqsEvent),
    Sweep(ScheduledSweep),
}

/// An EventBridge scheduled event; only its kind matters.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ScheduledSweep {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
}

/// Events younger than this may still be in a receiver's hands: the sweep leaves them alone.
pub const SWEEP_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Enqueues stored-but-unenqueued events; an error fails the invocation so the schedule's own
/// retry runs it again.
pub async fn sweep(ctx: &DispatcherContext) -> Result<usize, StoreError> {
    let swept = hookhub::ingest::sweep_unenqueued(ctx.dispatcher.backend(), SWEEP_GRACE).await?;
    tracing::info!(swept, "sweep for unenqueued events done");
    Ok(swept)
}

/// How a record was settled (all of these are reported as success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Not due yet: re-sent with the remaining delay.
    Deferred,
    /// Processed.
    Done,
    /// Malformed: moved to the dead-letter queue.
    DeadLettered(String),
}

/// Infrastructure failures: the record is reported failed and SQS delivers it again (after
/// `maxReceiveCount` receives the redrive policy moves it to the dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("re-sending a task that is not due yet failed: {0}")]
    Defer(#[source] StoreError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("moving a malformed task to the dead-letter queue failed: {0}")]
    DeadLetter(#[source] StoreError),
}

/// Settles one task; no Lambda types, so any SQS consumer can use it.
pub async fn handle_task(
    ctx: &DispatcherContext,
    task: &ReceivedTask,
) -> Result<RecordOutcome, RecordError> {
    if ctx
        .queue
        .defer_if_not_due(&task.body)
        .await
        .map_err(RecordError::Defer)?
    {
        return Ok(RecordOutcome::Deferred);
    }
    match ctx.dispatcher.process(task).await? {
        TaskOutcome::Done => Ok(RecordOutcome::Done),
        TaskOutcome::Malformed(reason) => {
            // Deleting it here (with the batch's receipt handle) is harmless: the event source
            // mapping's own delete of a successful record then finds nothing to delete.
            ctx.queue
                .dead_letter(task, &reason)
                .await
                .map_err(RecordError::DeadLetter)?;
            Ok(RecordOutcome::DeadLettered(reason))
        }
    }
}

/// The task carried by an SQS record.
pub fn received_task(record: &SqsMessage) -> ReceivedTask {
    ReceivedTask {
        body: record.body.clone().unwrap_or_default(),
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
    }
}

/// Settles every record of a batch concurrently and reports the ones to retry. Never fails
/// as a whole: one record's trouble must not send its neighbours round again.
pub async fn handle_batch(ctx: &DispatcherContext, event: SqsEvent) -> SqsBatchResponse {
    let failed: Vec<String> = stream::iter(event.records)
        .map(|record| async move {
            let message_id = record.message_id.clone().unwrap_or_default();
            let task = received_task(&record);
            // Everything logged while settling the record carries its message id.
            let span = tracing::info_span!("record", message_id = %message_id);
            let result = handle_task(ctx, &task).instrument(span).await;
            match &result {
                Ok(RecordOutcome::Done) => {
                    tracing::debug!(message_id, "task done");
                }
                Ok(RecordOutcome::Deferred) => {
                    tracing::debug!(message_id, "task not due yet; re-sent");
                }
                Ok(RecordOutcome::DeadLettered(reason)) => {
                    tracing::error!(
                        message_id,
                        reason,
                        "malformed task moved to the dead-letter queue"
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        message_id,
                        error = %e,
                        receive_count = task.receive_count,
                        "task failed; SQS will deliver it again"
                    );
                }
            }
            result.is_err().then_some(message_id)
        })
        .buffer_unordered(RECORD_CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    // The batch's metrics, aggregated, as EMF lines (a no-op unless `main` installed it).
    hookhub::metrics::emf::flush();
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_count_and_missing_fields() {
        let record: SqsMessage = serde_json::from_value(serde_json::json!({
            "messageId": "m1",
            "receiptHandle": "r1",
            "body": "{}",
            "attributes": {"ApproximateReceiveCount": "3"}
        }))
        .unwrap();
        let task = received_task(&record);
        assert_eq!((task.body.as_str(), task.receipt.as_str()), ("{}", "r1"));
        assert_eq!(task.receive_count, 3);

        let bare = received_task(&SqsMessage::default());
        assert_eq!(bare.receive_count, 1);
        assert!(bare.body.is_empty());
    }
}

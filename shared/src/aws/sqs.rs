//! The SQS task queue, with a dead-letter queue.
//!
//! SQS delays a message by 15 minutes at most. A task due later carries a `not_before` time
//! in its JSON body (for `Task::Deliver` that is its own field; other tasks get the same
//! top-level field, which `Task::from_json` ignores) and is sent with the maximum delay.
//! Whoever takes it off the queue before that time re-sends it with the remaining delay:
//! [`TaskQueue::receive`] does so itself, and a Lambda fed by an SQS event source mapping calls
//! [`SqsQueue::defer_if_not_due`] on each record body first.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::sdk_error;
use crate::domain::Task;
use crate::ports::{ReceivedTask, StoreError, StoreResult, TaskQueue};

/// The longest `DelaySeconds` SQS accepts.
pub const SQS_MAX_DELAY: Duration = Duration::from_secs(900);
/// `SendMessageBatch` and `ReceiveMessage` take at most 10 messages.
const SQS_BATCH: usize = 10;
/// Long poll briefly: enough to avoid empty answers, short enough for a polling loop.
const WAIT_SECONDS: i32 = 1;
/// The largest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_SECS: u64 = 43_200;

/// The SQS implementation of [`TaskQueue`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
    /// The longest single delay (hop); SQS's maximum unless a test compresses it.
    max_delay: Duration,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: String, dlq_url: String) -> Self {
        Self {
            client,
            queue_url,
            dlq_url,
            max_delay: SQS_MAX_DELAY,
        }
    }

    /// Hops of at most `max_delay` (capped at SQS's 900 s): lets tests cover the long-delay
    /// path with a compressed retry schedule.
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay.clamp(Duration::from_secs(1), SQS_MAX_DELAY);
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn dead_letter_queue_url(&self) -> &str {
        &self.dlq_url
    }

    /// For message bodies that arrive outside [`TaskQueue::receive`] (a Lambda SQS event):
    /// when the body's `not_before` is still in the future, sends it again with the remaining
    /// delay and returns `true`; the caller then just acknowledges the record. Returns `false`
    /// for a due task and for a body that is not a task (the caller's parser rejects that).
    pub async fn defer_if_not_due(&self, body: &str) -> StoreResult<bool> {
        let now = Utc::now();
        match not_before(body) {
            Some(due) if due > now => {
                self.send_body(body.to_owned(), delay_seconds(due - now, self.max_delay))
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn send_body(&self, body: String, delay_seconds: i32) -> StoreResult<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds)
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        Ok(())
    }

    /// Sends up to 10 entries; returns the ids of those SQS refused, with their codes.
    async fn send_entries(
        &self,
        entries: Vec<SendMessageBatchRequestEntry>,
    ) -> StoreResult<Vec<(String, String)>> {
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error("SendMessageBatch", e))?;
        Ok(out.failed.into_iter().map(|f| (f.id, f.code)).collect())
    }
}

#[async_trait]
impl TaskQueue for SqsQueue {
    async fn send(&self, task: &Task, delay: Duration) -> StoreResult<()> {
        let (body, delay) = plan(task, delay, Utc::now(), self.max_delay);
        self.send_body(body, delay).await
    }

    async fn send_batch(&self, tasks: &[(Task, Duration)]) -> StoreResult<()> {
        let now = Utc::now();
        for chunk in tasks.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (task, delay))| {
                    let (body, delay) = plan(task, *delay, now, self.max_delay);
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .delay_seconds(delay)
                        .build()
                        .map_err(|e| StoreError::Unavailable(format!("SendMessageBatch: {e}")))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let failed = self.send_entries(entries.clone()).await?;
            if failed.is_empty() {
                continue;
            }
            // Partial failures are often transient (throttling): retry those entries once.
            let retry: Vec<_> = entries
                .into_iter()
                .filter(|e| failed.iter().any(|(id, _)| *id == e.id))
                .collect();
            let failed = self.send_entries(retry).await?;
            if let Some((_, code)) = failed.first() {
                return Err(StoreError::Unavailable(format!(
                    "SendMessageBatch: {} of {} tasks not sent ({code})",
                    failed.len(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<ReceivedTask>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.min(SQS_BATCH) as i32)
            .wait_time_seconds(WAIT_SECONDS)
            .visibility_timeout(visibility.as_secs().min(MAX_VISIBILITY_SECS) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
        let now = Utc::now();
        let mut tasks = Vec::new();
        for message in out.messages.unwrap_or_default() {
            let (Some(body), Some(receipt)) = (message.body, message.receipt_handle) else {
                continue;
            };
            if let Some(due) = not_before(&body).filter(|due| *due > now) {
                // Not due yet: hop again. On failure the message just reappears after its
                // visibility timeout, so the others are still returned.
                match self
                    .send_body(body, delay_seconds(due - now, self.max_delay))
                    .await
                {
                    Ok(()) => {
                        if let Err(e) = self.ack(&receipt).await {
                            tracing::warn!(error = %e, "deferred task not deleted; it will repeat");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not defer a task not yet due"),
                }
                continue;
            }
            let receive_count = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            tasks.push(ReceivedTask {
                body,
                receipt,
                receive_count,
            });
        }
        Ok(tasks)
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> StoreResult<()> {
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility.as_secs().min(MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.is_receipt_handle_is_invalid() || se.is_message_not_inflight()
                }) =>
            {
                Err(StoreError::NotFound(
                    "message with this receipt handle".to_owned(),
                ))
            }
            Err(e) => Err(sdk_error("ChangeMessageVisibility", e)),
        }
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        match self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Stale or foreign handle: the message is gone or will come back; nothing to do.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_receipt_handle_is_invalid()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("DeleteMessage", e)),
        }
    }

    async fn dead_letter(&self, message: &ReceivedTask, reason: &str) -> StoreResult<()> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(attribute_text(reason))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("SendMessage: {e}")))?;
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&message.body)
            .message_attributes("reason", attribute)
            .send()
            .await
            .map_err(|e| sdk_error("SendMessage", e))?;
        self.ack(&message.receipt).await
    }
}

/// A reason SQS accepts as an attribute value: not empty, only the characters it allows
/// (XML's), and short (it counts towards the message size).
fn attribute_text(reason: &str) -> String {
    let allowed = |c: char| {
        matches!(c,
            '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    };
    let text: String = reason
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
        .take(1024)
        .collect();
    if text.trim().is_empty() {
        "unspecified".to_owned()
    } else {
        text
    }
}

#[derive(Deserialize)]
struct Due {
    not_before: Option<DateTime<Utc>>,
}

/// The `not_before` time of a message body, if it is a JSON object that has one.
fn not_before(body: &str) -> Option<DateTime<Utc>> {
    serde_json::from_str::<Due>(body).ok()?.not_before
}

/// Whole seconds to wait (rounded up so the message is due on arrival), capped at one hop.
fn delay_seconds(wait: TimeDelta, max_delay: Duration) -> i32 {
    let millis = wait.num_milliseconds().max(0);
    ((millis + 999) / 1000).min(max_delay.as_secs() as i64) as i32
}

/// The body and `DelaySeconds` for sending `task` after `delay`.
fn plan(task: &Task, delay: Duration, now: DateTime<Utc>, max_delay: Duration) -> (String, i32) {
    // Ten years is "never" for a retry; it keeps the arithmetic far from overflow.
    let delay = TimeDelta::from_std(delay)
        .unwrap_or(TimeDelta::MAX)
        .min(TimeDelta::days(3650));
    let mut due = now + delay;
    if let Task::Deliver {
        not_before: Some(not_before),
        ..
    } = task
    {
        due = due.max(*not_before);
    }
    let wait = due - now;
    if wait <= TimeDelta::seconds(max_delay.as_secs() as i64) {
        return (task.to_json(), delay_seconds(wait, max_delay));
    }
    let mut value = serde_json::to_value(task).expect("tasks always serialise");
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "not_before".into(),
            serde_json::to_value(due).expect("times always serialise"),
        );
    }
    (value.to_string(), delay_seconds(wait, max_delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(not_before: Option<DateTime<Utc>>) -> Task {
        Task::Deliver {
            event_id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            attempt: 3,
            not_before,
            series_start: None,
        }
    }

    #[test]
    fn short_delays_use_delay_seconds() {
        let now = Utc::now();
        let (body, delay) = plan(
            &deliver(None),
            Duration::from_millis(1500),
            now,
            SQS_MAX_DELAY,
        );
        assert_eq!(delay, 2);
        assert_eq!(body, deliver(None).to_json());
        assert_eq!(
            plan(&deliver(None), Duration::ZERO, now, SQS_MAX_DELAY).1,
            0
        );
        assert_eq!(
            plan(&deliver(None), SQS_MAX_DELAY, now, SQS_MAX_DELAY).1,
            900
        );
    }

    #[test]
    fn long_delays_carry_not_before() {
        let now = Utc::now();
        let (body, delay) = plan(
            &deliver(None),
            Duration::from_secs(3600),
            now,
            SQS_MAX_DELAY,
        );
        assert_eq!(delay, 900);
        let due = now + TimeDelta::seconds(3600);
        assert_eq!(Task::from_json(&body).unwrap(), deliver(Some(due)));
        assert_eq!(not_before(&body), Some(due));

        let dispatch = Task::Dispatch {
            event_id: "evt_1".into(),
            event: None,
            sent_first: None,
        };
        let (body, delay) = plan(&dispatch, Duration::from_secs(901), now, SQS_MAX_DELAY);
        assert_eq!(delay, 900);
        assert_eq!(Task::from_json(&body).unwrap(), dispatch);
        assert_eq!(not_before(&body), Some(now + TimeDelta::seconds(901)));
    }

    #[test]
    fn an_existing_not_before_is_kept() {
        let now = Utc::now();
        let due = now + TimeDelta::seconds(10);
        let (body, delay) = plan(&deliver(Some(due)), Duration::ZERO, now, SQS_MAX_DELAY);
        assert_eq!(delay, 10);
        assert_eq!(not_before(&body), Some(due));
    }

    #[test]
    fn reasons_are_made_acceptable_to_sqs() {
        assert_eq!(attribute_text(""), "unspecified");
        assert_eq!(attribute_text("bad\u{0}byte"), "bad\u{FFFD}byte");
        assert_eq!(attribute_text("ok: é\n"), "ok: é\n");
        assert_eq!(attribute_text(&"x".repeat(5000)).len(), 1024);
    }

    #[test]
    fn bodies_without_not_before() {
        assert_eq!(not_before("not json"), None);
        assert_eq!(not_before("[1]"), None);
        assert_eq!(not_before(r#"{"kind":"dispatch","event_id":"e"}"#), None);
        assert_eq!(delay_seconds(TimeDelta::seconds(-5), SQS_MAX_DELAY), 0);
        assert_eq!(delay_seconds(TimeDelta::days(1), SQS_MAX_DELAY), 900);
    }
}

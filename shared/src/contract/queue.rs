//! Checks of the task queue, written to hold on SQS as well as on the embedded queue.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::domain::Task;
use crate::ports::{Backend, ReceivedTask, StoreError, TaskQueue};

const POLL: Duration = Duration::from_millis(200);
/// How long a queue check waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(15);

fn parse(message: &ReceivedTask) -> Task {
    Task::from_json(&message.body)
        .unwrap_or_else(|e| panic!("message body {:?} is not a task: {e}", message.body))
}

/// Polls until a receive returns messages.
async fn receive_some(q: &dyn TaskQueue, visibility: Duration) -> Vec<ReceivedTask> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = q.receive(10, visibility).await.expect("receive");
        if !got.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no message received within {PATIENCE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn receive_one(q: &dyn TaskQueue, visibility: Duration) -> ReceivedTask {
    let mut got = receive_some(q, visibility).await;
    assert_eq!(got.len(), 1, "expected one message, got {got:?}");
    got.remove(0)
}

/// Asserts that nothing is received for `period`.
async fn assert_nothing_for(q: &dyn TaskQueue, period: Duration, why: &str) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        let got = q
            .receive(10, Duration::from_secs(1))
            .await
            .expect("receive");
        assert!(got.is_empty(), "{why}: received {got:?}");
        tokio::time::sleep(POLL).await;
    }
}

fn dispatch(event_id: &str) -> Task {
    Task::Dispatch {
        event_id: event_id.to_owned(),
        event: None,
        sent_first: None,
    }
}

pub async fn queue_send_receive_ack(b: &Backend) {
    let q = b.queue.as_ref();
    assert!(
        q.receive(10, Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty(),
        "empty queue"
    );
    let task = dispatch("evt_1");
    q.send(&task, Duration::ZERO).await.expect("send");
    let m = receive_one(q, Duration::from_secs(1)).await;
    assert_eq!(parse(&m), task, "the body carries the task");
    assert_eq!(m.receive_count, 1, "first receive counts 1");
    assert!(!m.receipt.is_empty(), "a receipt is given");
    q.ack(&m.receipt).await.expect("ack");
    q.ack(&m.receipt).await.expect("acking twice is harmless");
    assert_nothing_for(
        q,
        Duration::from_millis(2500),
        "an acked message must not return",
    )
    .await;
}

pub async fn queue_delay_hides_message(b: &Backend) {
    let q = b.queue.as_ref();
    let delay = Duration::from_secs(2);
    let task = Task::Deliver {
        event_id: "evt_1".to_owned(),
        subscription_id: "sub_1".to_owned(),
        attempt: 2,
        not_before: None,
        series_start: None,
    };
    let sent = Instant::now();
    q.send(&task, delay).await.expect("send with delay");
    // Receiving at once finds nothing, or (long polling) returns only once the delay is over:
    // either way the message shows up no earlier than the delay (less a margin for clock skew).
    let m = receive_one(q, Duration::from_secs(1)).await;
    let seen_after = sent.elapsed();
    assert!(
        seen_after >= Duration::from_millis(1500),
        "a message delayed {delay:?} was received {seen_after:?} after sending"
    );
    assert_eq!(parse(&m), task, "the delayed task arrives intact");
    q.ack(&m.receipt).await.expect("ack");
}

pub async fn queue_visibility_timeout_redelivers(b: &Backend) {
    let q = b.queue.as_ref();
    let visibility = Duration::from_secs(2);
    let task = dispatch("evt_vis");
    q.send(&task, Duration::ZERO).await.expect("send");
    let first = receive_one(q, visibility).await;
    let hidden = Instant::now();
    let second = receive_one(q, visibility).await;
    assert!(
        hidden.elapsed() >= Duration::from_millis(1500),
        "a message hidden for {visibility:?} came back after {:?}",
        hidden.elapsed()
    );
    assert_eq!(parse(&second), task, "the same task is redelivered");
    assert_eq!(second.receive_count, 2, "redelivery counts 2");
    assert_ne!(
        second.receipt, first.receipt,
        "each receive gets a new receipt"
    );
    q.ack(&second.receipt).await.expect("ack");
}

pub async fn queue_stale_receipt_ack_is_noop(b: &Backend) {
    let q = b.queue.as_ref();
    let visibility = Duration::from_secs(1);
    q.send(&dispatch("evt_stale"), Duration::ZERO)
        .await
        .expect("send");
    let first = receive_one(q, visibility).await;
    let second = receive_one(q, visibility).await;
    assert_eq!(
        second.receive_count, 2,
        "redelivered after the visibility timeout"
    );
    // Only "no error" is portable: SQS documents that a stale receipt "might not" delete the
    // message, so whether the message survives is checked by each adapter's own tests.
    q.ack(&first.receipt)
        .await
        .expect("acking with a stale receipt must not fail");
    q.ack(&second.receipt)
        .await
        .expect("acking with the current receipt");
    assert_nothing_for(
        q,
        Duration::from_millis(2500),
        "the acked message must not return",
    )
    .await;
}

pub async fn queue_batch_send(b: &Backend) {
    let q = b.queue.as_ref();
    b.queue
        .send_batch(&[])
        .await
        .expect("an empty batch is fine");
    // More than SQS takes in one call (10): adapters split batches themselves.
    let tasks: Vec<(Task, Duration)> = (1..=12)
        .map(|n| {
            let task = Task::Deliver {
                event_id: "evt_batch".to_owned(),
                subscription_id: format!("sub_{n:02}"),
                attempt: n,
                not_before: None,
                series_start: None,
            };
            (task, Duration::ZERO)
        })
        .collect();
    q.send_batch(&tasks).await.expect("send_batch");
    let expected: BTreeSet<String> = tasks.iter().map(|(t, _)| t.to_json()).collect();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    while seen.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of 12 batched tasks arrived",
            seen.len()
        );
        let got = receive_some(q, Duration::from_secs(30)).await;
        for m in got {
            seen.insert(parse(&m).to_json());
            q.ack(&m.receipt).await.expect("ack");
        }
    }
    assert_eq!(seen, expected, "every batched task arrives once");
}

pub async fn queue_dead_letter_removes_message(b: &Backend) {
    let q = b.queue.as_ref();
    q.send(&dispatch("evt_poison"), Duration::ZERO)
        .await
        .expect("send");
    let m = receive_one(q, Duration::from_secs(1)).await;
    q.dead_letter(&m, "malformed task")
        .await
        .expect("dead_letter");
    assert_nothing_for(
        q,
        Duration::from_millis(2500),
        "a dead-lettered message must not return",
    )
    .await;
}

pub async fn queue_extend_keeps_a_message_hidden(b: &Backend) {
    let q = b.queue.as_ref();
    let visibility = Duration::from_secs(3);
    q.send(&dispatch("evt_lease"), Duration::ZERO)
        .await
        .expect("send");
    let m = receive_one(q, visibility).await;
    let received = Instant::now();
    // Extended about every second until well past its first timeout: it must not come back.
    while received.elapsed() < visibility * 2 {
        q.extend(&m.receipt, visibility).await.expect("extend");
        assert_nothing_for(
            q,
            Duration::from_secs(1),
            "a message whose lease is extended must stay hidden",
        )
        .await;
    }
    q.ack(&m.receipt).await.expect("ack");
    assert!(
        matches!(
            q.extend(&m.receipt, visibility).await,
            Err(StoreError::NotFound(_))
        ),
        "extending an acked message reports that the receipt holds nothing"
    );
}

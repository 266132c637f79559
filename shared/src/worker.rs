//! A queue-polling worker for processes that consume the queue themselves (`hookhub dev`, on
//! SQLite or on SQS). In Lambda the event source mapping does the polling instead and the
//! dispatcher function calls [`Dispatcher::process`] per record.
//!
//! Messages are processed concurrently up to `max_in_flight`. A message still running after
//! `slot_patience` (waiting on a slow subscriber, in practice) gives its slot back and finishes
//! on its own, up to `max_open` messages in all, so one slow subscriber cannot hold every slot
//! and stall the deliveries to everyone else. Either way a message is acknowledged only once
//! it is fully processed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::dispatch::{Dispatcher, TaskOutcome};
use crate::ingest::sweep_unenqueued;
use crate::ports::{ReceivedTask, StoreError};

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Messages processed at once.
    pub max_in_flight: usize,
    /// After this long a message no longer counts against `max_in_flight`.
    pub slot_patience: Duration,
    /// Messages open at once, those past their patience included (bounds connections and
    /// memory when a subscriber is slow).
    pub max_open: usize,
    /// How long a received message stays hidden; extended every third of it while the message
    /// is processed, so it need not cover the longest processing time.
    pub visibility_timeout: Duration,
    /// Poll interval when the queue is empty and no wake-up notifier is available.
    pub idle_poll: Duration,
    /// How often to look for stored-but-unenqueued events, and how old they must be.
    pub sweep_every: Duration,
    pub sweep_grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 64,
            slot_patience: Duration::from_millis(100),
            max_open: 1024,
            visibility_timeout: Duration::from_secs(120),
            idle_poll: Duration::from_millis(500),
            sweep_every: Duration::from_secs(30),
            sweep_grace: Duration::from_secs(30),
        }
    }
}

pub struct Worker {
    dispatcher: Dispatcher,
    options: WorkerOptions,
    wake: Option<Arc<Notify>>,
}

impl Worker {
    pub fn new(dispatcher: Dispatcher, options: WorkerOptions) -> Self {
        Self {
            dispatcher,
            options,
            wake: None,
        }
    }

    /// A notifier signalled when tasks are sent, so an idle worker starts at once.
    pub fn with_wake(mut self, wake: Arc<Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Runs until `shutdown` turns true, then waits for messages in flight to finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.options.max_in_flight.max(1)));
        let open = Arc::new(Semaphore::new(
            self.options.max_open.max(self.options.max_in_flight).max(1),
        ));
        let patience = self.options.slot_patience;
        let mut in_flight = JoinSet::new();
        let mut next_sweep = tokio::time::Instant::now();
        while !*shutdown.borrow() {
            if tokio::time::Instant::now() >= next_sweep {
                next_sweep = tokio::time::Instant::now() + self.options.sweep_every;
                let backend = self.dispatcher.backend();
                if let Err(e) = sweep_unenqueued(backend, self.options.sweep_grace).await {
                    tracing::warn!(error = %e, "sweep for unenqueued events failed");
                }
            }
            // Reap finished tasks so the set does not grow without bound.
            while in_flight.try_join_next().is_some() {}

            let free = slots
                .available_permits()
                .min(open.available_permits())
                .min(10);
            if free == 0 {
                tokio::select! {
                    _ = in_flight.join_next() => {}
                    // A slot given back by a message past its patience.
                    _ = slots.acquire(), if open.available_permits() > 0 => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let messages = match self
                .dispatcher
                .backend()
                .queue
                .receive(free, self.options.visibility_timeout)
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "receiving from the queue failed");
                    self.idle(&mut shutdown, Duration::from_secs(1)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                self.idle(&mut shutdown, self.options.idle_poll).await;
                continue;
            }
            for message in messages {
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let opened = open
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closed");
                let dispatcher = self.dispatcher.clone();
                let visibility = self.options.visibility_timeout;
                in_flight.spawn(async move {
                    let work = handle_message_leased(&dispatcher, message, visibility);
                    tokio::pin!(work);
                    if tokio::time::timeout(patience, &mut work).await.is_err() {
                        // Past its patience: free the slot, keep going under `max_open` only.
                        drop(permit);
                        work.await;
                    }
                    drop(opened);
                });
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    async fn idle(&self, shutdown: &mut watch::Receiver<bool>, poll: Duration) {
        match &self.wake {
            Some(wake) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    // Delayed tasks become visible without any send: poll now and then anyway.
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// [`handle_message`] while keeping the message's lease: its visibility is extended every third
/// of the timeout until it is settled, so a delivery outliving the visibility timeout (a slow
/// subscriber) is never handed to a second consumer and sent twice at once.
pub async fn handle_message_leased(
    dispatcher: &Dispatcher,
    message: ReceivedTask,
    visibility: Duration,
) {
    let queue = dispatcher.backend().queue.clone();
    let receipt = message.receipt.clone();
    let keep_lease = async move {
        let every = (visibility / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match queue.extend(&receipt, visibility).await {
                Ok(()) => {}
                // Settled meanwhile, or taken over: nothing left to hold.
                Err(StoreError::NotFound(_)) => break,
                Err(e) => tracing::warn!(error = %e, "extending a task's lease failed"),
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        biased;
        () = handle_message(dispatcher, message) => {}
        () = keep_lease => {}
    }
}

/// Processes one message and settles it: ack when done, dead-letter when malformed, leave it
/// on the queue (visible again after its timeout) on infrastructure errors.
pub async fn handle_message(dispatcher: &Dispatcher, message: ReceivedTask) {
    let queue = &dispatcher.backend().queue;
    match dispatcher.process(&message).await {
        Ok(TaskOutcome::Done) => {
            if let Err(e) = queue.ack(&message.receipt).await {
                tracing::warn!(error = %e, "ack failed; the task will run again");
            }
        }
        Ok(TaskOutcome::Malformed(reason)) => {
            tracing::error!(reason, "malformed task moved to the dead-letter queue");
            if let Err(e) = queue.dead_letter(&message, &reason).await {
                tracing::warn!(error = %e, "dead-lettering failed");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, receive_count = message.receive_count, "task failed; it will be retried");
        }
    }
}

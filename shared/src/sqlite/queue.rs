//! The task queue: SQS semantics (delays, visibility timeouts, receipts, redrive to a dead-letter
//! table) on two tables.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use super::{db_err, duration_ms, exec, from_ms, now_ms, SqliteBackend};
use crate::domain::Task;
use crate::ports::{ReceivedTask, StoreError, StoreResult, TaskQueue};

/// A message moved off the queue: dead-lettered by a consumer, or received too many times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub body: String,
    pub reason: String,
    pub receive_count: u32,
    pub enqueued_at: DateTime<Utc>,
    pub dead_lettered_at: DateTime<Utc>,
}

/// Copies a queue row to `dead_letters` and deletes it; `key` selects the row (`id` or
/// `receipt`). Returns whether a row was moved.
fn move_to_dead_letters(
    c: &Connection,
    key: &str,
    value: &dyn rusqlite::ToSql,
    reason: &str,
    now: i64,
) -> StoreResult<bool> {
    let moved = c
        .execute(
            &format!(
                "INSERT INTO dead_letters (body, reason, receive_count, enqueued_at, dead_lettered_at)
                 SELECT body, ?2, receive_count, enqueued_at, ?3 FROM queue WHERE {key} = ?1"
            ),
            params![value, reason, now],
        )
        .map_err(db_err)?;
    if moved > 0 {
        exec(c, &format!("DELETE FROM queue WHERE {key} = ?1"), [value]).map_err(db_err)?;
    }
    Ok(moved > 0)
}

/// Puts messages (body, delay in ms) on the queue, inside the caller's transaction.
pub(super) fn insert_messages(tx: &Connection, messages: &[(String, i64)]) -> StoreResult<()> {
    let now = now_ms();
    let mut stmt = tx
        .prepare_cached("INSERT INTO queue (body, visible_at, enqueued_at) VALUES (?1, ?2, ?3)")
        .map_err(db_err)?;
    for (body, delay) in messages {
        stmt.execute(params![body, now.saturating_add(*delay), now])
            .map_err(db_err)?;
    }
    Ok(())
}

/// A fresh, unguessable receipt; a new one per receive is what makes stale acks harmless.
fn new_receipt() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn receive(
    tx: &Connection,
    max: usize,
    visibility: Duration,
    max_receives: u32,
) -> StoreResult<Vec<ReceivedTask>> {
    let now = now_ms();
    let hidden_until = now.saturating_add(duration_ms(visibility));
    // Candidates are read in full before anything is updated, so with a zero visibility timeout a
    // message is still handed out at most once per call.
    let mut candidates: Vec<(i64, String, u32)> = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, body, receive_count FROM queue WHERE visible_at <= ?1
                 ORDER BY visible_at, id",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([now]).map_err(db_err)?;
        let mut deliverable = 0;
        while deliverable < max {
            let Some(row) = rows.next().map_err(db_err)? else {
                break;
            };
            let count: u32 = row.get(2).map_err(db_err)?;
            if count < max_receives {
                deliverable += 1;
            }
            candidates.push((
                row.get(0).map_err(db_err)?,
                row.get(1).map_err(db_err)?,
                count,
            ));
        }
    }
    let mut received = Vec::with_capacity(candidates.len());
    for (id, body, count) in candidates {
        if count >= max_receives {
            // Poison message: a consumer keeps failing on it; park it instead of looping forever.
            let reason = format!("received {count} times without being acknowledged");
            tracing::warn!(
                message_id = id,
                receive_count = count,
                "dead-lettering queue message"
            );
            move_to_dead_letters(tx, "id", &id, &reason, now)?;
            continue;
        }
        let receipt = new_receipt();
        let receive_count = count.saturating_add(1);
        exec(
            tx,
            "UPDATE queue SET receipt = ?2, receive_count = ?3, visible_at = ?4 WHERE id = ?1",
            params![id, receipt, receive_count, hidden_until],
        )
        .map_err(db_err)?;
        received.push(ReceivedTask {
            body,
            receipt,
            receive_count,
        });
    }
    Ok(received)
}

#[async_trait]
impl TaskQueue for SqliteBackend {
    async fn send(&self, task: &Task, delay: Duration) -> StoreResult<()> {
        self.send_batch(std::slice::from_ref(&(task.clone(), delay)))
            .await
    }

    async fn send_batch(&self, tasks: &[(Task, Duration)]) -> StoreResult<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let messages: Vec<(String, i64)> = tasks
            .iter()
            .map(|(task, delay)| (task.to_json(), duration_ms(*delay)))
            .collect();
        self.write(move |tx| insert_messages(tx, &messages)).await?;
        self.wake();
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<ReceivedTask>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let max_receives = self.max_receives;
        self.write(move |c| receive(c, max, visibility, max_receives))
            .await
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> StoreResult<()> {
        let receipt = receipt.to_owned();
        let hidden_until = now_ms().saturating_add(duration_ms(visibility));
        let updated = self
            .write(move |c| {
                exec(
                    c,
                    "UPDATE queue SET visible_at = ?2 WHERE receipt = ?1",
                    params![receipt, hidden_until],
                )
                .map_err(db_err)
            })
            .await?;
        match updated {
            0 => Err(StoreError::NotFound("message with this receipt".to_owned())),
            _ => Ok(()),
        }
    }

    async fn ack(&self, receipt: &str) -> StoreResult<()> {
        let receipt = receipt.to_owned();
        // A receipt replaced by a later receive matches nothing: the ack is a harmless no-op.
        self.write(move |c| {
            exec(c, "DELETE FROM queue WHERE receipt = ?1", [&receipt]).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn dead_letter(&self, message: &ReceivedTask, reason: &str) -> StoreResult<()> {
        let receipt = message.receipt.clone();
        let reason = reason.to_owned();
        self.write(move |tx| {
            // Stale receipt: another consumer holds the message now and will judge it itself.
            move_to_dead_letters(tx, "receipt", &receipt, &reason, now_ms())?;
            Ok(())
        })
        .await
    }
}

impl SqliteBackend {
    /// Makes every received but unacknowledged message visible again now. The embedded queue
    /// belongs to one process, so at startup whatever is in flight was abandoned by a previous
    /// run; there is no need to wait for its visibility timeouts. Returns how many were released.
    pub async fn release_inflight(&self) -> StoreResult<usize> {
        let released = self
            .write(|c| {
                let now = now_ms();
                exec(
                    c,
                    "UPDATE queue SET visible_at = ?1, receipt = NULL
                     WHERE receipt IS NOT NULL AND visible_at > ?1",
                    [now],
                )
                .map_err(db_err)
            })
            .await?;
        if released > 0 {
            self.wake();
        }
        Ok(released)
    }

    /// Every dead-lettered message, oldest first.
    pub async fn dead_letters(&self) -> StoreResult<Vec<DeadLetter>> {
        self.run(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, body, reason, receive_count, enqueued_at, dead_lettered_at
                     FROM dead_letters ORDER BY id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(db_err)?;
            rows.map(|row| {
                let (id, body, reason, receive_count, enqueued_at, dead_lettered_at) =
                    row.map_err(db_err)?;
                Ok(DeadLetter {
                    id,
                    body,
                    reason,
                    receive_count,
                    enqueued_at: from_ms(enqueued_at)?,
                    dead_lettered_at: from_ms(dead_lettered_at)?,
                })
            })
            .collect()
        })
        .await
    }

    /// Messages on the queue, visible or not (delayed and in flight included).
    pub async fn queue_depth(&self) -> StoreResult<usize> {
        self.run(|c| {
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
                .map_err(db_err)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Age of the oldest message on the queue (by its enqueue time), if any.
    pub async fn oldest_task_age(&self) -> StoreResult<Option<Duration>> {
        self.run(|c| {
            let oldest: Option<i64> = c
                .query_row("SELECT MIN(enqueued_at) FROM queue", [], |r| r.get(0))
                .map_err(db_err)?;
            Ok(oldest.map(|at| Duration::from_millis(now_ms().saturating_sub(at).max(0) as u64)))
        })
        .await
    }
}

#[cfg(feature = "prometheus")]
#[async_trait]
impl crate::http::QueueStats for SqliteBackend {
    async fn queue_stats(&self) -> StoreResult<(usize, Option<Duration>)> {
        Ok((self.queue_depth().await?, self.oldest_task_age().await?))
    }
}

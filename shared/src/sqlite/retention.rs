//! Retention: the SQLite counterpart of the DynamoDB TTL. Events older than the retention are
//! deleted with their attempts and dedup markers, a small batch per write so the writer (which
//! ingest shares) is never held for long, and the freed pages are given back to the file system
//! (`auto_vacuum = INCREMENTAL`).
//!
//! Age is read from the event id: ids are `evt_` + a ULID, whose first 48 bits are the receive
//! time in milliseconds, so "older than the cutoff" is a range of the primary key and needs no
//! index of its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::{db_err, exec, SqliteBackend};
use crate::ports::StoreResult;

/// Events deleted per write: about a millisecond of work, so ingest commits keep flowing.
pub const SWEEP_BATCH: usize = 50;
/// Free pages returned to the file system per write.
const VACUUM_PAGES: u32 = 256;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub events: usize,
    pub attempts: usize,
    pub dedup_markers: usize,
    /// Pages returned to the file system.
    pub pages_freed: u32,
}

/// The smallest event id received at or after `cutoff`: every id below it is older.
fn cutoff_id(cutoff: DateTime<Utc>) -> String {
    let ms = u64::try_from(cutoff.timestamp_millis()).unwrap_or(0);
    format!("evt_{}", ulid::Ulid::from_parts(ms, 0))
}

/// Deletes up to `batch` events older than `cutoff_id` with their attempts and dedup markers.
fn delete_batch(c: &Connection, cutoff_id: &str, batch: usize) -> StoreResult<SweepReport> {
    let expired: Vec<(String, String, String)> = c
        .prepare_cached(
            "SELECT id, source_id, dedup_key FROM events WHERE id < ?1 ORDER BY id LIMIT ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_map(params![cutoff_id, batch as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(db_err)?;
    let mut report = SweepReport::default();
    for (id, source_id, dedup_key) in &expired {
        report.attempts +=
            exec(c, "DELETE FROM attempts WHERE event_id = ?1", [id]).map_err(db_err)?;
        // A marker since taken over by a newer event names that event, and stays.
        report.dedup_markers += exec(
            c,
            "DELETE FROM event_dedup WHERE source_id = ?1 AND dedup_key = ?2 AND event_id = ?3",
            [source_id, dedup_key, id],
        )
        .map_err(db_err)?;
        report.events += exec(c, "DELETE FROM events WHERE id = ?1", [id]).map_err(db_err)?;
    }
    Ok(report)
}

impl SqliteBackend {
    /// Deletes everything older than `retention`, [`SWEEP_BATCH`] events per write, then returns
    /// the freed pages to the file system in steps. After each write the sweep rests as long as
    /// the write took, so it has the writer at most half the time and ingest writes queued
    /// meanwhile commit between the batches (a sweep is background work: slow is fine).
    pub async fn sweep_expired(&self, retention: Duration) -> StoreResult<SweepReport> {
        let cutoff = Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default();
        let cutoff_id = cutoff_id(cutoff);
        let mut total = SweepReport::default();
        loop {
            let id = cutoff_id.clone();
            let started = std::time::Instant::now();
            let batch = self
                .write(move |c| delete_batch(c, &id, SWEEP_BATCH))
                .await?;
            let took = started.elapsed();
            total.events += batch.events;
            total.attempts += batch.attempts;
            total.dedup_markers += batch.dedup_markers;
            if batch.events < SWEEP_BATCH {
                break;
            }
            tokio::time::sleep(took).await;
        }
        loop {
            let started = std::time::Instant::now();
            let freed = self.write(|c| incremental_vacuum(c, VACUUM_PAGES)).await?;
            total.pages_freed += freed;
            if freed < VACUUM_PAGES {
                break;
            }
            tokio::time::sleep(started.elapsed()).await;
        }
        Ok(total)
    }

    /// Pages in the file that hold no data (what a sweep has yet to give back).
    pub async fn free_pages(&self) -> StoreResult<u32> {
        self.run(|c| {
            c.pragma_query_value(None, "freelist_count", |r| r.get(0))
                .map_err(db_err)
        })
        .await
    }
}

/// Gives back up to `pages` free pages; returns how many.
fn incremental_vacuum(c: &Connection, pages: u32) -> StoreResult<u32> {
    let free = |c: &Connection| -> StoreResult<u32> {
        c.pragma_query_value(None, "freelist_count", |r| r.get(0))
            .map_err(db_err)
    };
    let before = free(c)?;
    // The pragma returns a row per page freed; step through them all for it to do its work.
    let mut stmt = c
        .prepare(&format!("PRAGMA incremental_vacuum({pages})"))
        .map_err(db_err)?;
    let mut rows = stmt.query([]).map_err(db_err)?;
    while rows.next().map_err(db_err)?.is_some() {}
    drop(rows);
    Ok(before.saturating_sub(free(c)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Attempt, DeliveryState, Event};
    use crate::ports::{AttemptLog, EventQuery, EventStore, InsertOutcome};

    const DAY: Duration = Duration::from_secs(86_400);

    /// An event received `age` ago (its id says so too), with a 16 KiB body and one attempt.
    async fn plant(b: &SqliteBackend, age: Duration, key: &str) -> Event {
        let received_at = Utc::now() - chrono::Duration::from_std(age).unwrap();
        let ms = received_at.timestamp_millis() as u64;
        let event = Event {
            id: format!("evt_{}", ulid::Ulid::from_parts(ms, rand::random())),
            source_id: "src".into(),
            event_type: "t".into(),
            received_at,
            content_type: None,
            dedup_key: key.into(),
            headers: Default::default(),
            body: vec![7u8; 16 * 1024].into(),
            enqueued: true,
        };
        b.insert_event(&event, DAY).await.unwrap();
        b.record_attempt(&Attempt {
            event_id: event.id.clone(),
            subscription_id: "sub_1".into(),
            attempt: 1,
            url: "https://example.com".into(),
            started_at: received_at,
            duration_ms: 1,
            status_code: Some(200),
            error: None,
            response_excerpt: None,
            state: DeliveryState::Succeeded,
            next_attempt_at: None,
        })
        .await
        .unwrap();
        event
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_events_go_with_their_attempts_and_markers_and_the_file_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("hookhub.db")).unwrap();
        let old = SWEEP_BATCH * 2 + 17;
        for i in 0..old {
            plant(&b, DAY * 40, &format!("old-{i}")).await;
        }
        let mut kept = Vec::new();
        for i in 0..5 {
            kept.push(plant(&b, DAY * 2, &format!("new-{i}")).await);
        }
        let pages = |b: &SqliteBackend| {
            let b = b.clone();
            async move {
                b.run(|c| {
                    c.pragma_query_value(None, "page_count", |r| r.get::<_, u32>(0))
                        .map_err(db_err)
                })
                .await
                .unwrap()
            }
        };
        let before = pages(&b).await;

        let report = b.sweep_expired(DAY * 30).await.unwrap();
        assert_eq!(
            (report.events, report.attempts, report.dedup_markers),
            (old, old, old)
        );
        assert!(report.pages_freed > 0);
        assert_eq!(
            b.free_pages().await.unwrap(),
            0,
            "every freed page given back"
        );
        assert!(pages(&b).await < before / 2, "the file shrank");

        let listed = b
            .list_events(&EventQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), kept.len(), "younger events stay");
        for event in &kept {
            assert_eq!(b.attempts_for_event(&event.id).await.unwrap().len(), 1);
            // Their dedup markers too: a repeat is still a duplicate.
            let mut again = event.clone();
            again.id = crate::domain::new_id("evt");
            assert!(matches!(
                b.insert_event(&again, DAY * 3).await.unwrap(),
                InsertOutcome::Duplicate(_)
            ));
        }
        // An expired key is free again.
        let mut reused = kept[0].clone();
        reused.id = crate::domain::new_id("evt");
        reused.dedup_key = "old-0".into();
        assert_eq!(
            b.insert_event(&reused, DAY).await.unwrap(),
            InsertOutcome::Inserted
        );
        assert_eq!(
            b.sweep_expired(DAY * 30).await.unwrap().events,
            0,
            "nothing left"
        );
    }

    #[test]
    fn a_file_made_before_retention_is_converted_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE before_retention (x);")
                .unwrap();
        }
        drop(SqliteBackend::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        let mode: i64 = c
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, 2, "incremental");
        c.query_row("SELECT count(*) FROM before_retention", [], |_| Ok(()))
            .expect("data kept");
    }

    #[test]
    fn cutoff_ids_sort_with_event_ids() {
        let now = Utc::now();
        let cutoff = cutoff_id(now);
        let older = format!(
            "evt_{}",
            ulid::Ulid::from_parts(now.timestamp_millis() as u64 - 1, u128::MAX)
        );
        let newer = crate::domain::new_id("evt");
        assert!(
            older < cutoff && cutoff <= newer,
            "{older} {cutoff} {newer}"
        );
        assert_eq!(cutoff.len(), newer.len());
    }
}

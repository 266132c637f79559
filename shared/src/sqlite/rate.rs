//! Rate-limit state: one row per limited subscription holding its theoretical arrival time,
//! read and rewritten inside one write (the writer is the only one, so concurrent reservations
//! are serialised and each gets its own slot).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{db_err, exec, SqliteBackend};
use crate::decision::rate::{interval, reserve, Slot};
use crate::ports::StoreResult;

impl SqliteBackend {
    pub(super) async fn reserve_rate_slot(
        &self,
        subscription_id: &str,
        rate: f64,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> StoreResult<Slot> {
        let id = subscription_id.to_owned();
        self.write(move |c| {
            let tat: Option<i64> = c
                .prepare_cached("SELECT tat_ns FROM rate_limits WHERE subscription_id = ?1")
                .and_then(|mut stmt| stmt.query_row([&id], |r| r.get(0)))
                .optional()
                .map_err(db_err)?;
            let reservation = reserve(
                tat.map(DateTime::from_timestamp_nanos),
                interval(rate),
                now,
                max_wait,
            );
            if let Some(tat) = reservation.tat {
                exec(
                    c,
                    "INSERT INTO rate_limits (subscription_id, tat_ns) VALUES (?1, ?2) \
                     ON CONFLICT (subscription_id) DO UPDATE SET tat_ns = excluded.tat_ns",
                    params![id, tat.timestamp_nanos_opt().unwrap_or(i64::MAX)],
                )
                .map_err(db_err)?;
            }
            Ok(reservation.slot)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Two handles on one file stand for two dispatcher processes: racing reservations each get
    /// a slot of their own, one interval apart, none twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_processes_get_distinct_slots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let (a, b) = (
            SqliteBackend::open(&path).unwrap(),
            SqliteBackend::open(&path).unwrap(),
        );
        let now = Utc::now();
        let per_process = 40u64;
        let mut racing = tokio::task::JoinSet::new();
        for backend in [a, b] {
            for _ in 0..per_process {
                let backend = backend.clone();
                racing.spawn(async move {
                    backend
                        .reserve_rate_slot("sub_1", 100.0, now, Duration::from_secs(10))
                        .await
                });
            }
        }
        let mut waits = BTreeSet::new();
        while let Some(slot) = racing.join_next().await {
            match slot.unwrap().unwrap() {
                Slot::Now { wait } => assert!(waits.insert(wait), "{wait:?} booked twice"),
                later => panic!("within max_wait, got {later:?}"),
            }
        }
        let expected: BTreeSet<Duration> = (0..2 * per_process)
            .map(|i| Duration::from_millis(10 * i))
            .collect();
        assert_eq!(waits, expected);
    }
}

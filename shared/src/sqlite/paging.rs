//! The ascending, bounded pages bulk recovery and replay walk through: a subscription's attempts
//! by start time (index `attempts_by_subscription`) and events by id (primary key, or
//! `events_by_source`).

use chrono::{DateTime, Utc};
use rusqlite::types::Value;

use super::stores::{query_attempts, query_summaries, SUMMARY_COLUMNS};
use super::{page_limit, ts, SqliteBackend};
use crate::domain::EventSummary;
use crate::ports::{AttemptPage, EventRange, StoreError, StoreResult};

impl SqliteBackend {
    pub(super) async fn attempts_page(
        &self,
        subscription_id: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<AttemptPage> {
        // The cursor is the last row's position in the index: (started_at, attempt, event_id).
        let (after_started, after_attempt, after_event) = match cursor {
            Some(cursor) => parse_cursor(cursor)?,
            None => (String::new(), 0, String::new()),
        };
        let limit = page_limit(limit);
        let args = vec![
            Value::Text(subscription_id.to_owned()),
            Value::Text(ts(&since)),
            Value::Text(ts(&until)),
            Value::Text(after_started),
            Value::Integer(after_attempt),
            Value::Text(after_event),
            Value::Integer(limit),
        ];
        let attempts = self
            .run(move |c| {
                query_attempts(
                    c,
                    "SELECT data FROM attempts WHERE subscription_id = ?
                     AND started_at >= ? AND started_at <= ?
                     AND (started_at, attempt, event_id) > (?, ?, ?)
                     ORDER BY started_at, attempt, event_id LIMIT ?",
                    args,
                )
            })
            .await?;
        let cursor = (attempts.len() as i64 == limit)
            .then(|| attempts.last())
            .flatten()
            .map(|a| format!("{}|{}|{}", ts(&a.started_at), a.attempt, a.event_id));
        Ok(AttemptPage { attempts, cursor })
    }

    pub(super) async fn events_in_range(
        &self,
        range: &EventRange,
        limit: usize,
    ) -> StoreResult<Vec<EventSummary>> {
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE id > ? AND id <= ?");
        let mut args = vec![
            Value::Text(range.after.clone()),
            Value::Text(range.through.clone()),
        ];
        if let Some(source_id) = &range.source_id {
            sql.push_str(" AND source_id = ?");
            args.push(Value::Text(source_id.clone()));
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        args.push(Value::Integer(page_limit(limit)));
        self.run(move |c| query_summaries(c, &sql, args)).await
    }
}

fn parse_cursor(cursor: &str) -> StoreResult<(String, i64, String)> {
    let bad = || StoreError::Corrupt(format!("not an attempts cursor: {cursor:?}"));
    let mut parts = cursor.splitn(3, '|');
    let started = parts.next().ok_or_else(bad)?.to_owned();
    let attempt = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    let event = parts.next().ok_or_else(bad)?.to_owned();
    Ok((started, attempt, event))
}

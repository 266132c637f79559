//! Sources, subscriptions, events and attempts.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::de::DeserializeOwned;

use super::queue::insert_messages;
use super::{
    db_err, exec, from_json, insert_err, page_limit, parse_ts, to_json, ts, window_start,
    SqliteBackend,
};
use crate::decision::health::ProbeClaim;
use crate::decision::rate::Slot;
use crate::decision::{DisabledReason, HealthChange, HealthOutcome, HealthPolicy};
use crate::domain::{
    Attempt, Event, EventSummary, SentFirst, Source, Subscription, SubscriptionRoute, Task,
};
use crate::ports::{
    AttemptLog, AttemptPage, DisableOutcome, EventQuery, EventRange, EventStore, InsertOutcome,
    Intake, SourceStore, StoreError, StoreResult, Stored, SubscriptionStore,
};

/// Sources and subscriptions are only ever looked up by id, so each is an id and a JSON record.
#[derive(Clone, Copy)]
struct RecordTable {
    table: &'static str,
    kind: &'static str,
}

const SOURCES: RecordTable = RecordTable {
    table: "sources",
    kind: "source",
};
const SUBSCRIPTIONS: RecordTable = RecordTable {
    table: "subscriptions",
    kind: "subscription",
};

impl SqliteBackend {
    async fn create_record(&self, t: RecordTable, id: &str, data: String) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            let sql = format!("INSERT INTO {} (id, data) VALUES (?1, ?2)", t.table);
            exec(c, &sql, params![id, data])
                .map_err(|e| insert_err(e, || format!("{} {id}", t.kind)))?;
            Ok(())
        })
        .await
    }

    async fn update_record(&self, t: RecordTable, id: &str, data: String) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            let sql = format!("UPDATE {} SET data = ?2 WHERE id = ?1", t.table);
            match exec(c, &sql, params![id, data]).map_err(db_err)? {
                0 => Err(StoreError::NotFound(format!("{} {id}", t.kind))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn get_record<T>(&self, t: RecordTable, id: &str) -> StoreResult<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let id = id.to_owned();
        self.run(move |c| {
            let sql = format!("SELECT data FROM {} WHERE id = ?1", t.table);
            let data: Option<String> = c
                .prepare_cached(&sql)
                .and_then(|mut stmt| stmt.query_row([&id], |r| r.get(0)))
                .optional()
                .map_err(db_err)?;
            data.map(|d| from_json(&d, &format!("{} {id}", t.kind)))
                .transpose()
        })
        .await
    }

    async fn list_records<T>(&self, t: RecordTable) -> StoreResult<Vec<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |c| {
            let sql = format!("SELECT id, data FROM {} ORDER BY id", t.table);
            let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_err)?;
            rows.map(|row| {
                let (id, data) = row.map_err(db_err)?;
                from_json(&data, &format!("{} {id}", t.kind))
            })
            .collect()
        })
        .await
    }

    async fn delete_record(&self, t: RecordTable, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            let sql = format!("DELETE FROM {} WHERE id = ?1", t.table);
            Ok(exec(c, &sql, [&id]).map_err(db_err)? > 0)
        })
        .await
    }
}

#[async_trait]
impl SourceStore for SqliteBackend {
    async fn create_source(&self, source: &Source) -> StoreResult<()> {
        self.create_record(SOURCES, &source.id, to_json(source)?)
            .await
    }

    async fn update_source(&self, source: &Source) -> StoreResult<()> {
        self.update_record(SOURCES, &source.id, to_json(source)?)
            .await
    }

    async fn get_source(&self, id: &str) -> StoreResult<Option<Source>> {
        self.get_record(SOURCES, id).await
    }

    async fn list_sources(&self) -> StoreResult<Vec<Source>> {
        self.list_records(SOURCES).await
    }

    async fn delete_source(&self, id: &str) -> StoreResult<bool> {
        self.delete_record(SOURCES, id).await
    }
}

#[async_trait]
impl SubscriptionStore for SqliteBackend {
    async fn create_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.create_record(SUBSCRIPTIONS, &subscription.id, to_json(subscription)?)
            .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.update_record(SUBSCRIPTIONS, &subscription.id, to_json(subscription)?)
            .await
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<Subscription>> {
        self.get_record(SUBSCRIPTIONS, id).await
    }

    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        self.list_records(SUBSCRIPTIONS).await
    }

    /// One process holds the whole record anyway: the routes are cut from it.
    async fn list_subscription_routes(&self) -> StoreResult<Vec<SubscriptionRoute>> {
        let subscriptions = self.list_subscriptions().await?;
        Ok(subscriptions.iter().map(Subscription::route).collect())
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        self.delete_record(SUBSCRIPTIONS, id).await
    }

    async fn disable_subscription(
        &self,
        id: &str,
        reason: DisabledReason,
        at: DateTime<Utc>,
    ) -> StoreResult<DisableOutcome> {
        let changed = self
            .change_subscription(id, move |sub| {
                let was_enabled = std::mem::replace(&mut sub.enabled, false);
                sub.disabled_reason = Some(reason);
                sub.updated_at = at;
                was_enabled
            })
            .await?;
        Ok(match changed {
            Some(true) => DisableOutcome::Disabled,
            Some(false) => DisableOutcome::AlreadyDisabled,
            None => DisableOutcome::NotFound,
        })
    }

    async fn record_outcome(
        &self,
        id: &str,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<HealthChange>> {
        let policy = policy.clone();
        self.change_subscription(id, move |sub| sub.apply_outcome(outcome, at, &policy))
            .await
    }

    async fn claim_probe(
        &self,
        id: &str,
        now: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<ProbeClaim>> {
        let policy = policy.clone();
        self.change_subscription(id, move |sub| sub.apply_probe_claim(now, &policy))
            .await
    }

    async fn reserve_slot(
        &self,
        subscription_id: &str,
        rate: f64,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> StoreResult<Slot> {
        self.reserve_rate_slot(subscription_id, rate, now, max_wait)
            .await
    }
}

impl SqliteBackend {
    /// Reads, changes and writes back one subscription inside one write: the writer is the only
    /// one, so no concurrent change can slip in between. `None` when there is none.
    async fn change_subscription<R: Send + 'static>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Subscription) -> R + Send + 'static,
    ) -> StoreResult<Option<R>> {
        let id = id.to_owned();
        self.write(move |c| {
            let data: Option<String> = c
                .prepare_cached("SELECT data FROM subscriptions WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([&id], |r| r.get(0)))
                .optional()
                .map_err(db_err)?;
            let Some(data) = data else { return Ok(None) };
            let mut sub: Subscription = from_json(&data, &format!("subscription {id}"))?;
            let result = change(&mut sub);
            exec(
                c,
                "UPDATE subscriptions SET data = ?2 WHERE id = ?1",
                params![id, to_json(&sub)?],
            )
            .map_err(db_err)?;
            Ok(Some(result))
        })
        .await
    }
}

const EVENT_COLUMNS: &str =
    "id, source_id, event_type, received_at, content_type, dedup_key, headers, body, enqueued";

/// An `events` row as read, before the parts stored as text are decoded.
struct EventRow {
    id: String,
    source_id: String,
    event_type: String,
    received_at: String,
    content_type: Option<String>,
    dedup_key: String,
    headers: String,
    body: Vec<u8>,
    enqueued: bool,
}

impl EventRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            source_id: r.get(1)?,
            event_type: r.get(2)?,
            received_at: r.get(3)?,
            content_type: r.get(4)?,
            dedup_key: r.get(5)?,
            headers: r.get(6)?,
            body: r.get(7)?,
            enqueued: r.get(8)?,
        })
    }

    fn decode(self) -> StoreResult<Event> {
        let headers: BTreeMap<String, String> =
            from_json(&self.headers, &format!("headers of event {}", self.id))?;
        Ok(Event {
            received_at: parse_ts(&self.received_at)?,
            id: self.id,
            source_id: self.source_id,
            event_type: self.event_type,
            content_type: self.content_type,
            dedup_key: self.dedup_key,
            headers,
            body: Bytes::from(self.body),
            enqueued: self.enqueued,
        })
    }
}

fn query_events(c: &Connection, sql: &str, args: Vec<Value>) -> StoreResult<Vec<Event>> {
    let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params_from_iter(args), EventRow::read)
        .map_err(db_err)?;
    rows.map(|row| row.map_err(db_err)?.decode()).collect()
}

/// The listing's columns. `length()` of a BLOB is answered from the record header, so SQLite
/// never reads the body (its overflow pages) for it; `headers` and `body` are not selected.
pub(super) const SUMMARY_COLUMNS: &str =
    "id, source_id, event_type, received_at, content_type, length(body)";

pub(super) fn query_summaries(
    c: &Connection,
    sql: &str,
    args: Vec<Value>,
) -> StoreResult<Vec<EventSummary>> {
    let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(db_err)?;
    rows.map(|row| {
        let (id, source_id, event_type, received_at, content_type, size) = row.map_err(db_err)?;
        Ok(EventSummary {
            received_at: parse_ts(&received_at)?,
            size: usize::try_from(size)
                .map_err(|_| StoreError::Corrupt(format!("event {id}: body size {size}")))?,
            id,
            source_id,
            event_type,
            content_type,
        })
    })
    .collect()
}

fn get_event(c: &Connection, id: &str) -> StoreResult<Option<Event>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1");
    Ok(query_events(c, &sql, vec![Value::Text(id.to_owned())])?.pop())
}

/// The dedup check and the insert, in one write (one transaction, see `SqliteBackend::write`) so
/// concurrent receivers of the same delivery store it once.
fn insert_event(tx: &Connection, event: &Event, window: Duration) -> StoreResult<InsertOutcome> {
    let previous: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT event_id, received_at FROM event_dedup WHERE source_id = ?1 AND dedup_key = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![event.source_id, event.dedup_key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .optional()
        .map_err(db_err)?;
    if let Some((original_id, original_at)) = previous {
        let original_at = parse_ts(&original_at)?;
        let within =
            window_start(event.received_at, window).is_none_or(|start| original_at > start);
        if within {
            // A key pointing at a missing event is treated as free rather than failing forever.
            if let Some(original) = get_event(tx, &original_id)? {
                return Ok(InsertOutcome::Duplicate(Box::new(original)));
            }
        }
    }
    let received_at = ts(&event.received_at);
    exec(
        tx,
        &format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            event.id,
            event.source_id,
            event.event_type,
            received_at,
            event.content_type,
            event.dedup_key,
            super::to_json(&event.headers)?,
            &event.body[..],
            event.enqueued,
        ],
    )
    .map_err(|e| insert_err(e, || format!("event {}", event.id)))?;
    exec(
        tx,
        "INSERT INTO event_dedup (source_id, dedup_key, event_id, received_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source_id, dedup_key)
         DO UPDATE SET event_id = excluded.event_id, received_at = excluded.received_at",
        params![event.source_id, event.dedup_key, event.id, received_at],
    )
    .map_err(db_err)?;
    Ok(InsertOutcome::Inserted)
}

#[async_trait]
impl EventStore for SqliteBackend {
    /// Any fresh id: rows are found by id whatever it is.
    fn new_event_id(&self) -> String {
        crate::domain::new_id("evt")
    }

    async fn insert_event(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<InsertOutcome> {
        let event = event.clone();
        self.write(move |c| insert_event(c, &event, dedup_window))
            .await
    }

    /// Plans are not stored: the attempts table finds an event's attempts by its id.
    async fn insert_sent(&self, event: &Event, sent: &SentFirst) -> StoreResult<InsertOutcome> {
        self.insert_event(event, sent.window()).await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        let id = id.to_owned();
        self.run(move |c| get_event(c, &id)).await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        // Built per query (rather than `?1 IS NULL OR …`) so SQLite can use the source index.
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM events");
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        if let Some(source_id) = &query.source_id {
            conditions.push("source_id = ?");
            args.push(Value::Text(source_id.clone()));
        }
        if let Some(before) = &query.before {
            conditions.push("id < ?");
            args.push(Value::Text(before.clone()));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        args.push(Value::Integer(page_limit(query.limit)));
        self.run(move |c| query_summaries(c, &sql, args)).await
    }

    async fn mark_enqueued(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |c| {
            match c
                .execute("UPDATE events SET enqueued = 1 WHERE id = ?1", [&id])
                .map_err(db_err)?
            {
                0 => Err(StoreError::NotFound(format!("event {id}"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn list_unenqueued(
        &self,
        received_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE enqueued = 0 AND received_at <= ?
             ORDER BY received_at, id LIMIT ?"
        );
        let args = vec![
            Value::Text(ts(&received_before)),
            Value::Integer(page_limit(limit)),
        ];
        self.run(move |c| query_events(c, &sql, args)).await
    }

    async fn events_page(
        &self,
        range: &EventRange,
        limit: usize,
    ) -> StoreResult<Vec<EventSummary>> {
        self.events_in_range(range, limit).await
    }
}

/// Insert, enqueue and mark enqueued in one write: the event and its task commit together or
/// not at all, so no event is ever left stored and not enqueued.
#[async_trait]
impl Intake for SqliteBackend {
    fn new_event_id(&self) -> String {
        EventStore::new_event_id(self)
    }

    async fn store_and_enqueue(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<Stored> {
        let mut event = event.clone();
        let stored = self
            .write(move |c| {
                event.enqueued = true;
                let (event_id, duplicate) = match insert_event(c, &event, dedup_window)? {
                    InsertOutcome::Inserted => (event.id, false),
                    InsertOutcome::Duplicate(original) if original.enqueued => {
                        return Ok(Stored {
                            event_id: original.id,
                            duplicate: true,
                        })
                    }
                    InsertOutcome::Duplicate(original) => {
                        exec(
                            c,
                            "UPDATE events SET enqueued = 1 WHERE id = ?1",
                            [&original.id],
                        )
                        .map_err(db_err)?;
                        (original.id, true)
                    }
                };
                // By reference: the queue is in the same database as the event.
                let task = Task::Dispatch {
                    event_id: event_id.clone(),
                    event: None,
                    sent_first: None,
                };
                insert_messages(c, &[(task.to_json(), 0)])?;
                Ok(Stored {
                    event_id,
                    duplicate,
                })
            })
            .await?;
        self.wake();
        Ok(stored)
    }
}

pub(super) fn query_attempts(
    c: &Connection,
    sql: &str,
    args: Vec<Value>,
) -> StoreResult<Vec<Attempt>> {
    let mut stmt = c.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    rows.map(|row| from_json(&row.map_err(db_err)?, "attempt"))
        .collect()
}

#[async_trait]
impl AttemptLog for SqliteBackend {
    async fn record_attempt(&self, attempt: &Attempt) -> StoreResult<()> {
        let data = to_json(attempt)?;
        let a = attempt.clone();
        self.write(move |c| {
            // REPLACE: recording the same (event, subscription, attempt) again is idempotent.
            exec(c,
                "INSERT OR REPLACE INTO attempts
                 (event_id, subscription_id, attempt, started_at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.event_id, a.subscription_id, a.attempt, ts(&a.started_at), data],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn attempts_for_event(&self, event_id: &str) -> StoreResult<Vec<Attempt>> {
        let args = vec![Value::Text(event_id.to_owned())];
        self.run(move |c| {
            query_attempts(
                c,
                "SELECT data FROM attempts WHERE event_id = ? ORDER BY subscription_id, attempt",
                args,
            )
        })
        .await
    }

    async fn attempts_for_subscription(
        &self,
        subscription_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Attempt>> {
        let args = vec![
            Value::Text(subscription_id.to_owned()),
            Value::Integer(page_limit(limit)),
        ];
        self.run(move |c| {
            query_attempts(
                c,
                "SELECT data FROM attempts WHERE subscription_id = ?
                 ORDER BY started_at DESC, attempt DESC LIMIT ?",
                args,
            )
        })
        .await
    }

    async fn attempts_for_subscription_page(
        &self,
        subscription_id: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<AttemptPage> {
        self.attempts_page(subscription_id, since, until, cursor, limit)
            .await
    }
}

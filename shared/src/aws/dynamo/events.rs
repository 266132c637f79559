//! The events table: conditional insert with dedup markers, listing through keys-only indexes
//! and the sparse index of events not yet enqueued.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::names::*;
use super::{
    epoch_seconds, from_item, key, sortable_time, string_attr, to_item, DynamoStore, Item,
};
use crate::aws::sdk_error;
use crate::domain::{Event, EventSummary};
use crate::ports::{EventQuery, EventRange, EventStore, InsertOutcome, StoreError, StoreResult};

/// Dedup markers live in the events table under this key prefix.
const DEDUP_PREFIX: &str = "dedup#";
/// How often a transaction cancelled by a concurrent one is retried.
const TRANSACTION_TRIES: u32 = 3;

impl DynamoStore {
    /// Ids from a keys-only index query.
    pub(super) async fn query_event_ids(
        &self,
        query: QueryFluentBuilder,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let items = self
            .query(query.table_name(&self.events), Some(limit))
            .await?;
        items.iter().map(|item| string_attr(item, "id")).collect()
    }

    /// Events by id, in the order given; ids that no longer exist (expired) are skipped.
    async fn batch_get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        self.batch_get(ids, &[])
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Event items by id, in the order given, with only the `attributes` named (all when
    /// empty); ids that no longer exist (expired) are skipped.
    async fn batch_get(&self, ids: &[String], attributes: &[&str]) -> StoreResult<Vec<Item>> {
        let mut found: HashMap<String, Item> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk.iter().map(|id| key("id", id)).collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true);
            if !attributes.is_empty() {
                // Placeholders for every name, so none can clash with a reserved word.
                let (projection, names) = projection(attributes);
                request = request
                    .projection_expression(projection)
                    .set_expression_attribute_names(Some(names));
            }
            let mut request = request
                .build()
                .map_err(|e| StoreError::Unavailable(format!("BatchGetItem: {e}")))?;
            // 100 bodies of 256 KiB exceed one response's 16 MB: loop on the unprocessed keys.
            // Only rounds that return nothing (throttling) back off and count towards giving up.
            let mut idle_rounds = 0u32;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.events, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(&self.events))
                    .unwrap_or_default();
                let progressed = !items.is_empty();
                for item in items {
                    found.insert(string_attr(&item, "id")?, item);
                }
                match out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.events))
                {
                    Some(rest) if !rest.keys.is_empty() => {
                        if !progressed {
                            idle_rounds += 1;
                            if idle_rounds > 6 {
                                return Err(StoreError::Unavailable(
                                    "BatchGetItem: keys left unprocessed".into(),
                                ));
                            }
                            tokio::time::sleep(Duration::from_millis(25 << idle_rounds)).await;
                        }
                        request = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Summaries of events by id, in the order given: the body is not read, only its stored
    /// size. Events stored before sizes were (no `body_size`) have their body read, one at a
    /// time, to measure it.
    pub(super) async fn batch_get_summaries(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<EventSummary>> {
        let items = self.batch_get(ids, &SummaryItem::ATTRIBUTES).await?;
        let mut summaries = Vec::with_capacity(items.len());
        for item in items {
            let item: SummaryItem = from_item(item)?;
            let size = match item.body_size {
                Some(size) => size,
                None => match self.stored_body_size(&item.id).await? {
                    Some(size) => size,
                    None => continue, // expired meanwhile
                },
            };
            summaries.push(EventSummary {
                id: item.id,
                source_id: item.source_id,
                event_type: item.event_type,
                received_at: item.received_at,
                content_type: item.content_type,
                size,
            });
        }
        Ok(summaries)
    }

    /// The body length of an event stored without `body_size`; `None` when it is gone.
    async fn stored_body_size(&self, id: &str) -> StoreResult<Option<usize>> {
        tracing::debug!(
            event_id = id,
            "event without body_size: reading its body to size it"
        );
        let (projection, names) = projection(&["body"]);
        let out = self
            .client
            .get_item()
            .table_name(&self.events)
            .set_key(Some(key("id", id)))
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        match out.item.as_ref().and_then(|item| item.get("body")) {
            None => Ok(None),
            Some(AttributeValue::B(body)) => Ok(Some(body.as_ref().len())),
            Some(_) => Err(StoreError::Corrupt(format!(
                "event {id}: body is not binary"
            ))),
        }
    }

    async fn try_insert_event(
        &self,
        event: &Event,
        window: Duration,
    ) -> StoreResult<Option<InsertOutcome>> {
        let mut item = to_item(event)?;
        item.insert(EXPIRES_AT.into(), self.expires_at(event.received_at));
        item.insert(
            LIST_SHARD.into(),
            AttributeValue::S(list_shard(&event.id, self.list_shards)),
        );
        item.insert(
            BODY_SIZE.into(),
            AttributeValue::N(event.body.len().to_string()),
        );
        item.insert(
            RECEIVED_SK.into(),
            AttributeValue::S(received_sk(event.received_at, &event.id)),
        );
        if !event.enqueued {
            // Sharded like `by-time`: every new event passes through this index.
            item.insert(
                PENDING.into(),
                AttributeValue::S(list_shard(&event.id, self.list_shards)),
            );
        }
        let received_ns = nanos(event.received_at);
        let window_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
        let marker = HashMap::from([
            (
                "id".to_string(),
                AttributeValue::S(dedup_id(&event.source_id, &event.dedup_key)),
            ),
            ("event_id".to_string(), AttributeValue::S(event.id.clone())),
            (
                "received_ns".to_string(),
                AttributeValue::N(received_ns.to_string()),
            ),
            // The marker only matters for the window; TTL removes it a while after (counted
            // from now too, as a back-dated event's window may still be running).
            (
                EXPIRES_AT.to_string(),
                epoch_seconds(
                    event.received_at.max(Utc::now()),
                    window + Duration::from_secs(3600),
                ),
            ),
        ]);
        let transact = |put: aws_sdk_dynamodb::types::builders::PutBuilder| {
            put.table_name(&self.events)
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::Unavailable(format!("TransactWriteItems: {e}")))
        };
        let marker_put = transact(
            Put::builder()
                .set_item(Some(marker))
                // A marker older than the window may be replaced: its window has passed.
                .condition_expression("attribute_not_exists(id) OR received_ns <= :cutoff")
                .expression_attribute_values(
                    ":cutoff",
                    AttributeValue::N(received_ns.saturating_sub(window_ns).to_string()),
                ),
        )?;
        let event_put = transact(
            Put::builder()
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(id)"),
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(marker_put)
            .transact_items(event_put)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Some(InsertOutcome::Inserted)),
            Err(err) => err,
        };
        // Matched on the typed cancellation reasons, in the order of the transact items.
        let reasons: Vec<Option<String>> = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().map(str::to_owned))
                .collect(),
            _ => return Err(sdk_error("TransactWriteItems", err)),
        };
        let code = |i: usize| reasons.get(i).cloned().flatten();
        if code(0).as_deref() == Some("ConditionalCheckFailed") {
            return self.original_of(event).await;
        }
        if code(1).as_deref() == Some("ConditionalCheckFailed") {
            return Err(StoreError::Conflict(format!("event {}", event.id)));
        }
        if reasons.iter().flatten().any(|c| c == "TransactionConflict") {
            // A concurrent insert with the same dedup key: try again to see its outcome.
            return Ok(None);
        }
        Err(sdk_error("TransactWriteItems", err))
    }

    /// The event a live dedup marker points to; `None` when the marker vanished meanwhile.
    async fn original_of(&self, event: &Event) -> StoreResult<Option<InsertOutcome>> {
        let marker_id = dedup_id(&event.source_id, &event.dedup_key);
        let Some(marker) = self.get_item(&self.events, key("id", &marker_id)).await? else {
            return Ok(None);
        };
        let original_id = string_attr(&marker, "event_id")?;
        match self.get_event(&original_id).await? {
            Some(original) => Ok(Some(InsertOutcome::Duplicate(Box::new(original)))),
            None => Err(StoreError::Corrupt(format!(
                "dedup marker of {} points to missing event {original_id}",
                event.source_id
            ))),
        }
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn insert_event(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<InsertOutcome> {
        for _ in 0..TRANSACTION_TRIES {
            if let Some(outcome) = self.try_insert_event(event, dedup_window).await? {
                return Ok(outcome);
            }
        }
        Err(StoreError::Unavailable(
            "TransactWriteItems: TransactionConflict".into(),
        ))
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        if id.starts_with(DEDUP_PREFIX) {
            return Ok(None);
        }
        self.get_record(&self.events, id).await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<EventSummary>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let page = |partition: &str, value: String| {
            let mut condition = format!("{partition} = :p");
            let mut q = self
                .client
                .query()
                .index_name(if partition == "source_id" {
                    BY_SOURCE
                } else {
                    BY_TIME
                })
                .scan_index_forward(false)
                .expression_attribute_values(":p", AttributeValue::S(value));
            if let Some(before) = &query.before {
                condition.push_str(" AND id < :before");
                q = q.expression_attribute_values(":before", AttributeValue::S(before.clone()));
            }
            q.key_condition_expression(condition)
        };
        let ids = match &query.source_id {
            Some(source_id) => {
                self.query_event_ids(page("source_id", source_id.clone()), query.limit)
                    .await?
            }
            None => {
                // Newest of each partition, merged.
                let shards = (0..self.list_shards).map(|shard| {
                    self.query_event_ids(page(LIST_SHARD, shard.to_string()), query.limit)
                });
                let mut ids: Vec<String> = futures::future::try_join_all(shards)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
                ids.sort_unstable_by(|a, b| b.cmp(a));
                ids.truncate(query.limit);
                ids
            }
        };
        self.batch_get_summaries(&ids).await
    }

    async fn mark_enqueued(&self, id: &str) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.events)
            .set_key(Some(key("id", id)))
            // Leaving the sparse index is what takes the event off the sweep's list.
            .update_expression(format!("SET enqueued = :t REMOVE {PENDING}"))
            .condition_expression("attribute_exists(source_id)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
                {
                    StoreError::NotFound(format!("event {id}"))
                } else {
                    sdk_error("UpdateItem", e)
                }
            })?;
        Ok(())
    }

    async fn list_unenqueued(
        &self,
        received_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // `received_sk` is `{timestamp}#{id}`; `$` sorts right after `#`, so this bound keeps
        // every event received at `received_before` exactly.
        let upper = format!("{}$", sortable_time(received_before));
        let shards = (0..self.list_shards).map(|shard| {
            let query = self
                .client
                .query()
                .table_name(&self.events)
                .index_name(UNENQUEUED)
                .key_condition_expression(format!("{PENDING} = :p AND {RECEIVED_SK} < :upper"))
                .expression_attribute_values(":p", AttributeValue::S(shard.to_string()))
                .expression_attribute_values(":upper", AttributeValue::S(upper.clone()));
            self.query(query, Some(limit))
        });
        // Oldest of each partition, merged.
        let mut keys = futures::future::try_join_all(shards)
            .await?
            .iter()
            .flatten()
            .map(|item| Ok((string_attr(item, RECEIVED_SK)?, string_attr(item, "id")?)))
            .collect::<StoreResult<Vec<_>>>()?;
        keys.sort_unstable();
        keys.truncate(limit);
        let ids: Vec<String> = keys.into_iter().map(|(_, id)| id).collect();
        // The index lags the table: drop events enqueued meanwhile.
        let events = self.batch_get_events(&ids).await?;
        Ok(events.into_iter().filter(|e| !e.enqueued).collect())
    }

    async fn events_page(
        &self,
        range: &EventRange,
        limit: usize,
    ) -> StoreResult<Vec<EventSummary>> {
        self.events_in_range(range, limit).await
    }
}

/// What a listing reads of an event item.
#[derive(Deserialize)]
struct SummaryItem {
    id: String,
    source_id: String,
    event_type: String,
    received_at: DateTime<Utc>,
    content_type: Option<String>,
    body_size: Option<usize>,
}

impl SummaryItem {
    const ATTRIBUTES: [&'static str; 6] = [
        "id",
        "source_id",
        "event_type",
        "received_at",
        "content_type",
        BODY_SIZE,
    ];
}

/// A projection expression naming `attributes` through placeholders (`#a0, #a1…`).
fn projection(attributes: &[&str]) -> (String, HashMap<String, String>) {
    let names: HashMap<String, String> = attributes
        .iter()
        .enumerate()
        .map(|(i, name)| (format!("#a{i}"), (*name).to_owned()))
        .collect();
    let expression = (0..attributes.len())
        .map(|i| format!("#a{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    (expression, names)
}

fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn received_sk(t: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", sortable_time(t))
}

/// Stable (persisted) spread of events over the `by-time` and `unenqueued` partitions
/// (`HOOKHUB_LIST_SHARDS`; one partition would cap ingestion at ~1,000 events/s).
fn list_shard(id: &str, shards: u32) -> String {
    super::stable_shard(id, shards).to_string()
}

/// The dedup marker's key. Long provider keys are hashed to stay far below the 2 KB key limit.
fn dedup_id(source_id: &str, dedup_key: &str) -> String {
    if dedup_key.len() <= 512 {
        format!("{DEDUP_PREFIX}{source_id}#{dedup_key}")
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(dedup_key.as_bytes());
        format!("{DEDUP_PREFIX}{source_id}#sha256:{}", hex::encode(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sortable_times_sort_like_times() {
        let a = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let b = Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap();
        // As serde stores them, the whole second sorts after the later half second.
        let serde = |t: DateTime<Utc>| serde_json::to_string(&t).unwrap();
        assert!(serde(a) > serde(b), "why the fixed width is needed");
        assert!(sortable_time(a) < sortable_time(b));
        assert!(received_sk(a, "evt_z") < format!("{}$", sortable_time(a)));
        assert!(received_sk(b, "evt_a") > format!("{}$", sortable_time(a)));
    }

    #[test]
    fn dedup_ids_stay_short() {
        assert_eq!(dedup_id("gh", "abc"), "dedup#gh#abc");
        assert!(dedup_id("gh", &"x".repeat(5000)).len() < 100);
    }

    #[test]
    fn event_items_carry_binary_bodies() {
        let event = Event {
            id: "evt_1".into(),
            source_id: "gh".into(),
            event_type: "push".into(),
            received_at: Utc::now(),
            content_type: None,
            dedup_key: "k".into(),
            headers: Default::default(),
            body: bytes::Bytes::from_static(&[0, 159, 146, 150, 255]),
            enqueued: false,
        };
        let item = to_item(&event).unwrap();
        assert!(matches!(item.get("body"), Some(AttributeValue::B(_))));
        let back: Event = from_item(item).unwrap();
        assert_eq!(back, event);
    }
}

//! The events table: conditional insert with dedup markers, listing through keys-only indexes
//! and the sparse index of events not yet enqueued.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};

use super::event_item::{dedup_window, event_from_item, summary_from_item, SUMMARY_ATTRIBUTES};
use super::insert::DEDUP_PREFIX;
use super::names::*;
use super::{key, sortable_time, string_attr, DynamoStore, Item};
use crate::aws::sdk_error;
use crate::domain::{Event, EventSummary};
use crate::ports::{
    Confirmed, EventQuery, EventRange, EventStore, InsertOutcome, StoreError, StoreResult,
};

impl DynamoStore {
    /// The index partitions holding a source's events (its `by-source` shards), or all events
    /// (the `by-time` shards), as (key attribute, value).
    pub(super) fn event_partitions(&self, source_id: Option<&str>) -> Vec<(&'static str, String)> {
        match source_id {
            Some(source_id) => (0..self.index_shards)
                .map(|k| (SOURCE_SHARD, super::shard_key(source_id, k)))
                .collect(),
            None => (0..self.list_shards)
                .map(|k| (LIST_SHARD, k.to_string()))
                .collect(),
        }
    }

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

    /// Event items by id, in the order given, with only the `attributes` named (all when
    /// empty); ids that no longer exist (expired) are skipped.
    async fn batch_get(&self, ids: &[String], attributes: &[&str]) -> StoreResult<Vec<Item>> {
        let keys = ids.iter().map(|id| key("id", id)).collect();
        let mut found: HashMap<String, Item> = HashMap::with_capacity(ids.len());
        for item in self.batch_get_items(&self.events, keys, attributes).await? {
            found.insert(string_attr(&item, "id")?, item);
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Items of `table` by key, strongly consistent, in no particular order, with only the
    /// `attributes` named (all when empty); keys that no longer exist are skipped.
    pub(super) async fn batch_get_items(
        &self,
        table: &str,
        keys: Vec<Item>,
        attributes: &[&str],
    ) -> StoreResult<Vec<Item>> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
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
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default();
                let progressed = !items.is_empty();
                found.extend(items);
                match out.unprocessed_keys.and_then(|mut u| u.remove(table)) {
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
        Ok(found)
    }

    /// Summaries of events by id, in the order given: the payload is not read, only the
    /// stored body size.
    pub(super) async fn batch_get_summaries(
        &self,
        ids: &[String],
    ) -> StoreResult<Vec<EventSummary>> {
        self.batch_get(ids, &SUMMARY_ATTRIBUTES)
            .await?
            .iter()
            .map(summary_from_item)
            .collect()
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn insert_event(
        &self,
        event: &Event,
        dedup_window: Duration,
    ) -> StoreResult<InsertOutcome> {
        self.put_event_then_marker(event, dedup_window).await
    }

    async fn confirm_sent(&self, event: &Event, dedup_window: Duration) -> StoreResult<Confirmed> {
        self.confirm_sent_event(event, dedup_window).await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        if id.starts_with(DEDUP_PREFIX) {
            return Ok(None);
        }
        self.get_item(&self.events, key("id", id))
            .await?
            .map(|item| event_from_item(&item))
            .transpose()
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
                .index_name(if partition == SOURCE_SHARD {
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
        // Newest of each partition (the source's shards, or all of `by-time`), merged.
        let shards = self.event_partitions(query.source_id.as_deref());
        let pages = shards
            .into_iter()
            .map(|(attribute, value)| self.query_event_ids(page(attribute, value), query.limit));
        let mut ids: Vec<String> = futures::future::try_join_all(pages)
            .await?
            .into_iter()
            .flatten()
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(query.limit);
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
        let mut events = Vec::with_capacity(ids.len());
        for item in self.batch_get(&ids, &[]).await? {
            let event = event_from_item(&item)?;
            // The index lags the table: events enqueued meanwhile are dropped. The others
            // finish their insert first (an interrupted one may be a duplicate to delete).
            if !event.enqueued && self.settle_pending(&event, dedup_window(&item)).await? {
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn events_page(
        &self,
        range: &EventRange,
        limit: usize,
    ) -> StoreResult<Vec<EventSummary>> {
        self.events_in_range(range, limit).await
    }
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

/// Stable (persisted) spread of events over the `by-time` and `unenqueued` partitions
/// (`HOOKHUB_LIST_SHARDS`; one partition would cap ingestion at ~1,000 events/s).
pub(super) fn list_shard(id: &str, shards: u32) -> String {
    super::stable_shard(id, shards).to_string()
}

#[cfg(test)]
mod tests {
    use super::super::event_item::received_sk;
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
}

//! The ascending, bounded pages bulk recovery and replay walk through: a subscription's attempts
//! on `by-subscription` (`started_sk BETWEEN`), and events on `by-source` or the `by-time`
//! partitions (`id BETWEEN`, merged). Both return a page's worth of keys per call, never the
//! whole range.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::names::*;
use super::{from_item, sortable_time, DynamoStore};
use crate::aws::sdk_error;
use crate::domain::EventSummary;
use crate::ports::{AttemptPage, EventRange, StoreError, StoreResult};

impl DynamoStore {
    pub(super) async fn attempts_page(
        &self,
        subscription_id: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<AttemptPage> {
        let start = cursor.map(decode_key).transpose()?;
        // `started_sk` is `{time}#{event}#{attempt}`: `$` sorts after `#`, so the upper bound
        // takes every attempt started at `until` itself.
        let out = self
            .client
            .query()
            .table_name(&self.attempts)
            .index_name(BY_SUBSCRIPTION)
            .key_condition_expression("subscription_id = :s AND #sk BETWEEN :lo AND :hi")
            .expression_attribute_names("#sk", STARTED_SK)
            .expression_attribute_values(":s", AttributeValue::S(subscription_id.into()))
            .expression_attribute_values(":lo", AttributeValue::S(sortable_time(since)))
            .expression_attribute_values(
                ":hi",
                AttributeValue::S(format!("{}$", sortable_time(until))),
            )
            .scan_index_forward(true)
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let attempts = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<Vec<_>>>()?;
        let cursor = out.last_evaluated_key.map(|key| encode_key(&key));
        Ok(AttemptPage { attempts, cursor })
    }

    pub(super) async fn events_in_range(
        &self,
        range: &EventRange,
        limit: usize,
    ) -> StoreResult<Vec<EventSummary>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // BETWEEN is inclusive: one more than a page is asked for, and `after` itself dropped.
        let page = |partition: &str, value: String| {
            self.client
                .query()
                .index_name(if partition == "source_id" {
                    BY_SOURCE
                } else {
                    BY_TIME
                })
                .key_condition_expression(format!("{partition} = :p AND id BETWEEN :lo AND :hi"))
                .expression_attribute_values(":p", AttributeValue::S(value))
                .expression_attribute_values(":lo", AttributeValue::S(range.after.clone()))
                .expression_attribute_values(":hi", AttributeValue::S(range.through.clone()))
                .scan_index_forward(true)
        };
        let queries: Vec<_> = match &range.source_id {
            Some(source_id) => vec![page("source_id", source_id.clone())],
            None => (0..self.list_shards)
                .map(|shard| page(LIST_SHARD, shard.to_string()))
                .collect(),
        };
        let pages = queries
            .into_iter()
            .map(|query| self.query_event_ids(query, limit + 1));
        // The oldest of each partition, merged: the first `limit` of them are the range's.
        let mut ids: Vec<String> = futures::future::try_join_all(pages)
            .await?
            .into_iter()
            .flatten()
            .filter(|id| *id != range.after)
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        self.batch_get_summaries(&ids).await
    }
}

/// The `LastEvaluatedKey` (string attributes only, as every key here is) as an opaque string.
fn encode_key(key: &HashMap<String, AttributeValue>) -> String {
    let strings: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(name, value)| value.as_s().ok().map(|s| (name.as_str(), s.as_str())))
        .collect();
    serde_json::to_string(&strings).expect("strings serialise")
}

fn decode_key(cursor: &str) -> StoreResult<HashMap<String, AttributeValue>> {
    let strings: HashMap<String, String> = serde_json::from_str(cursor)
        .map_err(|_| StoreError::Corrupt(format!("not an attempts cursor: {cursor:?}")))?;
    Ok(strings
        .into_iter()
        .map(|(name, value)| (name, AttributeValue::S(value)))
        .collect())
}

//! The ascending, bounded pages bulk recovery and replay walk through: a subscription's attempts
//! in the subscription's partitions of the attempts table (`sk BETWEEN`, merged), and events in
//! the events table's shards or a source's `by-source` partitions (`id BETWEEN`, merged lazily). Both return a page's worth of keys per call, never the
//! whole range.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::names::*;
use super::{attempt_sk, from_item, merge, sortable_time, string_attr, DynamoStore, Item};
use crate::domain::{Attempt, EventSummary};
use crate::ports::{AttemptPage, EventRange, StoreError, StoreResult, PLANNED_START_MAX_LAG};

impl DynamoStore {
    pub(super) async fn attempts_page(
        &self,
        subscription_id: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<AttemptPage> {
        let limit = limit.clamp(1, 1000);
        let after = cursor.map(decode_cursor).transpose()?;
        // An attempt's sort key is `{time}#{event}#{attempt}`, the time its start or, for a
        // fan-out, its plan, at most `PLANNED_START_MAX_LAG` earlier: the range is read from that
        // much before `since` and cut by `started_at` below. `$` sorts after `#`, so the upper
        // bound takes every attempt at `until` itself. BETWEEN is inclusive: the cursor's own
        // attempt comes back and is dropped, so each shard is asked for one more than a page.
        let earliest =
            since - chrono::Duration::from_std(PLANNED_START_MAX_LAG).unwrap_or_default();
        let earliest = sortable_time(earliest);
        let lo = match &after {
            Some(after) if *after > earliest => after.clone(),
            _ => earliest,
        };
        let hi = format!("{}$", sortable_time(until));
        let shards = (0..self.index_shards).map(|k| {
            let query = self
                .subscription_shard(subscription_id, k, "#p = :p AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#sk", ATTEMPT_SK)
                .expression_attribute_values(":lo", AttributeValue::S(lo.clone()))
                .expression_attribute_values(":hi", AttributeValue::S(hi.clone()))
                .scan_index_forward(true);
            self.query(query, Some(limit + 1))
        });
        // The oldest of each shard, merged: the first `limit` of them are the range's next page.
        let mut items: Vec<(String, Item)> = futures::future::try_join_all(shards)
            .await?
            .into_iter()
            .flatten()
            .map(|item| (attempt_sk(&item), item))
            .filter(|(sk, _)| after.as_ref().is_none_or(|after| sk > after))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.truncate(limit);
        // A shard holding more than a page leaves at least `limit` here, so a short page is the
        // range's end (counted before the cut by start: a page may hold fewer, even none).
        let cursor = (items.len() == limit)
            .then(|| items.last().map(|(sk, _)| encode_cursor(sk)))
            .flatten();
        let mut attempts = items
            .into_iter()
            .map(|(_, item)| from_item::<Attempt>(item))
            .collect::<StoreResult<Vec<_>>>()?;
        attempts.retain(|a| since <= a.started_at && a.started_at <= until);
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
        // BETWEEN is inclusive: one more than a page is merged, and `after` itself dropped.
        let source = range.source_id.as_deref();
        let items = merge::merged(
            self.event_partitions(source),
            limit + 1,
            "id",
            false,
            |partition, start, want| {
                let q = self
                    .events_query(source, partition, " AND id BETWEEN :lo AND :hi", true)
                    .expression_attribute_values(":lo", AttributeValue::S(range.after.clone()))
                    .expression_attribute_values(":hi", AttributeValue::S(range.through.clone()));
                self.query_once(q, start, want)
            },
        )
        .await?;
        let mut items = items
            .into_iter()
            .filter(|item| string_attr(item, "id").map_or(true, |id| id != range.after))
            .collect::<Vec<_>>();
        items.truncate(limit);
        self.summaries_of(source, items).await
    }
}

/// The page cursor: the last `attempt_sk` returned, as an opaque string.
fn encode_cursor(attempt_sk: &str) -> String {
    serde_json::json!({ "after": attempt_sk }).to_string()
}

fn decode_cursor(cursor: &str) -> StoreResult<String> {
    #[derive(serde::Deserialize)]
    struct Cursor {
        after: String,
    }
    serde_json::from_str::<Cursor>(cursor)
        .map(|c| c.after)
        .map_err(|_| StoreError::Corrupt(format!("not an attempts cursor: {cursor:?}")))
}

//! DynamoDB stores. One table per record kind, so each function's IAM role can be limited to
//! the tables it touches. Items are mapped with `serde_dynamo`; the few extra attributes added
//! here are keys (of the table and its indexes) and the TTL. Layout: `docs/aws-layout.md`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{sdk_error, AwsSettings};
use crate::decision::health::ProbeClaim;
use crate::decision::rate::Slot;
use crate::decision::{DisabledReason, HealthChange, HealthOutcome, HealthPolicy};
use crate::domain::{Attempt, Event, Source, StoredPlan, Subscription, SubscriptionRoute};
use crate::ports::{
    AttemptLog, AttemptPage, DisableOutcome, PlannedAttempt, SourceStore, StoreError, StoreResult,
    SubscriptionStore,
};
use attempts::StoredPlanFrom;

type Item = HashMap<String, AttributeValue>;

/// Attribute and index names shared with `setup.rs`.
pub(crate) mod names {
    /// Subscriptions: what the receiver reads of each (`list_subscription_routes`); its grant
    /// names exactly these (template.yaml, `ListSubscriptionRoutes`).
    pub const SUBSCRIPTION_ROUTE_ATTRIBUTES: [&str; 3] = ["id", "sources", "event_types"];
    /// TTL attribute (epoch seconds) on events, dedup markers and attempts.
    pub const EXPIRES_AT: &str = "expires_at";
    /// Events: GSI listing one source's events newest first (`source_shard`, `id`), each
    /// source spread over `HOOKHUB_INDEX_SHARDS` partitions.
    pub const BY_SOURCE: &str = "by-source";
    /// Events: `{source_id}#{k}`, `k` a stable hash of the event id modulo the index shards.
    pub const SOURCE_SHARD: &str = "source_shard";
    /// Events table: partition key. An event's is its shard, `"0"`..`"{S-1}"` (`S` =
    /// `HOOKHUB_LIST_SHARDS`, a stable hash of its id), so each shard is a time-ordered listing
    /// of its events by `id`, the sort key; a dedup marker's or a rate slot's is its own id.
    pub const EVENT_PK: &str = "pk";
    /// Events: sparse GSI holding only events not yet enqueued (`pending`, `received_sk`).
    pub const UNENQUEUED: &str = "unenqueued";
    pub const PENDING: &str = "pending";
    pub const RECEIVED_SK: &str = "received_sk";
    /// Events: the body's length in bytes (N), so listings need not read the payload.
    pub const BODY_SIZE: &str = "bs";
    /// Attempts: partition key, `{subscription_id}#{k}` for attempts (`k` a stable hash of the
    /// event id modulo `HOOKHUB_INDEX_SHARDS`) and `e#{event_id}` for an event's plan records.
    pub const ATTEMPT_PK: &str = "pk";
    /// Attempts: sort key, `{time}#{event_id}#{attempt:010}` for attempts, `p#{time}#…` for
    /// plan records.
    pub const ATTEMPT_SK: &str = "sk";
}
use names::*;

mod attempts;
mod event_item;
mod events;
mod health;
mod insert;
mod merge;
mod paging;
mod rate;

/// The DynamoDB implementation of the store ports. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    sources: String,
    subscriptions: String,
    events: String,
    attempts: String,
    retention: Duration,
    /// Partitions of the events table and of its `unenqueued` index (`HOOKHUB_LIST_SHARDS`).
    list_shards: u32,
    /// Partitions per source of `by-source` and per subscription of the attempts table
    /// (`HOOKHUB_INDEX_SHARDS`).
    index_shards: u32,
}

impl DynamoStore {
    pub fn new(client: Client, settings: &AwsSettings) -> Self {
        Self {
            client,
            sources: settings.sources_table.clone(),
            subscriptions: settings.subscriptions_table.clone(),
            events: settings.events_table.clone(),
            attempts: settings.attempts_table.clone(),
            retention: settings.retention,
            list_shards: settings.list_shards.max(1),
            index_shards: settings.index_shards.max(1),
        }
    }

    /// A query of one of a subscription's partitions of the attempts table: `#p` is its
    /// partition key, `:p` its value; `condition` may add to them.
    fn subscription_shard(
        &self,
        subscription_id: &str,
        shard: u32,
        condition: &str,
    ) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.attempts)
            .key_condition_expression(condition)
            .expression_attribute_names("#p", ATTEMPT_PK)
            .expression_attribute_values(":p", AttributeValue::S(shard_key(subscription_id, shard)))
    }

    fn expires_at(&self, from: DateTime<Utc>) -> AttributeValue {
        epoch_seconds(from, self.retention)
    }

    // ----- sources and subscriptions: plain items keyed by `id` -----

    async fn create_record<T: Serialize>(
        &self,
        table: &str,
        kind: &str,
        id: &str,
        value: &T,
    ) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(to_item(value)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
                {
                    StoreError::Conflict(format!("{kind} {id}"))
                } else {
                    sdk_error("PutItem", e)
                }
            })?;
        Ok(())
    }

    async fn update_record<T: Serialize>(
        &self,
        table: &str,
        kind: &str,
        id: &str,
        value: &T,
    ) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(to_item(value)?))
            .condition_expression("attribute_exists(id)")
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
                {
                    StoreError::NotFound(format!("{kind} {id}"))
                } else {
                    sdk_error("PutItem", e)
                }
            })?;
        Ok(())
    }

    async fn get_item(&self, table: &str, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            // Read-your-writes: the dispatcher reads what the receiver has just stored.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item)
    }

    async fn get_record<T: DeserializeOwned>(
        &self,
        table: &str,
        id: &str,
    ) -> StoreResult<Option<T>> {
        self.get_item(table, key("id", id))
            .await?
            .map(from_item)
            .transpose()
    }

    /// Every record of a small table (sources, subscriptions), ordered by id, read
    /// consistently; only the `projection` attributes, eventually consistent, when it names
    /// any (the receiver's routes: a cached plan input, stale by the cache's seconds anyway).
    async fn list_records<T: DeserializeOwned>(
        &self,
        table: &str,
        id_of: fn(&T) -> &str,
        projection: &[&str],
    ) -> StoreResult<Vec<T>> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(projection.is_empty())
                .set_exclusive_start_key(start);
            if !projection.is_empty() {
                // The names as they are (none is a reserved word), not through placeholders,
                // so the grant's `dynamodb:Attributes` condition reads exactly these.
                scan = scan
                    .projection_expression(projection.join(", "))
                    .select(Select::SpecificAttributes);
            }
            let out = scan.send().await.map_err(|e| sdk_error("Scan", e))?;
            for item in out.items.unwrap_or_default() {
                records.push(from_item::<T>(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        records.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        Ok(records)
    }

    async fn delete_record(&self, table: &str, id: &str) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key("id", id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    // ----- queries -----

    /// Runs a query page after page until `limit` items (all when `None`) were collected.
    async fn query(
        &self,
        query: QueryFluentBuilder,
        limit: Option<usize>,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut page = query.clone().set_exclusive_start_key(start);
            if let Some(limit) = limit {
                let want = limit.saturating_sub(items.len()).clamp(1, 1000);
                page = page.limit(i32::try_from(want).unwrap_or(1000));
            }
            let out = page.send().await.map_err(|e| sdk_error("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|l| items.len() >= l) {
                break;
            }
        }
        if let Some(limit) = limit {
            items.truncate(limit);
        }
        Ok(items)
    }
}

#[async_trait]
impl SourceStore for DynamoStore {
    async fn create_source(&self, source: &Source) -> StoreResult<()> {
        self.create_record(&self.sources, "source", &source.id, source)
            .await
    }

    async fn update_source(&self, source: &Source) -> StoreResult<()> {
        self.update_record(&self.sources, "source", &source.id, source)
            .await
    }

    async fn get_source(&self, id: &str) -> StoreResult<Option<Source>> {
        self.get_record(&self.sources, id).await
    }

    async fn list_sources(&self) -> StoreResult<Vec<Source>> {
        self.list_records(&self.sources, |s: &Source| &s.id, &[])
            .await
    }

    async fn delete_source(&self, id: &str) -> StoreResult<bool> {
        self.delete_record(&self.sources, id).await
    }
}

#[async_trait]
impl SubscriptionStore for DynamoStore {
    async fn create_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.create_record(
            &self.subscriptions,
            "subscription",
            &subscription.id,
            subscription,
        )
        .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> StoreResult<()> {
        self.update_record(
            &self.subscriptions,
            "subscription",
            &subscription.id,
            subscription,
        )
        .await
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<Subscription>> {
        self.get_record(&self.subscriptions, id).await
    }

    async fn list_subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        self.list_records(&self.subscriptions, |s: &Subscription| &s.id, &[])
            .await
    }

    async fn list_subscription_routes(&self) -> StoreResult<Vec<SubscriptionRoute>> {
        let route_id: fn(&SubscriptionRoute) -> &str = |r| &r.id;
        (self.list_records(
            &self.subscriptions,
            route_id,
            &SUBSCRIPTION_ROUTE_ATTRIBUTES,
        ))
        .await
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        self.delete_record(&self.subscriptions, id).await
    }

    /// One `UpdateItem` of the three attributes, in the shapes `serde_dynamo` writes for them
    /// (BOOL, S, S), so the item still reads back as a `Subscription`. The dispatcher's IAM
    /// grant allows exactly these attributes (and `id`), nothing else.
    async fn disable_subscription(
        &self,
        id: &str,
        reason: DisabledReason,
        at: DateTime<Utc>,
    ) -> StoreResult<DisableOutcome> {
        // First only if enabled, so of concurrent callers exactly one learns it disabled it
        // (ReturnValues must stay NONE); then, for one already disabled, the new reason.
        // `attribute_exists(id)`: without it, UpdateItem would create an item holding only these
        // attributes.
        let conditions = [
            (
                "attribute_exists(id) AND enabled = :e",
                DisableOutcome::Disabled,
            ),
            ("attribute_exists(id)", DisableOutcome::AlreadyDisabled),
        ];
        for (condition, outcome) in conditions {
            let mut update = self
                .client
                .update_item()
                .table_name(&self.subscriptions)
                .set_key(Some(key("id", id)))
                .update_expression("SET enabled = :f, disabled_reason = :r, updated_at = :t")
                .condition_expression(condition)
                .expression_attribute_values(":f", attribute(&false)?)
                .expression_attribute_values(":r", attribute(&Some(reason))?)
                .expression_attribute_values(":t", attribute(&at)?);
            if outcome == DisableOutcome::Disabled {
                update = update.expression_attribute_values(":e", attribute(&true)?);
            }
            match update.send().await {
                Ok(_) => return Ok(outcome),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(sdk_error("UpdateItem", e)),
            }
        }
        Ok(DisableOutcome::NotFound)
    }

    async fn record_outcome(
        &self,
        id: &str,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<HealthChange>> {
        self.change_health(id, |sub| sub.apply_outcome(outcome, at, policy))
            .await
    }

    async fn claim_probe(
        &self,
        id: &str,
        now: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> StoreResult<Option<ProbeClaim>> {
        self.change_health(id, |sub| sub.apply_probe_claim(now, policy))
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

#[async_trait]
impl AttemptLog for DynamoStore {
    async fn record_attempt(&self, attempt: &Attempt) -> StoreResult<()> {
        self.record_unplanned(attempt).await
    }

    async fn plan_attempts(
        &self,
        event_id: &str,
        planned_at: DateTime<Utc>,
        planned: &[PlannedAttempt],
    ) -> StoreResult<()> {
        self.plan(event_id, planned_at, planned).await
    }

    async fn record_planned_attempt(
        &self,
        attempt: &Attempt,
        planned_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.record_planned(attempt, planned_at).await
    }

    fn stored_plan_layout(&self) -> Option<u32> {
        Some(self.index_shards)
    }

    async fn attempts_for_event(&self, event_id: &str) -> StoreResult<Vec<Attempt>> {
        self.event_attempts(event_id, None, StoredPlanFrom::EventItem)
            .await
    }

    async fn attempts_for_dispatch(
        &self,
        event: &Event,
        plan: Option<&StoredPlan>,
    ) -> StoreResult<Vec<Attempt>> {
        let at = sortable_time(event.received_at);
        let given = StoredPlanFrom::Given(plan.map(|plan| (plan.clone(), at)));
        self.event_attempts(&event.id, None, given).await
    }

    async fn attempts_for_pair(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> StoreResult<Vec<Attempt>> {
        self.event_attempts(event_id, Some(subscription_id), StoredPlanFrom::EventItem)
            .await
    }

    async fn attempts_for_subscription(
        &self,
        subscription_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Attempt>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // The newest `limit` of each shard, merged: the first `limit` of them are the newest.
        let shards = (0..self.index_shards).map(|k| {
            let query = self
                .subscription_shard(subscription_id, k, "#p = :p")
                .scan_index_forward(false);
            self.query(query, Some(limit))
        });
        let mut items: Vec<Item> = futures::future::try_join_all(shards)
            .await?
            .into_iter()
            .flatten()
            .collect();
        items.sort_by_cached_key(|item| std::cmp::Reverse(attempt_sk(item)));
        items.truncate(limit);
        items.into_iter().map(from_item).collect()
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

/// A stable (persisted) spread of keys over `shards` partitions.
fn stable_shard(key: &str, shards: u32) -> u32 {
    let hash = key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    hash % shards.max(1)
}

/// The partition key of one shard of a source (`by-source`) or of a subscription's attempts.
fn shard_key(owner_id: &str, shard: u32) -> String {
    format!("{owner_id}#{shard}")
}

/// An attempt item's sort key (empty when missing: such an item sorts first).
fn attempt_sk(item: &Item) -> String {
    item.get(ATTEMPT_SK)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// See [`crate::aws::Aws::is_minted_event_id`].
pub(super) fn is_minted_event_id(id: &str, list_shards: u32) -> bool {
    events::event_shard(id, list_shards) == events::own_shard(id)
}

/// See [`crate::aws::Aws::events_table_key`].
pub(super) fn events_table_key(id: &str, list_shards: u32) -> Item {
    if id.starts_with(insert::DEDUP_PREFIX) || id.starts_with(rate::RATE_PREFIX) {
        own_key(id)
    } else {
        HashMap::from([
            (
                EVENT_PK.to_string(),
                AttributeValue::S(events::event_shard(id, list_shards)),
            ),
            ("id".to_string(), AttributeValue::S(id.to_string())),
        ])
    }
}

/// The key of an item of the events table that is not an event (a dedup marker, a rate slot):
/// its id is its partition too.
fn own_key(id: &str) -> Item {
    HashMap::from([
        (EVENT_PK.to_string(), AttributeValue::S(id.to_string())),
        ("id".to_string(), AttributeValue::S(id.to_string())),
    ])
}

fn key(name: &str, value: &str) -> Item {
    HashMap::from([(name.to_string(), AttributeValue::S(value.to_string()))])
}

fn to_item<T: Serialize>(value: &T) -> StoreResult<Item> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot map to an item: {e}")))
}

/// One value as `serde_dynamo` writes it inside an item.
fn attribute<T: Serialize>(value: &T) -> StoreResult<AttributeValue> {
    serde_dynamo::to_attribute_value(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot map to an attribute: {e}")))
}

fn from_item<T: DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("malformed item: {e}")))
}

fn string_attr(item: &Item, name: &str) -> StoreResult<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StoreError::Corrupt(format!(
            "item without string attribute {name}"
        ))),
    }
}

/// TTL value: epoch seconds of `from + after`.
fn epoch_seconds(from: DateTime<Utc>, after: Duration) -> AttributeValue {
    let secs = from
        .timestamp()
        .saturating_add(i64::try_from(after.as_secs()).unwrap_or(i64::MAX));
    AttributeValue::N(secs.to_string())
}

/// Fixed width, so strings sort like times (RFC 3339 as chrono prints it drops zero fractions).
fn sortable_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

//! Rate-limit state on DynamoDB: an item `rate#{subscription_id}` in the events table (like the
//! dedup markers, it has none of the index keys, so no index or listing sees it), holding the
//! subscription's theoretical arrival time. A reservation reads it (consistent) and puts the
//! new time back with a compare-and-set, so dispatchers in any number of processes each get a
//! slot of their own. Only subscriptions with a `rate_limit` ever touch it.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::{epoch_seconds, own_key, DynamoStore, EVENT_PK, EXPIRES_AT};
use crate::aws::sdk_error;
use crate::decision::rate::{interval, reserve, Slot};
use crate::ports::{StoreError, StoreResult};

/// The theoretical arrival time, epoch nanoseconds (N).
const TAT_NS: &str = "tat_ns";
/// Rounds before giving up when other dispatchers keep winning the slot (each loss means one of
/// them booked, so this is only reached under extreme contention).
const CAS_TRIES: u32 = 16;
/// How long the item outlives its time: once that has passed it means the same as no item.
const KEEP_AFTER_TAT: Duration = Duration::from_secs(3600);

/// Rate slots live in the events table under this key prefix.
pub(super) const RATE_PREFIX: &str = "rate#";

fn rate_key(subscription_id: &str) -> String {
    format!("{RATE_PREFIX}{subscription_id}")
}

impl DynamoStore {
    pub(super) async fn reserve_rate_slot(
        &self,
        subscription_id: &str,
        rate: f64,
        now: DateTime<Utc>,
        max_wait: Duration,
    ) -> StoreResult<Slot> {
        let id = rate_key(subscription_id);
        for _ in 0..CAS_TRIES {
            let stored = self.get_item(&self.events, own_key(&id)).await?;
            let old = match stored.as_ref().and_then(|item| item.get(TAT_NS)) {
                Some(AttributeValue::N(n)) => Some(n.parse::<i64>().map_err(|_| {
                    StoreError::Corrupt(format!("{id}: {TAT_NS} is not an integer"))
                })?),
                None => None,
                Some(_) => return Err(StoreError::Corrupt(format!("{id}: {TAT_NS} is not N"))),
            };
            let reservation = reserve(
                old.map(DateTime::from_timestamp_nanos),
                interval(rate),
                now,
                max_wait,
            );
            let Some(tat) = reservation.tat else {
                return Ok(reservation.slot);
            };
            // The whole (tiny) item is ours, so it is put rather than updated (the template
            // test checks that puts on events come only from the insert and from here, under
            // `rate#` keys). Written only over the state it was computed from.
            let mut put = self
                .client
                .put_item()
                .table_name(&self.events)
                .item(EVENT_PK, AttributeValue::S(id.clone()))
                .item("id", AttributeValue::S(id.clone()))
                .item(
                    TAT_NS,
                    AttributeValue::N(tat.timestamp_nanos_opt().unwrap_or(i64::MAX).to_string()),
                )
                .item(EXPIRES_AT, epoch_seconds(tat, KEEP_AFTER_TAT));
            put = match old {
                Some(old) => put
                    .condition_expression("#tat = :old")
                    .expression_attribute_names("#tat", TAT_NS)
                    .expression_attribute_values(":old", AttributeValue::N(old.to_string())),
                None => put.condition_expression("attribute_not_exists(id)"),
            };
            match put.send().await {
                Ok(_) => return Ok(reservation.slot),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    // Another dispatcher booked first: read its time and book after it.
                    let pause = rand::random_range(1..=10u64);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(e) => return Err(sdk_error("PutItem", e)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{id}: slot reservation lost {CAS_TRIES} races in a row"
        )))
    }
}

//! The attempts table, with no index. Each attempt is one item in its subscription's partition
//! (`pk` = `{subscription_id}#{k}`, `sk` = `{time}#{event_id}#{attempt:010}`), so a
//! subscription's attempts are a range of the table itself. An event finds its attempts
//! through its plan records (`pk` = `e#{event_id}`, `sk` = `p#{time}#…`), each naming the
//! (subscription, attempt number) pairs one dispatch was about to try and the time the
//! attempts' keys start with. The dispatcher writes a plan before it delivers, so a crash
//! between a delivery and its record never hides a record it made; a fan-out to ten
//! subscriptions costs one plan record and ten attempts instead of ten attempts and ten
//! index entries (`docs/aws-layout.md`, "Attempts").

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event_item::plan_from_item;
use super::names::*;
use super::{from_item, shard_key, sortable_time, stable_shard, to_item, DynamoStore, Item};
use crate::aws::sdk_error;
use crate::domain::{Attempt, StoredPlan};
use crate::ports::{PlannedAttempt, StoreResult, PLANNED_START_MAX_LAG};

/// Where [`DynamoStore::event_attempts`] finds the plan stored with the event.
pub(super) enum StoredPlanFrom {
    /// In the event's item, read for it.
    EventItem,
    /// Known already (the dispatcher has the event's task): the plan, if usable, and the time
    /// it was planned at (`sortable_time` of the event's receipt).
    Given(Option<(StoredPlan, String)>),
}

/// Partition key prefix of an event's plan records.
const EVENT_PREFIX: &str = "e#";
/// Sort key prefix of a plan record.
const PLAN_PREFIX: &str = "p#";
/// Refs per plan record: a fan-out to more subscriptions writes several records, so none nears
/// DynamoDB's 400 KB item limit (a ref is a subscription id and a number).
const PLAN_REFS_MAX: usize = 500;

/// What a plan record holds besides its keys and TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Plan {
    /// (subscription id, attempt number) of each planned attempt.
    refs: Vec<(String, u32)>,
    /// The planned time (`sortable_time`): each attempt's sort key starts with it.
    at: String,
    /// The event's shard among each subscription's partitions, as it was when planned.
    k: u32,
}

/// An attempt item's key: its subscription's partition and its place in it.
fn attempt_key(subscription_id: &str, k: u32, at: &str, event_id: &str, attempt: u32) -> Item {
    HashMap::from([
        (
            ATTEMPT_PK.to_owned(),
            AttributeValue::S(shard_key(subscription_id, k)),
        ),
        (
            ATTEMPT_SK.to_owned(),
            AttributeValue::S(format!("{at}#{event_id}#{attempt:010}")),
        ),
    ])
}

/// The keys of every attempt an event's plans name, each once.
fn planned_keys(event_id: &str, plans: &[Plan]) -> Vec<Item> {
    let mut keys: Vec<(String, u32, &str, u32)> = plans
        .iter()
        .flat_map(|plan| {
            plan.refs
                .iter()
                .map(|(sub, n)| (sub.clone(), *n, plan.at.as_str(), plan.k))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|(sub, n, at, k)| attempt_key(&sub, k, at, event_id, n))
        .collect()
}

/// An event's attempts by (subscription, number). Two items for one pair (a delivery
/// re-planned while a slow first try was still running) count once: the later start.
fn by_pair(mut attempts: Vec<Attempt>) -> Vec<Attempt> {
    attempts.sort_by(|a, b| {
        (&a.subscription_id, a.attempt, b.started_at).cmp(&(
            &b.subscription_id,
            b.attempt,
            a.started_at,
        ))
    });
    attempts.dedup_by(|later, kept| {
        later.subscription_id == kept.subscription_id && later.attempt == kept.attempt
    });
    attempts
}

impl DynamoStore {
    /// Writes one plan record naming `refs`, its sort key made unique by `suffix`.
    async fn put_plan(
        &self,
        event_id: &str,
        at: DateTime<Utc>,
        suffix: &str,
        refs: Vec<(String, u32)>,
    ) -> StoreResult<()> {
        let at_sk = sortable_time(at);
        let plan = Plan {
            refs,
            at: at_sk.clone(),
            k: stable_shard(event_id, self.index_shards),
        };
        let mut item = to_item(&plan)?;
        item.insert(
            ATTEMPT_PK.into(),
            AttributeValue::S(format!("{EVENT_PREFIX}{event_id}")),
        );
        item.insert(
            ATTEMPT_SK.into(),
            AttributeValue::S(format!("{PLAN_PREFIX}{at_sk}#{suffix}")),
        );
        // Its attempts start up to the lag after `at` and expire from their start: the plan
        // outlives them, so none is left unreachable by its event.
        let lag = chrono::Duration::from_std(PLANNED_START_MAX_LAG).unwrap_or_default();
        item.insert(EXPIRES_AT.into(), self.expires_at(at + lag));
        self.put_attempts_item(item).await
    }

    /// Writes the attempt item, keyed by `at` (its start, or its planned time).
    async fn put_attempt(&self, attempt: &Attempt, at: DateTime<Utc>) -> StoreResult<()> {
        let mut item = to_item(attempt)?;
        item.extend(attempt_key(
            &attempt.subscription_id,
            stable_shard(&attempt.event_id, self.index_shards),
            &sortable_time(at),
            &attempt.event_id,
            attempt.attempt,
        ));
        item.insert(EXPIRES_AT.into(), self.expires_at(attempt.started_at));
        self.put_attempts_item(item).await
    }

    async fn put_attempts_item(&self, item: Item) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.attempts)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    /// An attempt nobody planned: its own plan record first (so a crash between the two
    /// writes leaves a reference to nothing, never an attempt its event cannot find), then
    /// the attempt. Both keys follow from the attempt, so recording it again rewrites them.
    pub(super) async fn record_unplanned(&self, attempt: &Attempt) -> StoreResult<()> {
        let suffix = format!("{}#{:010}", attempt.subscription_id, attempt.attempt);
        self.put_plan(
            &attempt.event_id,
            attempt.started_at,
            &suffix,
            vec![(attempt.subscription_id.clone(), attempt.attempt)],
        )
        .await?;
        self.put_attempt(attempt, attempt.started_at).await
    }

    pub(super) async fn plan(
        &self,
        event_id: &str,
        planned_at: DateTime<Utc>,
        planned: &[PlannedAttempt],
    ) -> StoreResult<()> {
        for chunk in planned.chunks(PLAN_REFS_MAX) {
            let refs = chunk
                .iter()
                .map(|p| (p.subscription_id.clone(), p.attempt))
                .collect();
            // Unique: two dispatches of one event planned in the same nanosecond, or the
            // chunks of one, still get a record each.
            self.put_plan(event_id, planned_at, &ulid::Ulid::new().to_string(), refs)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn record_planned(
        &self,
        attempt: &Attempt,
        planned_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.put_attempt(attempt, planned_at).await
    }

    /// The event's plan records and the plan stored with it, then the attempts they name that
    /// were made (of one subscription's only, when given).
    pub(super) async fn event_attempts(
        &self,
        event_id: &str,
        subscription_id: Option<&str>,
        stored: StoredPlanFrom,
    ) -> StoreResult<Vec<Attempt>> {
        let query = self
            .client
            .query()
            .table_name(&self.attempts)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", ATTEMPT_PK)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(format!("{EVENT_PREFIX}{event_id}")),
            )
            .consistent_read(true);
        let stored = async {
            match stored {
                StoredPlanFrom::Given(plan) => Ok(plan),
                StoredPlanFrom::EventItem => match self.event_plan_item(event_id).await? {
                    Some(item) => plan_from_item(&item),
                    None => Ok(None),
                },
            }
        };
        let (records, stored) = futures::join!(self.query(query, None), stored);
        let mut plans = records?
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<Vec<Plan>>>()?;
        if let Some((plan, at)) = stored? {
            plans.push(Plan {
                k: stable_shard(event_id, plan.layout),
                refs: plan.subscriptions.into_iter().map(|s| (s, 1)).collect(),
                at,
            });
        }
        if let Some(subscription_id) = subscription_id {
            for plan in &mut plans {
                plan.refs.retain(|(sub, _)| sub == subscription_id);
            }
        }
        let keys = planned_keys(event_id, &plans);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let attempts = self
            .batch_get_items(&self.attempts, keys, &[])
            .await?
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<Vec<Attempt>>>()?;
        Ok(by_pair(attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeliveryState;

    fn sample_attempt(event_id: &str, subscription_id: &str, attempt: u32) -> Attempt {
        Attempt {
            event_id: event_id.to_owned(),
            subscription_id: subscription_id.to_owned(),
            attempt,
            url: "http://127.0.0.1:9/hook".to_owned(),
            started_at: DateTime::UNIX_EPOCH,
            duration_ms: 3,
            status_code: Some(200),
            error: None,
            response_excerpt: None,
            state: DeliveryState::Succeeded,
            next_attempt_at: None,
        }
    }

    fn plan(at: &str, k: u32, refs: &[(&str, u32)]) -> Plan {
        Plan {
            refs: refs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
            at: at.to_owned(),
            k,
        }
    }

    type Keys = Vec<(String, String)>;

    fn keys(items: &[Item]) -> Keys {
        items
            .iter()
            .map(|i| {
                (
                    i[ATTEMPT_PK].as_s().unwrap().clone(),
                    i[ATTEMPT_SK].as_s().unwrap().clone(),
                )
            })
            .collect()
    }

    #[test]
    fn plans_name_each_attempt_key_once() {
        let k = |pk: &str, sk: &str| (pk.to_owned(), sk.to_owned());
        let cases: [(&[Plan], Keys); 4] = [
            (&[], vec![]),
            (
                &[plan("T1", 3, &[("sub_a", 1), ("sub_b", 1)])],
                vec![
                    k("sub_a#3", "T1#evt#0000000001"),
                    k("sub_b#3", "T1#evt#0000000001"),
                ],
            ),
            // A retry's own record, beside the fan-out's.
            (
                &[
                    plan("T1", 0, &[("sub_a", 1)]),
                    plan("T2", 0, &[("sub_a", 2)]),
                ],
                vec![
                    k("sub_a#0", "T1#evt#0000000001"),
                    k("sub_a#0", "T2#evt#0000000002"),
                ],
            ),
            // The same record read twice (a re-recorded attempt) names it once.
            (
                &[
                    plan("T1", 0, &[("sub_a", 1)]),
                    plan("T1", 0, &[("sub_a", 1)]),
                ],
                vec![k("sub_a#0", "T1#evt#0000000001")],
            ),
        ];
        for (plans, want) in cases {
            assert_eq!(keys(&planned_keys("evt", plans)), want, "{plans:?}");
        }
    }

    #[test]
    fn one_attempt_per_pair_ordered_by_subscription_and_number() {
        let at = |sub: &str, n: u32, secs: i64| {
            let mut a = sample_attempt("evt", sub, n);
            a.started_at = DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
            a
        };
        let cases = [
            (vec![], vec![]),
            (
                vec![at("sub_b", 1, 0), at("sub_a", 2, 5), at("sub_a", 1, 1)],
                vec![at("sub_a", 1, 1), at("sub_a", 2, 5), at("sub_b", 1, 0)],
            ),
            // A pair tried twice under one number: the later start is kept.
            (
                vec![at("sub_a", 1, 1), at("sub_a", 1, 9), at("sub_a", 1, 4)],
                vec![at("sub_a", 1, 9)],
            ),
        ];
        for (given, want) in cases {
            assert_eq!(by_pair(given.clone()), want, "{given:?}");
        }
    }
}

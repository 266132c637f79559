//! Creates the tables and queues when missing: for `hookhub dev --backend aws` against a bare
//! emulator, and for tests. Deployed stacks create them with their infrastructure code, after
//! the same layout (`docs/aws-layout.md`).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;

use super::dynamo::names::*;
use super::{sdk_error, Aws};
use crate::ports::{StoreError, StoreResult};

/// Receives of one task message before SQS moves it to the dead-letter queue on its own.
pub const REDRIVE_MAX_RECEIVE_COUNT: u32 = 5;
/// 14 days, the SQS maximum: time to inspect and redrive dead letters.
const DLQ_RETENTION_SECS: u32 = 1_209_600;
/// Bounded wait for a new table to become ACTIVE (instant on emulators).
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(120);

struct Index {
    name: &'static str,
    hash: &'static str,
    range: &'static str,
    projection: ProjectionType,
}

struct TableSpec<'a> {
    name: &'a str,
    hash: &'static str,
    range: Option<&'static str>,
    indexes: Vec<Index>,
    ttl: bool,
}

impl Aws {
    /// Creates whatever is missing, idempotently: the four tables (on-demand capacity, their
    /// indexes, TTL on `expires_at` for events and attempts), the dead-letter queue and the
    /// task queue redriving to it. Existing resources are left as they are.
    pub async fn ensure_resources(&self) -> StoreResult<()> {
        let s = self.settings();
        let plain = |name| TableSpec {
            name,
            hash: "id",
            range: None,
            indexes: Vec::new(),
            ttl: false,
        };
        let events = TableSpec {
            name: &s.events_table,
            hash: EVENT_PK,
            range: Some("id"),
            indexes: vec![
                index(BY_SOURCE, SOURCE_SHARD, "id", ProjectionType::KeysOnly),
                index(UNENQUEUED, PENDING, RECEIVED_SK, ProjectionType::KeysOnly),
            ],
            ttl: true,
        };
        let attempts = TableSpec {
            name: &s.attempts_table,
            hash: ATTEMPT_PK,
            range: Some(ATTEMPT_SK),
            indexes: Vec::new(),
            ttl: true,
        };
        futures::future::try_join_all(
            [
                plain(&s.sources_table),
                plain(&s.subscriptions_table),
                events,
                attempts,
            ]
            .into_iter()
            .map(|spec| self.ensure_table(spec)),
        )
        .await?;
        self.ensure_queues().await
    }

    async fn ensure_table(&self, spec: TableSpec<'_>) -> StoreResult<()> {
        let client = self.dynamodb();
        match client.describe_table().table_name(spec.name).send().await {
            Ok(described) => {
                let found = described
                    .table
                    .and_then(|t| t.key_schema)
                    .unwrap_or_default();
                if let Some(problem) = key_mismatch(&spec, &found) {
                    return Err(StoreError::Corrupt(problem));
                }
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_not_found_exception()) =>
            {
                let created = create_table_request(client, &spec)?.send().await;
                match created {
                    Ok(_) => {}
                    // Created concurrently by another process: fine.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|se| se.is_resource_in_use_exception()) => {}
                    Err(e) => return Err(sdk_error("CreateTable", e)),
                }
            }
            Err(e) => return Err(sdk_error("DescribeTable", e)),
        }
        client
            .wait_until_table_exists()
            .table_name(spec.name)
            .wait(TABLE_ACTIVE_WAIT)
            .await
            .map_err(|e| StoreError::Unavailable(format!("table {} not active: {e}", spec.name)))?;
        if spec.ttl {
            let ttl = client
                .describe_time_to_live()
                .table_name(spec.name)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
            let status = ttl
                .time_to_live_description
                .and_then(|d| d.time_to_live_status);
            if matches!(status, None | Some(TimeToLiveStatus::Disabled)) {
                let ttl_spec = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(EXPIRES_AT)
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("UpdateTimeToLive: {e}")))?;
                client
                    .update_time_to_live()
                    .table_name(spec.name)
                    .time_to_live_specification(ttl_spec)
                    .send()
                    .await
                    .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
            }
        }
        Ok(())
    }

    async fn ensure_queues(&self) -> StoreResult<()> {
        let s = self.settings();
        let dlq_url = self
            .ensure_queue(
                s.dead_letter_queue.name(),
                HashMap::from([(
                    QueueAttributeName::MessageRetentionPeriod,
                    DLQ_RETENTION_SECS.to_string(),
                )]),
            )
            .await?;
        let arn = self
            .sqs()
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| sdk_error("GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| StoreError::Corrupt(format!("queue {dlq_url} has no ARN")))?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": REDRIVE_MAX_RECEIVE_COUNT,
        });
        self.ensure_queue(
            s.queue.name(),
            HashMap::from([(QueueAttributeName::RedrivePolicy, redrive.to_string())]),
        )
        .await?;
        Ok(())
    }

    /// The queue's URL, creating it with `attributes` when it does not exist.
    async fn ensure_queue(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
    ) -> StoreResult<String> {
        let sqs = self.sqs();
        match sqs.get_queue_url().queue_name(name).send().await {
            Ok(out) => {
                return out
                    .queue_url
                    .ok_or_else(|| StoreError::Corrupt(format!("queue {name} has no URL")))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_queue_does_not_exist()) => {}
            Err(e) => return Err(sdk_error("GetQueueUrl", e)),
        }
        let out = sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| sdk_error("CreateQueue", e))?;
        out.queue_url
            .ok_or_else(|| StoreError::Corrupt(format!("queue {name} has no URL")))
    }
}

fn index(
    name: &'static str,
    hash: &'static str,
    range: &'static str,
    projection: ProjectionType,
) -> Index {
    Index {
        name,
        hash,
        range,
        projection,
    }
}

fn key_element(name: &str, key_type: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| StoreError::Unavailable(format!("CreateTable: {e}")))
}

fn create_table_request(
    client: &aws_sdk_dynamodb::Client,
    spec: &TableSpec<'_>,
) -> StoreResult<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder> {
    let build_error = |e: aws_sdk_dynamodb::error::BuildError| {
        StoreError::Unavailable(format!("CreateTable: {e}"))
    };
    let mut request = client
        .create_table()
        .table_name(spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element(spec.hash, KeyType::Hash)?);
    let mut key_attributes = vec![spec.hash];
    if let Some(range) = spec.range {
        request = request.key_schema(key_element(range, KeyType::Range)?);
        key_attributes.push(range);
    }
    for ix in &spec.indexes {
        key_attributes.extend([ix.hash, ix.range]);
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(ix.name)
                .key_schema(key_element(ix.hash, KeyType::Hash)?)
                .key_schema(key_element(ix.range, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ix.projection.clone())
                        .build(),
                )
                .build()
                .map_err(build_error)?,
        );
    }
    key_attributes.sort_unstable();
    key_attributes.dedup();
    for name in key_attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)?,
        );
    }
    Ok(request)
}

/// Why an existing table cannot be used as `spec` (its key differs: made by another layout,
/// where every read and write would fail on the key), or `None`.
fn key_mismatch(spec: &TableSpec<'_>, found: &[KeySchemaElement]) -> Option<String> {
    let of = |kind: KeyType| {
        found
            .iter()
            .find(|k| k.key_type == kind)
            .map(|k| k.attribute_name.as_str())
    };
    let (hash, range) = (of(KeyType::Hash), of(KeyType::Range));
    (hash != Some(spec.hash) || range != spec.range).then(|| {
        let show = |h: Option<&str>, r: Option<&str>| match r {
            Some(r) => format!("({}, {r})", h.unwrap_or("?")),
            None => format!("({})", h.unwrap_or("?")),
        };
        format!(
            "table {} has the key {}, this version expects {}: it was made for another layout \
             (docs/aws-layout.md); delete it or set another HOOKHUB_TABLE_PREFIX",
            spec.name,
            show(hash, range),
            show(Some(spec.hash), spec.range),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, kind: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    }

    #[test]
    fn an_existing_table_is_used_only_with_the_same_key() {
        let attempts = TableSpec {
            name: "attempts",
            hash: ATTEMPT_PK,
            range: Some(ATTEMPT_SK),
            indexes: Vec::new(),
            ttl: true,
        };
        let cases = [
            (
                vec![key("pk", KeyType::Hash), key("sk", KeyType::Range)],
                None,
            ),
            (
                vec![key("sk", KeyType::Range), key("pk", KeyType::Hash)],
                None,
            ),
            (
                vec![key("event_id", KeyType::Hash), key("sk", KeyType::Range)],
                Some("table attempts has the key (event_id, sk), this version expects (pk, sk)"),
            ),
            (
                vec![key("pk", KeyType::Hash)],
                Some("table attempts has the key (pk), this version expects (pk, sk)"),
            ),
        ];
        for (found, want) in cases {
            let got = key_mismatch(&attempts, &found);
            match want {
                None => assert_eq!(got, None, "{found:?}"),
                Some(start) => assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(start)),
                    "{found:?}: {got:?}"
                ),
            }
        }
    }
}

//! AWS adapters: DynamoDB for the stores, SQS for the task queue (feature `aws`).
//!
//! Layout, keys and environment variables are described in `docs/aws-layout.md`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hookhub::aws::{Aws, AwsSettings};
//! let sdk = hookhub::aws::load_sdk_config().await; // once per process
//! let aws = Aws::new(&sdk, AwsSettings::from_env()?);
//! let backend = aws.backend().await?;
//! # let _ = backend; Ok(()) }
//! ```

mod config;
mod dynamo;
mod setup;
mod sqs;

use std::sync::Arc;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

pub use config::{
    load_sdk_config, sdk_config_loader, AwsConfigError, AwsSettings, QueueRef,
    DEFAULT_RETENTION_DAYS,
};
pub use dynamo::DynamoStore;
pub use setup::REDRIVE_MAX_RECEIVE_COUNT;
pub use sqs::{SqsQueue, SQS_MAX_DELAY};

// Re-exported so the CLI, the Lambdas and the tests use the very same SDK versions.
pub use aws_config;
pub use aws_sdk_dynamodb;
pub use aws_sdk_sqs;

use crate::intake::SendThenStore;
use crate::ports::{Backend, StoreError, StoreResult};

/// The SDK clients and resource names of one deployment. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Aws {
    settings: AwsSettings,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Aws {
    /// Clients built from one shared SDK config (see [`load_sdk_config`]). Makes no calls.
    pub fn new(sdk: &aws_config::SdkConfig, settings: AwsSettings) -> Self {
        Self {
            settings,
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }

    /// Settings from the environment and the default SDK config chain.
    pub async fn from_env() -> Result<Self, AwsConfigError> {
        let settings = AwsSettings::from_env()?;
        Ok(Self::new(&load_sdk_config().await, settings))
    }

    /// The key of an item of the events table (`docs/aws-layout.md`): an event's partition is
    /// its shard under the current `HOOKHUB_LIST_SHARDS`; a dedup marker's (`dedup#…`) or a rate
    /// slot's (`rate#…`) is its own id. For tools and tests that read items directly.
    pub fn events_table_key(
        &self,
        id: &str,
    ) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        dynamo::events_table_key(id, self.settings.list_shards)
    }

    /// Whether `id` is one this deployment's event store mints: its own shard is below the
    /// current `HOOKHUB_LIST_SHARDS` (`docs/aws-layout.md`, "The shard is chosen with the id").
    pub fn is_minted_event_id(&self, id: &str) -> bool {
        dynamo::is_minted_event_id(id, self.settings.list_shards)
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.dynamodb
    }

    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        &self.sqs
    }

    /// The DynamoDB stores (sources, subscriptions, events, attempts).
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.dynamodb.clone(), &self.settings)
    }

    /// The task queue. Queues configured by name are looked up (`GetQueueUrl`); by URL, this
    /// makes no call.
    pub async fn queue(&self) -> StoreResult<SqsQueue> {
        let queue_url = self.queue_url(&self.settings.queue).await?;
        let dlq_url = self.queue_url(&self.settings.dead_letter_queue).await?;
        Ok(SqsQueue::new(self.sqs.clone(), queue_url, dlq_url))
    }

    /// Every port on AWS. Sources and subscriptions are read through a warm-process cache
    /// when `config_cache` is set ([`crate::config_cache`]).
    pub async fn backend(&self) -> StoreResult<Backend> {
        let mut backend = self.uncached_backend().await?;
        if !self.settings.config_cache.is_zero() {
            let cached = crate::config_cache::CachedConfig::new(
                backend.sources.clone(),
                backend.subscriptions.clone(),
                self.settings.config_cache,
            );
            backend.sources = cached.clone();
            backend.subscriptions = cached;
            // The receiver plans each fan-out from the same cache the dispatcher matches with,
            // so the plan stored with the event usually names exactly what is delivered.
            // Uncached, planning would read the subscriptions table per webhook: not done.
            let intake = SendThenStore::new(backend.events.clone(), backend.queue.clone())
                .planning(backend.subscriptions.clone(), &*backend.attempts);
            backend = backend.with_intake(Arc::new(intake));
        }
        Ok(backend)
    }

    /// Every port on AWS, uncached whatever the settings: the admin API reads the stored state.
    pub async fn uncached_backend(&self) -> StoreResult<Backend> {
        let store = Arc::new(self.store());
        let queue: Arc<SqsQueue> = Arc::new(self.queue().await?);
        let intake = Arc::new(SendThenStore::new(store.clone(), queue.clone()));
        Ok(
            Backend::from_parts(store.clone(), store.clone(), store.clone(), store, queue)
                .with_intake(intake),
        )
    }

    async fn queue_url(&self, queue: &QueueRef) -> StoreResult<String> {
        match queue {
            QueueRef::Url(url) => Ok(url.clone()),
            QueueRef::Name(name) => {
                let out = self
                    .sqs
                    .get_queue_url()
                    .queue_name(name)
                    .send()
                    .await
                    .map_err(|e| {
                        if e.as_service_error()
                            .is_some_and(|se| se.is_queue_does_not_exist())
                        {
                            StoreError::NotFound(format!("queue {name}"))
                        } else {
                            sdk_error("GetQueueUrl", e)
                        }
                    })?;
                out.queue_url
                    .ok_or_else(|| StoreError::Corrupt(format!("GetQueueUrl({name}): no URL")))
            }
        }
    }
}

/// Maps an SDK failure that has no more specific meaning to `Unavailable`. Service errors keep
/// only their code: messages may echo request values.
pub(crate) fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match &err {
        SdkError::ServiceError(se) => se.err().code().unwrap_or("unknown error").to_string(),
        SdkError::TimeoutError(_) => "timeout".to_string(),
        // Connection errors carry no request data; their chain says what went wrong.
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            DisplayErrorContext(&err).to_string()
        }
        SdkError::ConstructionFailure(_) => "request construction failed".to_string(),
        _ => "unknown error".to_string(),
    };
    StoreError::Unavailable(format!("{operation}: {detail}"))
}

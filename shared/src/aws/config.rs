//! Where the AWS resources are (from the environment) and the one SDK config every client shares.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};

use crate::settings::parse;

/// Default retention of events and attempts (their DynamoDB TTL).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Default partitions of the events table and its `unenqueued` index when
/// `HOOKHUB_LIST_SHARDS` is unset: ~2,000 webhooks/s (local development; the template sets
/// the deployed count, sized in `docs/aws-layout.md`).
pub const DEFAULT_LIST_SHARDS: u32 = 4;
/// Upper bound of `HOOKHUB_LIST_SHARDS`: listings query every shard. Also the hash space of
/// event shards: an id Hookhub mints has its hash modulo this below the count it was minted
/// under, which is its shard under any larger count too.
pub const MAX_LIST_SHARDS: u32 = 1024;
/// Default partitions per source of `by-source` and per subscription of the attempts table when
/// `HOOKHUB_INDEX_SHARDS` is unset: 2, so local runs and tests go through the merge of several
/// (the template sets the deployed count, sized in `docs/aws-layout.md`).
pub const DEFAULT_INDEX_SHARDS: u32 = 2;
/// Upper bound of `HOOKHUB_INDEX_SHARDS`: a source's or subscription's listing queries every
/// shard.
pub const MAX_INDEX_SHARDS: u32 = 256;

/// A queue, by URL (deployed: no lookup call, no extra IAM permission) or by name (local dev:
/// resolved with `GetQueueUrl`, or created by `ensure_resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueRef {
    Url(String),
    Name(String),
}

impl QueueRef {
    /// The queue name: the URL's last path segment.
    pub fn name(&self) -> &str {
        match self {
            QueueRef::Url(url) => url.trim_end_matches('/').rsplit('/').next().unwrap_or(url),
            QueueRef::Name(name) => name,
        }
    }
}

/// Names of the DynamoDB tables and SQS queues, and the retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub sources_table: String,
    pub subscriptions_table: String,
    pub events_table: String,
    pub attempts_table: String,
    pub queue: QueueRef,
    pub dead_letter_queue: QueueRef,
    /// How long events and attempts are kept (DynamoDB TTL).
    pub retention: Duration,
    /// Partitions of the events table and its `unenqueued` index. An event's shard is part of
    /// its key, fixed when its id is minted: raise the count freely, never lower it (events in
    /// the dropped shards would no longer be listed or swept).
    pub list_shards: u32,
    /// Partitions per source of `by-source` and per subscription of the attempts table, so one
    /// busy source or subscriber is not one hot partition. Persisted in every attempt's key: raise
    /// it freely, never lower it (attempts in the dropped shards would no longer be listed).
    pub index_shards: u32,
    /// How long a warm process may serve sources and subscriptions from its cache (0 = no
    /// cache): the bound on how stale an admin change can be for the receiver and dispatcher.
    pub config_cache: Duration,
}

/// A missing or malformed configuration variable: the settings' one error type.
pub use crate::settings::SettingsError as AwsConfigError;

impl AwsSettings {
    /// Every resource named from one prefix: tables `{prefix}sources`, `{prefix}subscriptions`,
    /// `{prefix}events`, `{prefix}attempts`, queues `{prefix}tasks` and `{prefix}tasks-dlq`.
    /// For local development and tests.
    pub fn with_prefix(prefix: &str) -> Self {
        let queue = format!("{prefix}tasks");
        Self {
            sources_table: format!("{prefix}sources"),
            subscriptions_table: format!("{prefix}subscriptions"),
            events_table: format!("{prefix}events"),
            attempts_table: format!("{prefix}attempts"),
            dead_letter_queue: QueueRef::Name(format!("{queue}-dlq")),
            queue: QueueRef::Name(queue),
            retention: days(DEFAULT_RETENTION_DAYS),
            list_shards: DEFAULT_LIST_SHARDS,
            index_shards: DEFAULT_INDEX_SHARDS,
            config_cache: Duration::ZERO,
        }
    }

    /// Reads the process environment; see [`AwsSettings::from_lookup`].
    pub fn from_env() -> Result<Self, AwsConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `var` (a lookup, so tests need not mutate the environment):
    ///
    /// - `HOOKHUB_SOURCES_TABLE`, `HOOKHUB_SUBSCRIPTIONS_TABLE`, `HOOKHUB_EVENTS_TABLE`,
    ///   `HOOKHUB_ATTEMPTS_TABLE`, each defaulting to `{HOOKHUB_TABLE_PREFIX}{kind}` when the
    ///   prefix is set;
    /// - `HOOKHUB_QUEUE_URL` or else `HOOKHUB_QUEUE_NAME`;
    /// - `HOOKHUB_DLQ_URL` or else `{HOOKHUB_QUEUE_NAME}-dlq`;
    /// - `HOOKHUB_RETENTION_DAYS` (default 30; `0` keeps items forever);
    /// - `HOOKHUB_LIST_SHARDS` (default 4, 1 to 1024; never lower it on a live table);
    /// - `HOOKHUB_INDEX_SHARDS` (default 2, 1 to 256; never lower it on a live table);
    /// - `HOOKHUB_CONFIG_CACHE_SECONDS` (default 0 = no cache, at most 300).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, AwsConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let prefix = get("HOOKHUB_TABLE_PREFIX");
        let table = |name: &'static str, kind: &str| {
            get(name)
                .or_else(|| prefix.as_ref().map(|p| format!("{p}{kind}")))
                .ok_or(AwsConfigError::Missing(name))
        };
        let queue_name = get("HOOKHUB_QUEUE_NAME");
        let queue = match (get("HOOKHUB_QUEUE_URL"), &queue_name) {
            (Some(url), _) => QueueRef::Url(url),
            (None, Some(name)) => QueueRef::Name(name.clone()),
            (None, None) => {
                return Err(AwsConfigError::Missing(
                    "HOOKHUB_QUEUE_URL (or HOOKHUB_QUEUE_NAME)",
                ))
            }
        };
        let dead_letter_queue = match (get("HOOKHUB_DLQ_URL"), queue_name) {
            (Some(url), _) => QueueRef::Url(url),
            (None, Some(name)) => QueueRef::Name(format!("{name}-dlq")),
            (None, None) => return Err(AwsConfigError::Missing("HOOKHUB_DLQ_URL")),
        };
        let retention = match get("HOOKHUB_RETENTION_DAYS") {
            None => days(DEFAULT_RETENTION_DAYS),
            Some(v) => parse::retention(parse::retention_days("HOOKHUB_RETENTION_DAYS", &v)?),
        };
        let number = |var: &'static str, default: u32, range: std::ops::RangeInclusive<u32>| {
            get(var).map_or(Ok(default), |v| parse::number_in(var, &v, range))
        };
        let list_shards = number(
            "HOOKHUB_LIST_SHARDS",
            DEFAULT_LIST_SHARDS,
            1..=MAX_LIST_SHARDS,
        )?;
        let index_shards = number(
            "HOOKHUB_INDEX_SHARDS",
            DEFAULT_INDEX_SHARDS,
            1..=MAX_INDEX_SHARDS,
        )?;
        let config_cache = number("HOOKHUB_CONFIG_CACHE_SECONDS", 0, 0..=300)?;
        Ok(Self {
            list_shards,
            index_shards,
            config_cache: Duration::from_secs(u64::from(config_cache)),
            sources_table: table("HOOKHUB_SOURCES_TABLE", "sources")?,
            subscriptions_table: table("HOOKHUB_SUBSCRIPTIONS_TABLE", "subscriptions")?,
            events_table: table("HOOKHUB_EVENTS_TABLE", "events")?,
            attempts_table: table("HOOKHUB_ATTEMPTS_TABLE", "attempts")?,
            queue,
            dead_letter_queue,
            retention,
        })
    }
}

fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 86_400)
}

/// The SDK config loader with Hookhub's retry and timeout policy. Region, credentials and
/// endpoint come from the usual chain (`AWS_REGION`, Lambda's role, `AWS_ENDPOINT_URL`…);
/// tests override them on the returned loader.
pub fn sdk_config_loader() -> ConfigLoader {
    with_https_client(aws_config::defaults(BehaviorVersion::latest()))
        // Standard mode retries throttling and transient errors with jittered backoff.
        .retry_config(RetryConfig::standard().with_max_attempts(5))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                // Long enough for a 1 s SQS long poll and a 16 MB BatchGetItem page.
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
}

/// The SDK's default HTTP client (hyper 1, rustls; https:// and plain http:// for emulators;
/// `HTTPS_PROXY`/`NO_PROXY` from the environment) with rustls on `ring` instead of `aws-lc-rs`:
/// the SDK crates are built without `default-https-client`, which hard-wires aws-lc-rs
/// (~0.7 MB more per binary). reqwest uses ring too (`crate::delivery`).
fn with_https_client(loader: ConfigLoader) -> ConfigLoader {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    use aws_smithy_http_client::{Builder, ConnectorBuilder};

    // As aws-smithy-runtime's `default_https_client` (behavior version 2025-08-07 and later).
    loader.http_client(
        Builder::new().build_with_connector_fn(|settings, runtime_components| {
            let mut connector =
                ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = runtime_components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        }),
    )
}

/// Loads the SDK config once per process (Lambda cold start); share the result.
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_loader().load().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn explicit_names_and_urls() {
        let s = AwsSettings::from_lookup(lookup(&[
            ("HOOKHUB_SOURCES_TABLE", "src"),
            ("HOOKHUB_SUBSCRIPTIONS_TABLE", "subs"),
            ("HOOKHUB_EVENTS_TABLE", "evts"),
            ("HOOKHUB_ATTEMPTS_TABLE", "atts"),
            (
                "HOOKHUB_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/tasks",
            ),
            (
                "HOOKHUB_DLQ_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/dlq",
            ),
            ("HOOKHUB_RETENTION_DAYS", "7"),
        ]))
        .unwrap();
        assert_eq!(s.events_table, "evts");
        assert_eq!(s.queue.name(), "tasks");
        assert_eq!(s.dead_letter_queue.name(), "dlq");
        assert_eq!(s.retention, Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn prefix_and_queue_name() {
        let s = AwsSettings::from_lookup(lookup(&[
            ("HOOKHUB_TABLE_PREFIX", "dev-"),
            ("HOOKHUB_EVENTS_TABLE", "custom-events"),
            ("HOOKHUB_QUEUE_NAME", "dev-tasks"),
        ]))
        .unwrap();
        assert_eq!(s.sources_table, "dev-sources");
        assert_eq!(s.events_table, "custom-events");
        assert_eq!(s.queue, QueueRef::Name("dev-tasks".into()));
        assert_eq!(s.dead_letter_queue, QueueRef::Name("dev-tasks-dlq".into()));
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(s.list_shards, DEFAULT_LIST_SHARDS);
        assert_eq!(s.index_shards, DEFAULT_INDEX_SHARDS);
        assert_eq!(s.config_cache, Duration::ZERO);
    }

    #[test]
    fn shards_and_cache() {
        let base = [("HOOKHUB_TABLE_PREFIX", "p-"), ("HOOKHUB_QUEUE_NAME", "q")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            AwsSettings::from_lookup(lookup(&vars))
        };
        let s = with(&[
            ("HOOKHUB_LIST_SHARDS", "128"),
            ("HOOKHUB_INDEX_SHARDS", "64"),
            ("HOOKHUB_CONFIG_CACHE_SECONDS", "5"),
        ])
        .unwrap();
        assert_eq!(s.list_shards, 128);
        assert_eq!(s.index_shards, 64);
        assert_eq!(s.config_cache, Duration::from_secs(5));
        for (var, value) in [
            ("HOOKHUB_LIST_SHARDS", "0"),
            ("HOOKHUB_LIST_SHARDS", "1025"),
            ("HOOKHUB_LIST_SHARDS", "many"),
            ("HOOKHUB_INDEX_SHARDS", "0"),
            ("HOOKHUB_INDEX_SHARDS", "257"),
            ("HOOKHUB_CONFIG_CACHE_SECONDS", "301"),
            ("HOOKHUB_CONFIG_CACHE_SECONDS", "-1"),
        ] {
            let err = with(&[(var, value)]).unwrap_err();
            assert!(
                matches!(&err, AwsConfigError::Invalid { var: v, .. } if *v == var),
                "{var}={value}: {err}"
            );
        }
    }

    #[test]
    fn missing_and_invalid() {
        let err = AwsSettings::from_lookup(lookup(&[("HOOKHUB_QUEUE_NAME", "q")])).unwrap_err();
        assert_eq!(err, AwsConfigError::Missing("HOOKHUB_SOURCES_TABLE"));
        let err = AwsSettings::from_lookup(lookup(&[("HOOKHUB_TABLE_PREFIX", "p-")])).unwrap_err();
        assert!(err.to_string().contains("HOOKHUB_QUEUE_URL"));
        let err = AwsSettings::from_lookup(lookup(&[
            ("HOOKHUB_TABLE_PREFIX", "p-"),
            ("HOOKHUB_QUEUE_NAME", "q"),
            ("HOOKHUB_RETENTION_DAYS", "forever"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            AwsConfigError::Invalid {
                var: "HOOKHUB_RETENTION_DAYS",
                ..
            }
        ));
    }
}

//! Domain records shared by every adapter: sources, events, subscriptions, attempts and tasks.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decision::{DisabledReason, Health};
use crate::dedup::DedupConfig;
pub use crate::secret::Secret;
use crate::verify::VerifyConfig;

mod inline;
pub use inline::InlineEvent;

/// Prefixed, sortable, unique identifiers (`evt_01H…`, `sub_01H…`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// A URL-safe slug: lowercase ASCII letters, digits, `-` and `_`, 1 to 64 characters,
/// starting with a letter or digit. Used for source ids, which appear in ingest URLs.
pub fn is_valid_slug(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// A provider endpoint: where webhooks arrive (`/webhooks/{id}`) and how they are authenticated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub verify: VerifyConfig,
    /// How retries of one webhook are recognised; the scheme's default when absent
    /// ([`Source::dedup`]).
    #[serde(default, rename = "dedup", skip_serializing_if = "Option::is_none")]
    pub dedup_config: Option<DedupConfig>,
    pub created_at: DateTime<Utc>,
}

impl Source {
    /// The dedup setting in force: the source's own, else its scheme's default.
    pub fn dedup(&self) -> DedupConfig {
        self.dedup_config.clone().unwrap_or_else(|| {
            DedupConfig::default_for(
                crate::verify::scheme_info(self.verify.scheme_name())
                    .is_some_and(|info| info.has_delivery_id()),
            )
        })
    }
}

/// One webhook as received, stored byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub source_id: String,
    pub event_type: String,
    pub received_at: DateTime<Utc>,
    pub content_type: Option<String>,
    /// Scoped to the source, per its dedup setting (`id:…`, `sha256:…`, `header:…`, `json:…`);
    /// `once:{id}` for an event that is not deduplicated, which nothing else can match.
    pub dedup_key: String,
    /// Request headers worth keeping for debugging and replay; credentials are stripped.
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    /// Set once the dispatch task is on the queue. Events left unset are found by the sweep.
    pub enqueued: bool,
}

/// An event without its headers and body: what listings return, so a page of large events
/// reads only these few fields from storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventSummary {
    pub id: String,
    pub source_id: String,
    pub event_type: String,
    pub received_at: DateTime<Utc>,
    pub content_type: Option<String>,
    /// Body length in bytes.
    pub size: usize,
}

impl From<&Event> for EventSummary {
    fn from(e: &Event) -> Self {
        Self {
            id: e.id.clone(),
            source_id: e.source_id.clone(),
            event_type: e.event_type.clone(),
            received_at: e.received_at,
            content_type: e.content_type.clone(),
            size: e.body.len(),
        }
    }
}

/// Where and what to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub url: String,
    /// Source ids this subscription listens to; empty means all sources.
    pub sources: Vec<String>,
    /// Event type filters: exact names or `prefix.*` wildcards; empty means all types.
    pub event_types: Vec<String>,
    pub label: Option<String>,
    pub secret: Secret,
    /// The secret before the last rotation, still signing (as a second `v1,` entry) until
    /// `previous_secret_expires_at`, so subscribers can switch without rejecting deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub enabled: bool,
    /// Why the subscription is disabled: by an operator, or by Hookhub (410, failing too long).
    pub disabled_reason: Option<DisabledReason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A jq program run on each matching event; delivered only when its first output is truthy
    /// (`hookhub::jq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// A jq program whose output is the delivered (JSON) body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    /// Static headers added to every delivery (lowercase names; `hookhub::custom_headers`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Failure streak and circuit breaker, changed by the stores' `record_outcome` and
    /// `claim_probe` only (records stored before it existed read as healthy).
    #[serde(default)]
    pub health: Health,
    /// At most this many deliveries per second; deliveries beyond it wait (never dropped). The
    /// pacing state lives in the stores' `reserve_slot`, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
}

impl Subscription {
    /// An enabled subscription to `url` for every source and event type, with no filter,
    /// transform or headers, created `now`; callers set what differs.
    pub fn new(
        id: impl Into<String>,
        url: impl Into<String>,
        secret: Secret,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            url: url.into(),
            sources: Vec::new(),
            event_types: Vec::new(),
            label: None,
            secret,
            previous_secret: None,
            previous_secret_expires_at: None,
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
            filter: None,
            transform: None,
            headers: BTreeMap::new(),
            health: Health::default(),
            rate_limit: None,
        }
    }

    /// Whether this subscription wants events of `event_type` from `source_id`.
    pub fn matches(&self, source_id: &str, event_type: &str) -> bool {
        self.enabled && self.wants(source_id, event_type)
    }

    /// Whether the source and type filters select the event, enabled or not (a disabled
    /// subscription still logs the events it would have received, as `skipped`). Operational
    /// events (source `hookhub`) go only to subscriptions that name that source: "all sources"
    /// means all webhook sources, so existing subscriptions get nothing new.
    pub fn wants(&self, source_id: &str, event_type: &str) -> bool {
        selects(&self.sources, &self.event_types, source_id, event_type)
    }

    /// What the receiver plans fan-outs with: nothing but the filters.
    pub fn route(&self) -> SubscriptionRoute {
        SubscriptionRoute {
            id: self.id.clone(),
            sources: self.sources.clone(),
            event_types: self.event_types.clone(),
        }
    }

    /// The secrets deliveries are signed with at `now`: the current one, then the previous one
    /// while its grace period runs.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Secret> {
        let previous = match (&self.previous_secret, self.previous_secret_expires_at) {
            (Some(secret), Some(until)) if now < until => Some(secret),
            _ => None,
        };
        std::iter::once(&self.secret).chain(previous)
    }
}

/// State of one (event, subscription) delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Succeeded,
    /// Failed; another attempt is scheduled at `next_attempt_at`.
    Retrying,
    /// Failed for good (retries exhausted or endpoint gone). Replayable.
    Failed,
    /// Not attempted: the subscription was disabled when the delivery was due. No HTTP call,
    /// no retry; replayable once the subscription is enabled again.
    Skipped,
}

impl DeliveryState {
    /// The state as logged and shown by the API (`succeeded`, `retrying`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// One HTTP delivery attempt to one subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub event_id: String,
    pub subscription_id: String,
    /// 1-based; a replay starts a new series whose numbers continue after the last one.
    pub attempt: u32,
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// HTTP status when the subscriber answered.
    pub status_code: Option<u16>,
    /// Error code when it did not (`DeliveryError::code`): `timeout`, `connect`, `dns`, `tls`,
    /// `blocked`, `request`, `signing` or `transform_failed`.
    pub error: Option<String>,
    /// First bytes of the response body (at most 4 KiB, lossy UTF-8).
    pub response_excerpt: Option<String>,
    pub state: DeliveryState,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.state == DeliveryState::Succeeded
    }
}

/// Whether source and type filters select an event ([`Subscription::wants`]).
fn selects(sources: &[String], event_types: &[String], source_id: &str, event_type: &str) -> bool {
    let source_selected = if sources.is_empty() {
        !crate::operational::is_reserved_source(source_id)
    } else {
        sources.iter().any(|s| s == source_id)
    };
    source_selected && crate::filter::matches_any(event_types, event_type)
}

/// A subscription's id and filters only: what the receiver reads to plan a fan-out
/// ([`crate::ports::SubscriptionStore::list_subscription_routes`]), without the secrets,
/// URL and headers it has no use for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRoute {
    pub id: String,
    pub sources: Vec<String>,
    pub event_types: Vec<String>,
}

impl SubscriptionRoute {
    /// [`Subscription::wants`], from the filters alone.
    pub fn wants(&self, source_id: &str, event_type: &str) -> bool {
        selects(&self.sources, &self.event_types, source_id, event_type)
    }
}

/// Work items carried by the task queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Fan a freshly received event out to every matching subscription.
    Dispatch {
        event_id: String,
        /// The event itself when the receiver had it and it fits
        /// ([`crate::intake::dispatch_task`]); absent, the dispatcher reads it by id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<InlineEvent>,
        /// Present when the task was sent before its event was stored (the AWS receiver's
        /// order, [`crate::intake::SendThenStore`]): the dispatcher first makes sure the event is
        /// stored and holds its dedup key ([`crate::ports::EventStore::confirm_sent`]). Only
        /// with `event`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_first: Option<SentFirst>,
    },
    /// Attempt (again) one delivery of an event to one subscription.
    Deliver {
        event_id: String,
        subscription_id: String,
        attempt: u32,
        /// Queues with a maximum delay (SQS: 15 min) re-send the task until this time has come.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<DateTime<Utc>>,
        /// The attempt number that started this series: absent (1) for the original delivery,
        /// the first replayed attempt for a replay. The retry schedule restarts with each series.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        series_start: Option<u32>,
    },
    /// One page of a bulk recovery (`POST /v1/subscriptions/{id}/recover`); the page sends its
    /// deliveries, then the task for the next page (`hookhub::bulk`).
    Recover(RecoverJob),
    /// One page of a bulk replay (`POST /v1/events/replay`), continued the same way.
    Replay(ReplayJob),
}

/// What the dispatcher needs to finish the store of an event sent ahead of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentFirst {
    /// The source's dedup window when the event was received, in milliseconds.
    pub dedup_window_ms: u64,
    /// The fan-out the receiver planned and stored with the event, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<StoredPlan>,
}

/// The first attempts of an event's fan-out, planned by the receiver at `received_at` and
/// stored in the event's own item, so the dispatcher need not write a record of them apart
/// ([`crate::ports::AttemptLog::stored_plan_layout`]). Each names attempt 1 of a subscription
/// that wanted the event when it was received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPlan {
    /// Subscription ids, sorted.
    pub subscriptions: Vec<String>,
    /// The attempt log's layout the plan was made for: used only under the same one.
    pub layout: u32,
}

impl StoredPlan {
    /// Whether attempt `attempt` to `subscription_id` is planned here.
    pub fn covers(&self, subscription_id: &str, attempt: u32) -> bool {
        attempt == 1
            && self
                .subscriptions
                .binary_search_by(|s| s.as_str().cmp(subscription_id))
                .is_ok()
    }
}

impl SentFirst {
    pub fn new(window: std::time::Duration) -> Self {
        Self {
            dedup_window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            plan: None,
        }
    }

    pub fn window(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.dedup_window_ms)
    }
}

/// A bulk recovery in progress: the pairs of one subscription whose latest attempt is in
/// `states` and started within `[since, until]`, at the page after `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverJob {
    pub job_id: String,
    pub subscription_id: String,
    pub since: DateTime<Utc>,
    /// Never after `started_at`: the job does not chase its own attempts.
    pub until: DateTime<Utc>,
    pub states: Vec<DeliveryState>,
    /// When the admin call was made. Pairs with an attempt started since then were dealt with
    /// (by this job, before a crash, or otherwise) and are left alone.
    pub started_at: DateTime<Utc>,
    /// The attempt log's page cursor; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Pairs enqueued by the pages before this one.
    #[serde(default)]
    pub enqueued: u64,
}

/// A bulk replay in progress: the events received within `[since, until]` (of `source_id`,
/// with a type matching `event_type`), each to its matching enabled subscriptions or to
/// `subscription_id` only, at the page after the event id `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// An exact type or a `prefix.*` filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub since: DateTime<Utc>,
    /// Never after `started_at`.
    pub until: DateTime<Utc>,
    /// As in [`RecoverJob::started_at`].
    pub started_at: DateTime<Utc>,
    /// The last event id of the previous page; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Pairs enqueued by the pages before this one.
    #[serde(default)]
    pub enqueued: u64,
}

impl Task {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("tasks always serialise")
    }

    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The event a task is about; `None` for a bulk job's page.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Task::Dispatch { event_id, .. } | Task::Deliver { event_id, .. } => Some(event_id),
            Task::Recover(_) | Task::Replay(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_valid_slug("github"));
        assert!(is_valid_slug("stripe-prod_2"));
        assert!(!is_valid_slug(""));
        assert!(!is_valid_slug("-x"));
        assert!(!is_valid_slug("GitHub"));
        assert!(!is_valid_slug("a/b"));
        assert!(!is_valid_slug(&"a".repeat(65)));
    }

    #[test]
    fn ids_are_prefixed_and_sortable() {
        let a = new_id("evt");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("evt");
        assert!(a.starts_with("evt_") && a.len() == 30);
        assert!(a < b);
    }

    #[test]
    fn operational_events_only_to_subscriptions_naming_hookhub() {
        let mut sub =
            Subscription::new("sub_1", "https://example.com", Secret::new("s"), Utc::now());
        assert!(sub.wants("github", "push"));
        assert!(
            !sub.wants("hookhub", "subscription.disabled"),
            "all sources"
        );
        sub.sources = vec!["hookhub".into()];
        assert!(sub.wants("hookhub", "subscription.disabled"));
        assert!(!sub.wants("github", "push"));
    }

    #[test]
    fn task_round_trip() {
        let t = Task::Deliver {
            event_id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            attempt: 2,
            not_before: None,
            series_start: None,
        };
        let json = t.to_json();
        assert_eq!(
            json,
            r#"{"kind":"deliver","event_id":"evt_1","subscription_id":"sub_1","attempt":2}"#
        );
        assert_eq!(Task::from_json(&json).unwrap(), t);
        assert!(Task::from_json("{\"kind\":\"nope\"}").is_err());
    }
}

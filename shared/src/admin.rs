//! The admin service: validated management of sources and subscriptions, and read access to
//! events and attempts. The HTTP layer only maps requests and errors onto these calls.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod bulk;
mod events_query;
mod overview;
mod secrets;

pub use bulk::{BulkAccepted, BulkReplayRequest, RecoverRequest};
pub use events_query::{EventSearch, EventsQuery, Order, MAX_WAIT, POLL_INTERVAL, SETTLE};
pub use overview::{
    event_state, parse_window, EventState, EventStateView, Stats, STATES_MAX_IDS, STATS_MAX_ROWS,
    STATS_MAX_WINDOW,
};

pub use secrets::{
    CreatedSubscription, HealthView, RotateSecret, SubscriptionSecret, SubscriptionView,
    DEFAULT_ROTATION_GRACE,
};

use crate::decision::{DisabledReason, Series};
use crate::dedup::DedupConfig;
use crate::domain::{is_valid_slug, new_id, Attempt, Event, Secret, Source, Subscription, Task};
use crate::filter::is_valid_filter;
use crate::operational;
use crate::ports::{Backend, EventQuery, StoreError};
use crate::signing;
use crate::verify::{resolve_placeholders, scheme_info, VerifyConfig, REDACTED};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is well-formed JSON but its values are not acceptable.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(code: &'static str, message: impl Into<String>) -> AdminError {
    AdminError::Invalid {
        code,
        message: message.into(),
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub id: String,
    pub verify: VerifyConfig,
    /// The scheme's default (its delivery id, else none) when absent.
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
}

/// Partial update: absent fields are left as they are. In `verify`, a secret sent back as the
/// redaction placeholder `***` keeps the stored secret at that place.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSource {
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    pub url: String,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// A `whsec_…` secret; generated when absent.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// jq program: deliver only events for which it is truthy.
    #[serde(default)]
    pub filter: Option<String>,
    /// jq program whose output is the delivered JSON body.
    #[serde(default)]
    pub transform: Option<String>,
    /// Static headers added to each delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deliveries per second at most.
    #[serde(default)]
    pub rate_limit: Option<f64>,
}

/// Partial update: absent fields are left as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    pub url: Option<String>,
    pub sources: Option<Vec<String>>,
    pub event_types: Option<Vec<String>>,
    pub label: Option<String>,
    pub secret: Option<Secret>,
    pub enabled: Option<bool>,
    /// Absent: unchanged; `null`: removed; a program: replaced.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub filter: Option<Option<String>>,
    /// Absent: unchanged; `null`: removed; a program: replaced.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub transform: Option<Option<String>>,
    /// Replaces all headers (`{}` removes them); a sensitive header's value sent back as `***`
    /// keeps the stored one.
    pub headers: Option<BTreeMap<String, String>>,
    /// Absent: unchanged; `null`: removed; a number: replaced.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<f64>)]
    pub rate_limit: Option<Option<f64>>,
}

/// For a field that may be absent (outer `None`, via `#[serde(default)]`), `null` (inner
/// `None`) or a value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A source as shown through the API: secrets redacted, the dedup setting in force.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceView {
    pub id: String,
    pub verify: VerifyConfig,
    pub dedup: DedupConfig,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<Source> for SourceView {
    fn from(s: Source) -> Self {
        Self {
            verify: s.verify.redacted(),
            dedup: s.dedup(),
            id: s.id,
            created_at: s.created_at,
        }
    }
}

/// An event in listings: no body or headers (the domain's summary, shown as is).
pub use crate::domain::EventSummary;

/// A whole event: body as text when it is UTF-8, else base64.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub dedup_key: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: String,
    /// `utf8` (the body as text) or `base64`.
    #[schema(value_type = String)]
    pub body_encoding: &'static str,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        use base64::Engine;
        let (body, body_encoding) = match std::str::from_utf8(&e.body) {
            Ok(text) => (text.to_string(), "utf8"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(&e.body),
                "base64",
            ),
        };
        Self {
            summary: EventSummary::from(&e),
            dedup_key: e.dedup_key,
            headers: e.headers,
            body,
            body_encoding,
        }
    }
}

/// `POST /v1/events/{id}/replay` body; empty means every matching subscription.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayEvent {
    pub subscription_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replayed {
    pub event_id: String,
    /// Subscriptions a delivery was enqueued for.
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<EventSummary>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct Admin {
    backend: Backend,
    /// SSRF guard off: subscription URLs may name non-public IP literals.
    allow_private_targets: bool,
}

impl Admin {
    /// With the SSRF guard on, as deliveries are by default.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            allow_private_targets: false,
        }
    }

    /// Mirrors the delivering process's `DeliveryOptions::allow_private_targets`, so a URL the
    /// dispatcher would refuse is refused here already, when it is an IP literal (host names are
    /// only judged at delivery, when resolved).
    pub fn allow_private_targets(mut self, allow: bool) -> Self {
        self.allow_private_targets = allow;
        self
    }

    fn check_target(&self, url: &str) -> AdminResult<()> {
        match crate::netguard::refused_literal(url) {
            Some((ip, range)) if !self.allow_private_targets => Err(invalid(
                "url_not_allowed",
                format!(
                    "url host {ip} is not a public address ({range}); deliveries there are refused"
                ),
            )),
            _ => Ok(()),
        }
    }

    pub async fn create_source(&self, req: CreateSource) -> AdminResult<SourceView> {
        refuse_reserved(&req.id)?;
        if !is_valid_slug(&req.id) {
            return Err(invalid(
                "invalid_source_id",
                "a source id is 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            ));
        }
        let source = Source {
            id: req.id,
            verify: resolve_verify(req.verify, None)?,
            dedup_config: req.dedup,
            created_at: Utc::now(),
        };
        validate_source(&source)?;
        self.backend.sources.create_source(&source).await?;
        Ok(source.into())
    }

    pub async fn update_source(&self, id: &str, req: UpdateSource) -> AdminResult<SourceView> {
        refuse_reserved(id)?;
        let mut source = self.load_source(id).await?;
        if let Some(verify) = req.verify {
            source.verify = resolve_verify(verify, Some(&source.verify))?;
        }
        if let Some(dedup) = req.dedup {
            source.dedup_config = Some(dedup);
        }
        validate_source(&source)?;
        self.backend.sources.update_source(&source).await?;
        Ok(source.into())
    }

    pub async fn get_source(&self, id: &str) -> AdminResult<SourceView> {
        Ok(self.load_source(id).await?.into())
    }

    pub async fn list_sources(&self) -> AdminResult<Vec<SourceView>> {
        let sources = self.backend.sources.list_sources().await?;
        Ok(sources.into_iter().map(SourceView::from).collect())
    }

    pub async fn delete_source(&self, id: &str) -> AdminResult<()> {
        refuse_reserved(id)?;
        match self.backend.sources.delete_source(id).await? {
            true => Ok(()),
            false => Err(AdminError::NotFound(format!("source {id}"))),
        }
    }

    async fn load_source(&self, id: &str) -> AdminResult<Source> {
        self.backend
            .sources
            .get_source(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("source {id}")))
    }

    pub async fn create_subscription(
        &self,
        req: CreateSubscription,
    ) -> AdminResult<CreatedSubscription> {
        validate_url(&req.url)?;
        self.check_target(&req.url)?;
        validate_sources(&req.sources)?;
        validate_filters(&req.event_types)?;
        validate_program("filter", req.filter.as_deref())?;
        validate_program("transform", req.transform.as_deref())?;
        let headers = validate_headers(req.headers)?;
        let rate_limit = validate_rate_limit(req.rate_limit)?;
        let secret = match req.secret {
            Some(secret) => validate_secret(secret)?,
            None => signing::generate_secret(),
        };
        let now = Utc::now();
        let subscription = Subscription {
            sources: req.sources,
            event_types: req.event_types,
            label: req.label,
            enabled: req.enabled.unwrap_or(true),
            filter: req.filter,
            transform: req.transform,
            headers,
            rate_limit,
            ..Subscription::new(new_id("sub"), req.url, secret, now)
        };
        self.backend
            .subscriptions
            .create_subscription(&subscription)
            .await?;
        Ok(CreatedSubscription {
            subscription: SubscriptionView::from(&subscription),
            secret: subscription.secret,
        })
    }

    pub async fn update_subscription(
        &self,
        id: &str,
        req: UpdateSubscription,
    ) -> AdminResult<SubscriptionView> {
        let mut sub = self.load_subscription(id).await?;
        let was_enabled = sub.enabled;
        if let Some(url) = req.url {
            validate_url(&url)?;
            self.check_target(&url)?;
            sub.url = url;
        }
        if let Some(sources) = req.sources {
            validate_sources(&sources)?;
            sub.sources = sources;
        }
        if let Some(filters) = req.event_types {
            validate_filters(&filters)?;
            sub.event_types = filters;
        }
        if let Some(label) = req.label {
            sub.label = Some(label);
        }
        if let Some(filter) = req.filter {
            validate_program("filter", filter.as_deref())?;
            sub.filter = filter;
        }
        if let Some(transform) = req.transform {
            validate_program("transform", transform.as_deref())?;
            sub.transform = transform;
        }
        if let Some(headers) = req.headers {
            let headers = crate::custom_headers::resolve_placeholders(headers, &sub.headers)
                .map_err(|message| invalid("invalid_headers", message))?;
            sub.headers = validate_headers(headers)?;
        }
        if let Some(rate_limit) = req.rate_limit {
            sub.rate_limit = validate_rate_limit(rate_limit)?;
        }
        // The placeholder some clients send back keeps the secret; a new one replaces it at once
        // (`rotate` keeps the old one signing for a while).
        if let Some(secret) = req.secret.filter(|s| s.expose() != REDACTED) {
            sub = secrets::rotated(sub, validate_secret(secret)?, Duration::ZERO, Utc::now());
        }
        if let Some(enabled) = req.enabled {
            if enabled && !sub.enabled {
                // A fresh start: the old streak would disable it again at the next failure.
                sub.health = sub.health.reset();
            }
            sub.enabled = enabled;
            sub.disabled_reason = match (enabled, sub.disabled_reason) {
                (true, _) => None,
                (false, Some(reason)) => Some(reason),
                (false, None) => Some(DisabledReason::Manual),
            };
        }
        sub.updated_at = Utc::now();
        self.backend.subscriptions.update_subscription(&sub).await?;
        if let Some(op) = operational::operator_toggle(&sub.id, was_enabled, sub.enabled) {
            // Logged if it fails: the update itself is done and answered.
            operational::emit(&*self.backend.intake, &op).await;
        }
        Ok(SubscriptionView::from(&sub))
    }

    pub async fn get_subscription(&self, id: &str) -> AdminResult<SubscriptionView> {
        Ok(SubscriptionView::from(&self.load_subscription(id).await?))
    }

    async fn load_subscription(&self, id: &str) -> AdminResult<Subscription> {
        self.backend
            .subscriptions
            .get_subscription(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("subscription {id}")))
    }

    pub async fn list_subscriptions(&self) -> AdminResult<Vec<SubscriptionView>> {
        let subscriptions = self.backend.subscriptions.list_subscriptions().await?;
        Ok(subscriptions.iter().map(SubscriptionView::from).collect())
    }

    pub async fn delete_subscription(&self, id: &str) -> AdminResult<()> {
        match self.backend.subscriptions.delete_subscription(id).await? {
            true => Ok(()),
            false => Err(AdminError::NotFound(format!("subscription {id}"))),
        }
    }

    pub async fn list_events(
        &self,
        source_id: Option<String>,
        before: Option<String>,
        limit: Option<usize>,
    ) -> AdminResult<EventPage> {
        let limit = limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(invalid("invalid_limit", "limit must be between 1 and 1000"));
        }
        let query = EventQuery {
            source_id,
            before,
            limit,
        };
        let events = self.backend.events.list_events(&query).await?;
        let next_cursor = (events.len() == limit)
            .then(|| events.last().map(|e| e.id.clone()))
            .flatten();
        Ok(EventPage {
            data: events,
            next_cursor,
        })
    }

    pub async fn get_event(&self, id: &str) -> AdminResult<EventView> {
        self.backend
            .events
            .get_event(id)
            .await?
            .map(EventView::from)
            .ok_or_else(|| AdminError::NotFound(format!("event {id}")))
    }

    pub async fn event_attempts(&self, id: &str) -> AdminResult<Vec<Attempt>> {
        if self.backend.events.get_event(id).await?.is_none() {
            return Err(AdminError::NotFound(format!("event {id}")));
        }
        Ok(self.backend.attempts.attempts_for_event(id).await?)
    }

    /// Delivers an event again, now: to one subscription, or to every enabled subscription that
    /// matches it. Each target starts a new attempt series (numbers continue after the last
    /// attempt; the retry schedule starts over), whatever came of earlier attempts.
    pub async fn replay_event(&self, id: &str, req: ReplayEvent) -> AdminResult<Replayed> {
        let event = self
            .backend
            .events
            .get_event(id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("event {id}")))?;
        let targets: Vec<Subscription> = match req.subscription_id {
            Some(sub_id) => {
                let sub = self.load_subscription(&sub_id).await?;
                if operational::excluded_subscription(&event).as_deref() == Some(sub.id.as_str()) {
                    return Err(invalid(
                        "operational_event_subject",
                        format!(
                            "event {id} is an operational event about subscription {sub_id}; \
                             it is never delivered to it"
                        ),
                    ));
                }
                if !sub.enabled {
                    return Err(invalid(
                        "subscription_disabled",
                        format!("subscription {sub_id} is disabled; enable it first"),
                    ));
                }
                vec![sub]
            }
            None => crate::dispatch::matching_subscriptions(&self.backend, &event).await?,
        };
        let attempts = self.backend.attempts.attempts_for_event(id).await?;
        let tasks: Vec<(Task, std::time::Duration)> = targets
            .iter()
            .map(|sub| {
                let latest = attempts
                    .iter()
                    .filter(|a| a.subscription_id == sub.id)
                    .max_by_key(|a| a.attempt);
                let series = Series::after(latest);
                let task = Task::Deliver {
                    event_id: event.id.clone(),
                    subscription_id: sub.id.clone(),
                    attempt: series.attempt,
                    not_before: None,
                    series_start: Some(series.start),
                };
                (task, std::time::Duration::ZERO)
            })
            .collect();
        if !tasks.is_empty() {
            self.backend.queue.send_batch(&tasks).await?;
        }
        Ok(Replayed {
            event_id: event.id,
            subscriptions: targets.into_iter().map(|s| s.id).collect(),
        })
    }

    pub async fn subscription_attempts(
        &self,
        id: &str,
        limit: Option<usize>,
    ) -> AdminResult<Vec<Attempt>> {
        self.load_subscription(id).await?;
        let limit = limit.unwrap_or(50).clamp(1, 1000);
        Ok(self
            .backend
            .attempts
            .attempts_for_subscription(id, limit)
            .await?)
    }
}

/// The built-in source `hookhub` is not stored and cannot be created, changed or deleted.
fn refuse_reserved(id: &str) -> AdminResult<()> {
    if operational::is_reserved_source(id) {
        return Err(invalid(
            "reserved_source",
            format!("{id:?} is the built-in source of operational events; it cannot be created, updated or deleted"),
        ));
    }
    Ok(())
}

/// `verify` with placeholder secrets resolved against the stored config (see
/// [`resolve_placeholders`]).
fn resolve_verify(
    verify: VerifyConfig,
    stored: Option<&VerifyConfig>,
) -> AdminResult<VerifyConfig> {
    resolve_placeholders(verify, stored).map_err(|e| invalid("secret_placeholder", e.0))
}

fn validate_source(source: &Source) -> AdminResult<()> {
    source
        .verify
        .validate()
        .map_err(|e| invalid("invalid_verify", e.0))?;
    let scheme = source.verify.scheme_name();
    let has_delivery_id = scheme_info(scheme).is_some_and(|info| info.has_delivery_id());
    source
        .dedup()
        .validate(scheme, has_delivery_id)
        .map_err(|message| invalid("invalid_dedup", message))
}

fn validate_url(raw: &str) -> AdminResult<()> {
    let url = url::Url::parse(raw)
        .map_err(|e| invalid("invalid_url", format!("url is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            "invalid_url",
            "url must be an http(s) URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "invalid_url",
            "url must not carry credentials; subscribers verify the webhook signature instead",
        ));
    }
    Ok(())
}

fn validate_sources(sources: &[String]) -> AdminResult<()> {
    match sources.iter().find(|s| !is_valid_slug(s)) {
        Some(bad) => Err(invalid(
            "invalid_sources",
            format!("{bad:?} is not a valid source id"),
        )),
        None => Ok(()),
    }
}

fn validate_filters(filters: &[String]) -> AdminResult<()> {
    match filters.iter().find(|f| !is_valid_filter(f)) {
        Some(bad) => Err(invalid(
            "invalid_event_types",
            format!("{bad:?} is not an event type filter (use a name or prefix.*)"),
        )),
        None => Ok(()),
    }
}

/// Compiles a jq program to check it; the compiler's message and position on failure.
fn validate_program(field: &str, program: Option<&str>) -> AdminResult<()> {
    match program.map(crate::jq::compile) {
        Some(Err(e)) => Err(AdminError::Invalid {
            code: if field == "filter" {
                "invalid_filter"
            } else {
                "invalid_transform"
            },
            message: format!("{field}: {e}"),
        }),
        _ => Ok(()),
    }
}

fn validate_headers(headers: BTreeMap<String, String>) -> AdminResult<BTreeMap<String, String>> {
    crate::custom_headers::validate(headers).map_err(|message| invalid("invalid_headers", message))
}

fn validate_rate_limit(rate: Option<f64>) -> AdminResult<Option<f64>> {
    rate.map(crate::decision::rate::validate)
        .transpose()
        .map_err(|message| invalid("invalid_rate_limit", message))
}

fn validate_secret(secret: Secret) -> AdminResult<Secret> {
    match signing::decode_secret(secret.expose()) {
        Ok(key) if secret.expose().starts_with("whsec_") && (24..=64).contains(&key.len()) => {
            Ok(secret)
        }
        _ => Err(invalid(
            "invalid_secret",
            "secret must be whsec_ followed by the base64 of 24 to 64 random bytes",
        )),
    }
}

/// A random admin API key: `hh_` + 32 hex-encoded random bytes.
pub fn generate_admin_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("hh_{}", hex::encode(bytes))
}

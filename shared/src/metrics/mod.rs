//! Metrics: one table of what Hookhub measures ([`Metric`]), the recording calls made by the
//! receiver and the dispatcher, and two outputs of the same names — CloudWatch EMF lines on
//! Lambda ([`emf`]) and Prometheus text on the dev server (`prometheus`, feature `prometheus`).
//!
//! Recording goes through the `metrics` facade: without an installed recorder (unit tests,
//! the admin function) every call is a no-op.

pub mod emf;
#[cfg(feature = "prometheus")]
pub mod prometheus;

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::decision::{DeliveryError, Outcome, Verdict};
use crate::domain::{Event, Subscription};

/// How a metric aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    /// A distribution of values (EMF: a list of values; Prometheus: a summary).
    Histogram,
    Gauge,
}

/// Units, named as CloudWatch names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn code(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Every metric Hookhub records. Names, units and dimensions live here only; the README's
/// metric table is checked against [`Metric::readme_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    WebhooksReceived,
    IngestDuration,
    Deliveries,
    DeliveryDuration,
    DeliveryLag,
    QueueDepth,
    OldestTaskAge,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Self::WebhooksReceived,
        Self::IngestDuration,
        Self::Deliveries,
        Self::DeliveryDuration,
        Self::DeliveryLag,
        Self::QueueDepth,
        Self::OldestTaskAge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::WebhooksReceived => "webhooks_received",
            Self::IngestDuration => "ingest_duration",
            Self::Deliveries => "deliveries",
            Self::DeliveryDuration => "delivery_duration",
            Self::DeliveryLag => "delivery_lag",
            Self::QueueDepth => "queue_depth",
            Self::OldestTaskAge => "oldest_task_age",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Self::WebhooksReceived | Self::Deliveries => Kind::Counter,
            Self::IngestDuration | Self::DeliveryDuration | Self::DeliveryLag => Kind::Histogram,
            Self::QueueDepth | Self::OldestTaskAge => Kind::Gauge,
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Self::WebhooksReceived | Self::Deliveries | Self::QueueDepth => Unit::Count,
            Self::IngestDuration
            | Self::DeliveryDuration
            | Self::DeliveryLag
            | Self::OldestTaskAge => Unit::Milliseconds,
        }
    }

    /// Every dimension the metric may carry (`reason` only on rejections).
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            Self::WebhooksReceived => &["source", "outcome", "reason"],
            Self::IngestDuration => &["source"],
            Self::Deliveries => &["outcome", "subscription"],
            Self::DeliveryDuration | Self::DeliveryLag => &["subscription"],
            Self::QueueDepth | Self::OldestTaskAge => &[],
        }
    }

    /// Coarser dimension sets CloudWatch also aggregates by (EMF only), so alarms and the
    /// dashboard need no search expression: totals by outcome, by reason, over everything.
    pub fn rollups(self) -> &'static [&'static [&'static str]] {
        match self {
            Self::WebhooksReceived => &[&["outcome"], &["outcome", "reason"]],
            Self::IngestDuration | Self::DeliveryDuration | Self::DeliveryLag => &[&[]],
            Self::Deliveries => &[&["outcome"]],
            Self::QueueDepth | Self::OldestTaskAge => &[],
        }
    }

    /// Where it is recorded: `receiver`, `dispatcher`, or `dev` (the SQLite queue; on AWS the
    /// SQS queue's own metrics stand in).
    pub fn recorded_by(self) -> &'static str {
        match self {
            Self::WebhooksReceived | Self::IngestDuration => "receiver",
            Self::Deliveries | Self::DeliveryDuration | Self::DeliveryLag => "dispatcher",
            Self::QueueDepth | Self::OldestTaskAge => "dev (SQLite)",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Self::WebhooksReceived => "webhook requests answered, by source and outcome (reason: the error code of a rejection)",
            Self::IngestDuration => "the receiver's own time from request to answer",
            Self::Deliveries => "delivery attempts and decisions, by outcome and subscription",
            Self::DeliveryDuration => "the subscriber's answer time",
            Self::DeliveryLag => "from the event's receipt to its successful delivery",
            Self::QueueDepth => "tasks on the queue (delayed and in flight included)",
            Self::OldestTaskAge => "age of the oldest task on the queue",
        }
    }

    fn from_name(name: &str) -> Option<Metric> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The README's metric table, generated from the definitions above.
    pub fn readme_table() -> String {
        let mut out = String::from(
            "| metric | kind | unit | dimensions | recorded by | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
        );
        for m in Self::ALL {
            let dims: Vec<String> = m.dimensions().iter().map(|d| format!("`{d}`")).collect();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                m.name(),
                match m.kind() {
                    Kind::Counter => "counter",
                    Kind::Histogram => "histogram",
                    Kind::Gauge => "gauge",
                },
                m.unit().code(),
                if dims.is_empty() {
                    "—".to_string()
                } else {
                    dims.join(", ")
                },
                m.recorded_by(),
                m.help()
            ));
        }
        out
    }
}

/// How the receiver answered a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    Duplicate,
    Rejected,
    Handshake,
}

impl WebhookOutcome {
    pub fn code(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Handshake => "handshake",
        }
    }
}

/// What became of one (event, subscription) delivery: the `outcome` dimension of `deliveries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Succeeded,
    Retrying,
    /// Retries exhausted, or the transform failed.
    Failed,
    /// 410 Gone: the subscription is disabled.
    Gone,
    /// Not attempted: the subscription is disabled.
    Skipped,
    /// Refused by the SSRF guard (no request sent).
    Blocked,
    /// Not attempted: the endpoint's circuit is open; re-scheduled.
    Parked,
    /// The subscription's filter left the event out.
    Filtered,
}

impl DeliveryOutcome {
    pub fn code(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Gone => "gone",
            Self::Skipped => "skipped",
            Self::Blocked => "blocked",
            Self::Parked => "parked",
            Self::Filtered => "filtered",
        }
    }

    /// The outcome of an attempt judged `verdict`; `error` is the attempt's error, if any.
    pub fn of(verdict: Verdict, error: Option<DeliveryError>) -> Self {
        if error == Some(DeliveryError::Blocked) {
            return Self::Blocked;
        }
        match verdict {
            Verdict::Succeeded => Self::Succeeded,
            Verdict::Retry { .. } => Self::Retrying,
            Verdict::Exhausted | Verdict::Rejected => Self::Failed,
            Verdict::Gone => Self::Gone,
            Verdict::Parked { .. } => Self::Parked,
            Verdict::Skipped { .. } => Self::Skipped,
        }
    }
}

/// Metric output settings (`Env::metrics_settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// CloudWatch namespace of the EMF lines.
    pub namespace: String,
    /// Subscriptions with their own `subscription` dimension value.
    pub max_subscriptions: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            namespace: emf::DEFAULT_NAMESPACE.to_string(),
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
        }
    }
}

/// The `subscription` value used once this many subscriptions have their own.
pub const OTHER_SUBSCRIPTIONS: &str = "other";

/// Default of `HOOKHUB_METRICS_MAX_SUBSCRIPTIONS`.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 50;

/// Keeps the `subscription` dimension bounded: the first `max` subscriptions seen by the
/// process get their own value, later ones share [`OTHER_SUBSCRIPTIONS`].
#[derive(Debug)]
pub struct SubscriptionLabels {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl SubscriptionLabels {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    pub fn label(&self, subscription_id: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(subscription_id) {
            return subscription_id.to_string();
        }
        if seen.len() < self.max {
            seen.insert(subscription_id.to_string());
            return subscription_id.to_string();
        }
        OTHER_SUBSCRIPTIONS.to_string()
    }
}

static SUBSCRIPTIONS: OnceLock<SubscriptionLabels> = OnceLock::new();

/// Sets the bound of the `subscription` dimension; the first call wins (process start).
pub fn set_max_subscriptions(max: usize) {
    let _ = SUBSCRIPTIONS.set(SubscriptionLabels::new(max));
}

fn subscription_label(subscription_id: &str) -> String {
    SUBSCRIPTIONS
        .get_or_init(|| SubscriptionLabels::new(DEFAULT_MAX_SUBSCRIPTIONS))
        .label(subscription_id)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One webhook request answered by the receiver. `source` must be a configured source (an
/// unknown one is recorded as `unknown`, so callers cannot grow the dimension).
pub fn webhook_received(
    source: &str,
    outcome: WebhookOutcome,
    reason: Option<String>,
    duration: Duration,
) {
    let source = source.to_string();
    let outcome = outcome.code();
    match reason {
        Some(reason) => metrics::counter!(Metric::WebhooksReceived.name(), "source" => source.clone(), "outcome" => outcome, "reason" => reason).increment(1),
        None => metrics::counter!(Metric::WebhooksReceived.name(), "source" => source.clone(), "outcome" => outcome).increment(1),
    }
    metrics::histogram!(Metric::IngestDuration.name(), "source" => source).record(millis(duration));
}

/// One delivery decision of the dispatcher. `duration`: the subscriber's answer time, when it
/// was called; `lag`: receipt to success, on success only.
pub fn delivery(
    subscription_id: &str,
    outcome: DeliveryOutcome,
    duration: Option<Duration>,
    lag: Option<Duration>,
) {
    let subscription = subscription_label(subscription_id);
    metrics::counter!(Metric::Deliveries.name(), "outcome" => outcome.code(), "subscription" => subscription.clone()).increment(1);
    if let Some(d) = duration {
        metrics::histogram!(Metric::DeliveryDuration.name(), "subscription" => subscription.clone())
            .record(millis(d));
    }
    if let Some(lag) = lag {
        metrics::histogram!(Metric::DeliveryLag.name(), "subscription" => subscription)
            .record(millis(lag));
    }
}

/// One judged attempt (see [`DeliveryOutcome::of`]): `deliveries`, the subscriber's answer
/// time when it was called, and on success the lag since the event was received.
pub fn delivery_attempted(
    event: &Event,
    subscription: &Subscription,
    verdict: Verdict,
    outcome: &Outcome,
    duration: Option<Duration>,
) {
    let error = outcome.error();
    let result = DeliveryOutcome::of(verdict, error);
    // Nothing was sent when the transform failed or the guard refused the address.
    let called = !matches!(
        error,
        Some(DeliveryError::TransformFailed | DeliveryError::Blocked)
    );
    let lag = (result == DeliveryOutcome::Succeeded)
        .then(|| (chrono::Utc::now() - event.received_at).to_std().ok())
        .flatten();
    delivery(&subscription.id, result, duration.filter(|_| called), lag);
}

/// The queue's depth and the age of its oldest task (where the backend can tell).
pub fn queue(depth: usize, oldest: Option<Duration>) {
    metrics::gauge!(Metric::QueueDepth.name()).set(depth as f64);
    metrics::gauge!(Metric::OldestTaskAge.name()).set(oldest.map_or(0.0, millis));
}

/// Registers units and help texts with the installed recorder.
pub fn describe() {
    for m in Metric::ALL {
        let unit = match m.unit() {
            Unit::Count => metrics::Unit::Count,
            Unit::Milliseconds => metrics::Unit::Milliseconds,
        };
        match m.kind() {
            Kind::Counter => metrics::describe_counter!(m.name(), unit, m.help()),
            Kind::Histogram => metrics::describe_histogram!(m.name(), unit, m.help()),
            Kind::Gauge => metrics::describe_gauge!(m.name(), unit, m.help()),
        }
    }
}

#[cfg(test)]
mod tests;

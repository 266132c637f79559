//! Operational events: what Hookhub tells the people who run it about their endpoints
//! (disabled, enabled, circuit opened or closed, a delivery that used up its retries, a bulk
//! recovery that finished). They are events of the built-in source [`SOURCE_ID`], stored and
//! enqueued through [`Intake::store_and_enqueue`] like a received webhook, so subscriptions that
//! list `"sources": ["hookhub"]` get them signed, retried and logged like any event.
//!
//! Two rules keep them from feeding on themselves:
//! - an operational event is never delivered to the subscription it is about
//!   ([`excluded_subscription`], applied by fan-out, retries and replay);
//! - a delivery OF an operational event that runs out of retries emits no `delivery.exhausted`
//!   ([`emits_exhausted`]), or two failing ops subscribers would report each other forever.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::decision::{Circuit, DisabledReason, HealthChange};
use crate::domain::Event;
use crate::ports::Intake;

/// The built-in source of operational events. Reserved: no stored source may take this id, and
/// `POST /webhooks/hookhub` is refused, so nobody can forge an operational event.
pub const SOURCE_ID: &str = "hookhub";

/// Whether a source id is the built-in one.
pub fn is_reserved_source(id: &str) -> bool {
    id == SOURCE_ID
}

/// Which bulk job finished (`recovery.finished`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryKind {
    /// `POST /v1/subscriptions/{id}/recover`.
    Recover,
    /// `POST /v1/events/replay`.
    Replay,
}

impl RecoveryKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Recover => "recover",
            Self::Replay => "replay",
        }
    }
}

/// One operational event, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationalEvent {
    /// By an operator (`manual`), on 410 Gone (`gone`) or after failing for `disable_after`
    /// (`failing`).
    SubscriptionDisabled {
        subscription_id: String,
        reason: DisabledReason,
    },
    /// By an operator.
    SubscriptionEnabled { subscription_id: String },
    /// The breaker opened after `breaker_threshold` consecutive failures (not again after each
    /// failed probe: one `circuit_opened`, then one `circuit_closed`).
    CircuitOpened { subscription_id: String },
    /// A probe succeeded: parked deliveries flow again.
    CircuitClosed { subscription_id: String },
    /// A delivery failed its last scheduled attempt.
    DeliveryExhausted {
        subscription_id: String,
        event_id: String,
        attempts: u32,
    },
    /// A bulk recovery or replay enqueued its last page.
    RecoveryFinished {
        kind: RecoveryKind,
        /// The recovered subscription, or the one a replay was limited to.
        subscription_id: Option<String>,
        /// (event, subscription) pairs enqueued for delivery.
        enqueued: u64,
    },
}

/// Every type, with what its body adds to the common fields: the README table.
const TYPES: [(&str, &str, &str); 6] = [
    (
        "subscription.disabled",
        "`reason`: `manual`, `gone` or `failing`",
        "an operator disabled the subscription, it answered 410, or it failed continuously for `disable_after`",
    ),
    (
        "subscription.enabled",
        "—",
        "an operator enabled the subscription again",
    ),
    (
        "subscription.circuit_opened",
        "—",
        "the subscription's circuit breaker opened (once per outage, not after each failed probe)",
    ),
    (
        "subscription.circuit_closed",
        "—",
        "a probe succeeded: the circuit closed and parked deliveries flow again",
    ),
    (
        "delivery.exhausted",
        "`event_id`, `attempts`",
        "a delivery failed its last scheduled attempt (never for deliveries of `hookhub` events)",
    ),
    (
        "recovery.finished",
        "`job` (`recover` or `replay`), `enqueued`",
        "a bulk recovery or replay enqueued its last page (`subscription_id` null for a replay to all)",
    ),
];

impl OperationalEvent {
    /// The event type, as subscriptions filter on it (`event_types`).
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::SubscriptionDisabled { .. } => "subscription.disabled",
            Self::SubscriptionEnabled { .. } => "subscription.enabled",
            Self::CircuitOpened { .. } => "subscription.circuit_opened",
            Self::CircuitClosed { .. } => "subscription.circuit_closed",
            Self::DeliveryExhausted { .. } => "delivery.exhausted",
            Self::RecoveryFinished { .. } => "recovery.finished",
        }
    }

    /// The subscription the event is about (never delivered to it).
    pub fn subscription_id(&self) -> Option<&str> {
        match self {
            Self::SubscriptionDisabled {
                subscription_id, ..
            }
            | Self::SubscriptionEnabled { subscription_id }
            | Self::CircuitOpened { subscription_id }
            | Self::CircuitClosed { subscription_id }
            | Self::DeliveryExhausted {
                subscription_id, ..
            } => Some(subscription_id),
            Self::RecoveryFinished {
                subscription_id, ..
            } => subscription_id.as_deref(),
        }
    }

    /// The JSON body: `type`, `subscription_id`, `occurred_at`, and the type's own fields.
    pub fn body(&self, occurred_at: DateTime<Utc>) -> Value {
        let mut body = json!({
            "type": self.event_type(),
            "subscription_id": self.subscription_id(),
            "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        let extra = match self {
            Self::SubscriptionDisabled { reason, .. } => json!({"reason": reason.code()}),
            Self::DeliveryExhausted {
                event_id, attempts, ..
            } => json!({"event_id": event_id, "attempts": attempts}),
            Self::RecoveryFinished { kind, enqueued, .. } => {
                json!({"job": kind.code(), "enqueued": enqueued})
            }
            Self::SubscriptionEnabled { .. }
            | Self::CircuitOpened { .. }
            | Self::CircuitClosed { .. } => json!({}),
        };
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        body
    }

    /// The event as stored: source `hookhub`, JSON body, never deduplicated.
    pub fn to_event(&self, id: String, occurred_at: DateTime<Utc>) -> Event {
        Event {
            dedup_key: format!("once:{id}"),
            id,
            source_id: SOURCE_ID.to_string(),
            event_type: self.event_type().to_string(),
            received_at: occurred_at,
            content_type: Some("application/json".to_string()),
            headers: BTreeMap::new(),
            body: self.body(occurred_at).to_string().into(),
            enqueued: false,
        }
    }

    /// The README table (header included), from the list of types.
    pub fn markdown_table() -> String {
        let mut table = String::from("| type | adds to the body | emitted when |\n");
        table.push_str("| --- | --- | --- |\n");
        for (event_type, adds, when) in TYPES {
            table.push_str(&format!("| `{event_type}` | {adds} | {when} |\n"));
        }
        table
    }
}

/// The subscription an event must never be delivered to: the one an operational event is about.
/// `None` for other events (and for an operational body that names none).
pub fn excluded_subscription(event: &Event) -> Option<String> {
    if event.source_id != SOURCE_ID {
        return None;
    }
    let body: Value = serde_json::from_slice(&event.body).ok()?;
    body.get("subscription_id")?.as_str().map(str::to_owned)
}

/// The events a recorded outcome's [`HealthChange`] emits, in order: the circuit's change, then
/// the disabling. A re-opening after a failed probe emits nothing (the outage was reported).
pub fn from_health_change(subscription_id: &str, change: &HealthChange) -> Vec<OperationalEvent> {
    let subscription_id = subscription_id.to_string();
    let mut events = Vec::new();
    match change.circuit {
        Some(Circuit::Open) if !change.reopened => events.push(OperationalEvent::CircuitOpened {
            subscription_id: subscription_id.clone(),
        }),
        Some(Circuit::Closed) => events.push(OperationalEvent::CircuitClosed {
            subscription_id: subscription_id.clone(),
        }),
        _ => {}
    }
    if let Some(reason) = change.disabled {
        events.push(OperationalEvent::SubscriptionDisabled {
            subscription_id,
            reason,
        });
    }
    events
}

/// The event of an operator's `PATCH {"enabled": ...}` that turned the subscription on or off;
/// `None` when it changed nothing.
pub fn operator_toggle(subscription_id: &str, was: bool, now: bool) -> Option<OperationalEvent> {
    let subscription_id = subscription_id.to_string();
    match (was, now) {
        (false, true) => Some(OperationalEvent::SubscriptionEnabled { subscription_id }),
        (true, false) => Some(OperationalEvent::SubscriptionDisabled {
            subscription_id,
            reason: DisabledReason::Manual,
        }),
        _ => None,
    }
}

/// Whether a delivery of `event` that ran out of retries emits `delivery.exhausted`: not when
/// it is itself an operational event.
pub fn emits_exhausted(event: &Event) -> bool {
    event.source_id != SOURCE_ID
}

/// Stores and enqueues one operational event. Failures are logged, not returned: the event is
/// bookkeeping about something that already happened (a delivery logged, a subscription
/// updated), which must not fail because of it. Returns the stored event's id.
pub async fn emit(intake: &dyn Intake, event: &OperationalEvent) -> Option<String> {
    let stored = event.to_event(intake.new_event_id(), Utc::now());
    let subscription_id = event.subscription_id().unwrap_or_default();
    // Never deduplicated (`once:` key): the window does not matter.
    match intake.store_and_enqueue(&stored, Duration::ZERO).await {
        Ok(done) => {
            tracing::info!(
                event_id = %done.event_id,
                event_type = event.event_type(),
                subscription_id,
                "operational event emitted"
            );
            Some(done.event_id)
        }
        Err(e) => {
            tracing::error!(
                event_id = %stored.id,
                event_type = event.event_type(),
                subscription_id,
                error = %e,
                "operational event could not be stored or enqueued; not emitted"
            );
            None
        }
    }
}

/// `recovery.finished`, for the bulk recovery job's end.
pub async fn emit_recovery_finished(
    intake: &dyn Intake,
    kind: RecoveryKind,
    subscription_id: Option<&str>,
    enqueued: u64,
) -> Option<String> {
    let event = OperationalEvent::RecoveryFinished {
        kind,
        subscription_id: subscription_id.map(str::to_owned),
        enqueued,
    };
    emit(intake, &event).await
}

#[cfg(test)]
mod tests;

//! Subscription signing secrets through the admin API: shown once when created, then only on
//! demand (`GET /v1/subscriptions/{id}/secret`), and rotated with a grace period during which
//! deliveries carry a signature with the old secret too.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{invalid, validate_secret, Admin, AdminResult};
use crate::decision::{Circuit, DisabledReason, Health};
use crate::domain::{Secret, Subscription};
use crate::signing;

/// How long the previous secret keeps signing after a rotation, unless the request says.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace period a rotation accepts.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A subscription as listed and shown: everything but its secrets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: String,
    pub url: String,
    pub sources: Vec<String>,
    pub event_types: Vec<String>,
    pub label: Option<String>,
    pub enabled: bool,
    /// `enabled` or `disabled`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// `manual`, `gone` (410) or `failing` (failed continuously for `disable_after`).
    pub disabled_reason: Option<DisabledReason>,
    pub health: HealthView,
    /// Until when deliveries are also signed with the secret before the last rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// jq programs (`null` when not set).
    pub filter: Option<String>,
    pub transform: Option<String>,
    /// Static delivery headers; values of sensitive names (authorization, *token*, …) as `***`.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Deliveries per second at most (`null`: no limit).
    pub rate_limit: Option<f64>,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id.clone(),
            url: s.url.clone(),
            sources: s.sources.clone(),
            event_types: s.event_types.clone(),
            label: s.label.clone(),
            enabled: s.enabled,
            status: if s.enabled { "enabled" } else { "disabled" },
            disabled_reason: s.disabled_reason,
            health: HealthView::from(&s.health),
            previous_secret_expires_at: active_grace(s, Utc::now()),
            created_at: s.created_at,
            updated_at: s.updated_at,
            filter: s.filter.clone(),
            transform: s.transform.clone(),
            headers: crate::custom_headers::redacted(&s.headers),
            rate_limit: s.rate_limit,
        }
    }
}

/// A subscription's delivery health as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HealthView {
    pub consecutive_failures: u32,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// `closed`, `open` or `half_open`.
    pub circuit: Circuit,
    /// While the circuit is not closed: when the next probe may go.
    pub next_probe_at: Option<DateTime<Utc>>,
}

impl From<&Health> for HealthView {
    fn from(h: &Health) -> Self {
        Self {
            consecutive_failures: h.consecutive_failures,
            failing_since: h.failing_since,
            last_success_at: h.last_success_at,
            last_failure_at: h.last_failure_at,
            circuit: h.circuit,
            next_probe_at: h.probe_at.filter(|_| h.circuit != Circuit::Closed),
        }
    }
}

/// The answer to a create: the view plus the secret, the one time it is shown unasked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    pub secret: Secret,
}

/// `GET /v1/subscriptions/{id}/secret` and the rotation's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionSecret {
    pub secret: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// `POST /v1/subscriptions/{id}/secret/rotate`; an empty body generates a secret.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// A `whsec_…` secret; generated when absent.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// How long the old secret keeps signing (humantime, `0s` to `7d`); 24 h when absent.
    #[serde(default)]
    pub grace: Option<String>,
}

fn active_grace(s: &Subscription, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    s.previous_secret_expires_at
        .filter(|until| s.previous_secret.is_some() && now < *until)
}

/// The subscription after a rotation to `secret` at `now`: the current secret becomes the
/// previous one until `now + grace` (none with a zero grace).
pub fn rotated(
    mut sub: Subscription,
    secret: Secret,
    grace: Duration,
    now: DateTime<Utc>,
) -> Subscription {
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    let old = std::mem::replace(&mut sub.secret, secret);
    (sub.previous_secret, sub.previous_secret_expires_at) = if grace.is_zero() {
        (None, None)
    } else {
        (Some(old), Some(now + grace))
    };
    sub.updated_at = now;
    sub
}

fn parse_grace(grace: Option<&str>) -> AdminResult<Duration> {
    let Some(text) = grace else {
        return Ok(DEFAULT_ROTATION_GRACE);
    };
    match humantime::parse_duration(text) {
        Ok(d) if d <= MAX_ROTATION_GRACE => Ok(d),
        _ => Err(invalid(
            "invalid_grace",
            format!("grace must be a duration from 0s to 7d, got {text:?}"),
        )),
    }
}

impl Admin {
    pub async fn subscription_secret(&self, id: &str) -> AdminResult<SubscriptionSecret> {
        let sub = self.load_subscription(id).await?;
        Ok(SubscriptionSecret {
            previous_secret_expires_at: active_grace(&sub, Utc::now()),
            secret: sub.secret,
        })
    }

    pub async fn rotate_subscription_secret(
        &self,
        id: &str,
        req: RotateSecret,
    ) -> AdminResult<SubscriptionSecret> {
        let grace = parse_grace(req.grace.as_deref())?;
        let secret = match req.secret {
            Some(secret) => validate_secret(secret)?,
            None => signing::generate_secret(),
        };
        let sub = self.load_subscription(id).await?;
        if signing::decode_secret(secret.expose()) == signing::decode_secret(sub.secret.expose()) {
            return Err(invalid(
                "invalid_secret",
                "the new secret is the current one; send another or none to generate one",
            ));
        }
        let sub = rotated(sub, secret, grace, Utc::now());
        self.backend.subscriptions.update_subscription(&sub).await?;
        Ok(SubscriptionSecret {
            previous_secret_expires_at: active_grace(&sub, sub.updated_at),
            secret: sub.secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscription {
        Subscription::new(
            "sub_1",
            "https://example.com/hook",
            Secret::new("whsec_b2xk"),
            Utc::now(),
        )
    }

    fn signing_with(sub: &Subscription, at: DateTime<Utc>) -> Vec<&str> {
        sub.signing_secrets(at).map(Secret::expose).collect()
    }

    #[test]
    fn rotation_keeps_the_old_secret_signing_for_the_grace_period() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        let r = rotated(sub(), Secret::new("whsec_bmV3"), hour, now);
        assert_eq!(r.secret.expose(), "whsec_bmV3");
        assert_eq!(signing_with(&r, now), ["whsec_bmV3", "whsec_b2xk"]);
        let after = now + chrono::Duration::seconds(3600);
        assert_eq!(signing_with(&r, after), ["whsec_bmV3"]);
        assert_eq!(active_grace(&r, now), Some(after));
        assert_eq!(active_grace(&r, after), None);
        // A second rotation replaces the previous secret: two signatures at most.
        let r2 = rotated(r, Secret::new("whsec_dGhpcmQ="), hour, now);
        assert_eq!(signing_with(&r2, now), ["whsec_dGhpcmQ=", "whsec_bmV3"]);
        // No grace: the old secret stops at once.
        let r3 = rotated(r2, Secret::new("whsec_Zm91cg=="), Duration::ZERO, now);
        assert_eq!(signing_with(&r3, now), ["whsec_Zm91cg=="]);
        assert_eq!(r3.previous_secret, None);
    }

    #[test]
    fn grace_periods() {
        assert_eq!(parse_grace(None).unwrap(), DEFAULT_ROTATION_GRACE);
        assert_eq!(parse_grace(Some("0s")).unwrap(), Duration::ZERO);
        assert_eq!(parse_grace(Some("7d")).unwrap(), MAX_ROTATION_GRACE);
        assert!(parse_grace(Some("8d")).is_err());
        assert!(parse_grace(Some("later")).is_err());
    }

    #[test]
    fn views_hold_no_secret() {
        let r = rotated(
            sub(),
            Secret::new("whsec_bmV3"),
            DEFAULT_ROTATION_GRACE,
            Utc::now(),
        );
        let shown = serde_json::to_string(&SubscriptionView::from(&r)).unwrap();
        assert!(!shown.contains("whsec_"), "{shown}");
        assert!(shown.contains("previous_secret_expires_at"), "{shown}");
    }
}

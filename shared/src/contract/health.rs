//! Checks of the health ports: `record_outcome` and `claim_probe` change only the health (and,
//! when disabling, the three disable fields), and count every outcome. The calls are made one
//! after another: moto does not serialise conditional writes (its check and write interleave
//! across request threads), so racing them here would test the emulator; the adapters' atomicity
//! rests on a single write transaction (SQLite) and a conditional UpdateItem (DynamoDB).

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use super::sample_subscription;
use crate::decision::{Circuit, DisabledReason, Health, HealthOutcome, HealthPolicy};
use crate::domain::Subscription;
use crate::ports::Backend;

fn policy() -> HealthPolicy {
    HealthPolicy {
        breaker_threshold: 5,
        probe_backoff: Duration::from_secs(30),
        max_probe_backoff: Duration::from_secs(600),
        disable_after: Some(Duration::from_secs(3600)),
    }
}

pub async fn health_outcomes_are_atomic(b: &Backend) {
    let s = &b.subscriptions;
    let sub = sample_subscription();
    s.create_subscription(&sub).await.expect("create");
    let p = policy();
    // Nanoseconds on purpose: the timestamps must round-trip exactly.
    let t0 = sub.updated_at + TimeDelta::nanoseconds(1_000_000_123);

    let n = 12;
    let mut opened = 0;
    for i in 0..n {
        let at = t0 + TimeDelta::milliseconds(i);
        let change = s
            .record_outcome(&sub.id, HealthOutcome::Failure, at, &p)
            .await
            .expect("record_outcome")
            .expect("the subscription exists");
        opened += usize::from(change.circuit == Some(Circuit::Open));
    }
    assert_eq!(opened, 1, "the circuit opens exactly once");
    let stored = s.get_subscription(&sub.id).await.unwrap().unwrap();
    let h = &stored.health;
    assert_eq!(h.consecutive_failures, n as u32, "every failure is counted");
    assert_eq!(h.circuit, Circuit::Open);
    assert_eq!(h.failing_since, Some(t0));
    assert_eq!(h.last_failure_at, Some(t0 + TimeDelta::milliseconds(n - 1)));
    assert_eq!(
        Subscription {
            health: Health::default(),
            ..stored.clone()
        },
        sub,
        "only health changes"
    );

    // The probe: once it is due, the first claim wins and the next ones do not.
    let due = h.probe_at.expect("an open circuit has a probe time");
    let early = s
        .claim_probe(&sub.id, due - TimeDelta::seconds(1), &p)
        .await
        .unwrap();
    assert!(!early.expect("exists").claimed, "no probe before probe_at");
    let mut won = 0;
    for _ in 0..4 {
        let claim = s
            .claim_probe(&sub.id, due, &p)
            .await
            .unwrap()
            .expect("exists");
        won += usize::from(claim.claimed);
    }
    assert_eq!(won, 1, "exactly one probe is claimed");
    let probing = s.get_subscription(&sub.id).await.unwrap().unwrap().health;
    assert_eq!(probing.circuit, Circuit::HalfOpen);

    // The probe succeeds: closed, streak reset.
    let ok_at = due + TimeDelta::nanoseconds(5);
    let change = s
        .record_outcome(&sub.id, HealthOutcome::Success, ok_at, &p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.circuit, Some(Circuit::Closed));
    let healed = s.get_subscription(&sub.id).await.unwrap().unwrap();
    assert_eq!(
        healed.health,
        Health {
            last_success_at: Some(ok_at),
            last_failure_at: Some(t0 + TimeDelta::milliseconds(n - 1)),
            ..Health::default()
        }
    );
    assert!(healed.enabled);

    // Missing subscriptions are reported, never created.
    let missing = "sub_missing";
    assert_eq!(
        s.record_outcome(missing, HealthOutcome::Failure, Utc::now(), &p)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.claim_probe(missing, Utc::now(), &p).await.unwrap(), None);
    assert_eq!(s.get_subscription(missing).await.unwrap(), None);
}

pub async fn failing_past_disable_after_disables(b: &Backend) {
    let s = &b.subscriptions;
    let sub = sample_subscription();
    s.create_subscription(&sub).await.expect("create");
    let p = HealthPolicy {
        breaker_threshold: 0,
        ..policy()
    };
    let t0 = sub.updated_at + TimeDelta::seconds(1);
    s.record_outcome(&sub.id, HealthOutcome::Failure, t0, &p)
        .await
        .unwrap();
    let at = t0 + TimeDelta::seconds(3600);
    let change = s
        .record_outcome(&sub.id, HealthOutcome::Failure, at, &p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.disabled, Some(DisabledReason::Failing));
    let stored = s.get_subscription(&sub.id).await.unwrap().unwrap();
    assert!(!stored.enabled);
    assert_eq!(stored.disabled_reason, Some(DisabledReason::Failing));
    assert_eq!(stored.updated_at, at);
    assert_eq!(stored.health.consecutive_failures, 2);
    assert_eq!(
        Subscription {
            enabled: true,
            disabled_reason: None,
            updated_at: sub.updated_at,
            health: Health::default(),
            ..stored.clone()
        },
        sub,
        "nothing else changes"
    );
    let again = s
        .record_outcome(
            &sub.id,
            HealthOutcome::Failure,
            at + TimeDelta::seconds(1),
            &p,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.disabled, None,
        "a disabled subscription is not disabled again"
    );

    // The admin can still replace the record as a whole (re-enable).
    let mut enabled = s.get_subscription(&sub.id).await.unwrap().unwrap();
    enabled.enabled = true;
    enabled.disabled_reason = None;
    enabled.health = enabled.health.reset();
    enabled.updated_at = at + TimeDelta::seconds(5);
    s.update_subscription(&enabled).await.expect("re-enable");
    assert_eq!(s.get_subscription(&sub.id).await.unwrap(), Some(enabled));
}

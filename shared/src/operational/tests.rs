use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::domain::new_id;
use crate::ports::{StoreError, StoreResult, Stored};

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn sub(id: &str) -> String {
    id.to_string()
}

#[test]
fn event_types_and_bodies() {
    let cases: Vec<(OperationalEvent, &str, Value)> = vec![
        (
            OperationalEvent::SubscriptionDisabled {
                subscription_id: sub("sub_1"),
                reason: DisabledReason::Failing,
            },
            "subscription.disabled",
            json!({"reason": "failing"}),
        ),
        (
            OperationalEvent::SubscriptionDisabled {
                subscription_id: sub("sub_1"),
                reason: DisabledReason::Gone,
            },
            "subscription.disabled",
            json!({"reason": "gone"}),
        ),
        (
            OperationalEvent::SubscriptionEnabled {
                subscription_id: sub("sub_1"),
            },
            "subscription.enabled",
            json!({}),
        ),
        (
            OperationalEvent::CircuitOpened {
                subscription_id: sub("sub_1"),
            },
            "subscription.circuit_opened",
            json!({}),
        ),
        (
            OperationalEvent::CircuitClosed {
                subscription_id: sub("sub_1"),
            },
            "subscription.circuit_closed",
            json!({}),
        ),
        (
            OperationalEvent::DeliveryExhausted {
                subscription_id: sub("sub_1"),
                event_id: "evt_9".into(),
                attempts: 4,
            },
            "delivery.exhausted",
            json!({"event_id": "evt_9", "attempts": 4}),
        ),
        (
            OperationalEvent::RecoveryFinished {
                kind: RecoveryKind::Recover,
                subscription_id: Some(sub("sub_1")),
                enqueued: 2000,
            },
            "recovery.finished",
            json!({"job": "recover", "enqueued": 2000}),
        ),
    ];
    for (event, event_type, extra) in cases {
        assert_eq!(event.event_type(), event_type);
        let mut expected = json!({
            "type": event_type,
            "subscription_id": "sub_1",
            "occurred_at": "2023-11-14T22:13:20.000Z",
        });
        expected
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_eq!(event.body(at()), expected, "{event_type}");
        assert!(
            TYPES.iter().any(|(t, ..)| *t == event_type),
            "{event_type} is in the README table"
        );
    }
    let replay = OperationalEvent::RecoveryFinished {
        kind: RecoveryKind::Replay,
        subscription_id: None,
        enqueued: 0,
    };
    assert_eq!(replay.body(at())["subscription_id"], Value::Null);
    assert_eq!(replay.body(at())["job"], "replay");
}

#[test]
fn stored_as_a_hookhub_json_event_never_deduplicated() {
    let op = OperationalEvent::CircuitOpened {
        subscription_id: sub("sub_1"),
    };
    let a = op.to_event(new_id("evt"), at());
    let b = op.to_event(new_id("evt"), at());
    assert_eq!(a.source_id, "hookhub");
    assert_eq!(a.event_type, "subscription.circuit_opened");
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
    assert_eq!(a.received_at, at());
    assert_eq!(a.dedup_key, format!("once:{}", a.id));
    assert_ne!(a.dedup_key, b.dedup_key);
    assert!(!a.enqueued);
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(body, op.body(at()));
}

#[test]
fn loop_rules() {
    let op = OperationalEvent::DeliveryExhausted {
        subscription_id: sub("sub_a"),
        event_id: "evt_1".into(),
        attempts: 3,
    }
    .to_event(new_id("evt"), at());
    assert_eq!(excluded_subscription(&op).as_deref(), Some("sub_a"));
    assert!(!emits_exhausted(&op), "no report about a report");

    let replay_to_all = OperationalEvent::RecoveryFinished {
        kind: RecoveryKind::Replay,
        subscription_id: None,
        enqueued: 1,
    }
    .to_event(new_id("evt"), at());
    assert_eq!(excluded_subscription(&replay_to_all), None);

    // An ordinary event naming a subscription in its body excludes nobody.
    let mut ordinary = op.clone();
    ordinary.source_id = "github".into();
    assert_eq!(excluded_subscription(&ordinary), None);
    assert!(emits_exhausted(&ordinary));

    // A body that is not JSON (never written by Hookhub) excludes nobody, without panicking.
    let mut garbled = op;
    garbled.body = bytes::Bytes::from_static(b"\xff not json");
    assert_eq!(excluded_subscription(&garbled), None);
}

#[test]
fn health_changes_to_events() {
    let change = |circuit, reopened, disabled| HealthChange {
        circuit,
        disabled,
        reopened,
    };
    let types = |c: HealthChange| -> Vec<&'static str> {
        from_health_change("sub_1", &c)
            .iter()
            .map(OperationalEvent::event_type)
            .collect()
    };
    let cases: Vec<(HealthChange, Vec<&str>)> = vec![
        (HealthChange::default(), vec![]),
        (
            change(Some(Circuit::Open), false, None),
            vec!["subscription.circuit_opened"],
        ),
        // A failed probe: the same outage.
        (change(Some(Circuit::Open), true, None), vec![]),
        (
            change(Some(Circuit::Closed), false, None),
            vec!["subscription.circuit_closed"],
        ),
        (
            change(None, false, Some(DisabledReason::Failing)),
            vec!["subscription.disabled"],
        ),
        (
            change(Some(Circuit::Open), false, Some(DisabledReason::Failing)),
            vec!["subscription.circuit_opened", "subscription.disabled"],
        ),
    ];
    for (c, expected) in cases {
        assert_eq!(types(c), expected, "{c:?}");
    }
    assert_eq!(
        from_health_change("sub_1", &change(None, false, Some(DisabledReason::Failing))),
        vec![OperationalEvent::SubscriptionDisabled {
            subscription_id: sub("sub_1"),
            reason: DisabledReason::Failing
        }]
    );
}

#[test]
fn operator_toggles() {
    let types: Vec<Option<&str>> = [(false, true), (true, false), (true, true), (false, false)]
        .into_iter()
        .map(|(was, now)| operator_toggle("sub_1", was, now).map(|e| e.event_type()))
        .collect();
    assert_eq!(
        types,
        [
            Some("subscription.enabled"),
            Some("subscription.disabled"),
            None,
            None
        ]
    );
    let disabled = operator_toggle("sub_1", true, false).unwrap();
    assert_eq!(disabled.body(at())["reason"], "manual");
}

#[test]
fn readme_documents_every_type() {
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&OperationalEvent::markdown_table()),
        "README.md must contain the operational event table exactly as \
         OperationalEvent::markdown_table() renders it:\n{}",
        OperationalEvent::markdown_table()
    );
}

#[test]
fn the_reserved_source() {
    assert!(is_reserved_source("hookhub"));
    assert!(!is_reserved_source("hookhub-prod"));
    assert!(!is_reserved_source("github"));
}

/// Records what it is given, or fails every call.
#[derive(Default)]
struct Recording {
    stored: Mutex<Vec<Event>>,
    fail: bool,
}

#[async_trait]
impl Intake for Recording {
    fn new_event_id(&self) -> String {
        new_id("evt")
    }

    async fn store_and_enqueue(&self, event: &Event, _: Duration) -> StoreResult<Stored> {
        if self.fail {
            return Err(StoreError::Unavailable("down".into()));
        }
        self.stored.lock().unwrap().push(event.clone());
        Ok(Stored {
            event_id: event.id.clone(),
            duplicate: false,
        })
    }
}

#[tokio::test]
async fn emit_stores_and_a_failure_is_only_logged() {
    let intake = Recording::default();
    let id = emit_recovery_finished(&intake, RecoveryKind::Recover, Some("sub_1"), 7).await;
    let stored = intake.stored.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(id.as_deref(), Some(stored[0].id.as_str()));
    assert_eq!(stored[0].event_type, "recovery.finished");

    let failing = Recording {
        fail: true,
        ..Recording::default()
    };
    let op = OperationalEvent::SubscriptionEnabled {
        subscription_id: sub("sub_1"),
    };
    assert_eq!(emit(&failing, &op).await, None);
}

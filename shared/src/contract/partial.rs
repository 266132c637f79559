//! Checks of the ports that read or write only part of a record: event listings (summaries,
//! never bodies) and disabling a subscription in place.

use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};

use super::{sample_event, sample_subscription};
use crate::decision::DisabledReason;
use crate::domain::{EventSummary, Subscription};
use crate::ports::{Backend, DisableOutcome, EventQuery};

const HOUR: Duration = Duration::from_secs(3600);

pub async fn event_listing_returns_summaries(b: &Backend) {
    let mut binary = sample_event("sizes", "k-binary");
    binary.body = Bytes::from_static(&[0xff, 0x00, 0xc3, 0x28, 0x80]);
    binary.content_type = None;
    let mut empty = sample_event("sizes", "k-empty");
    empty.body = Bytes::new();
    let mut large = sample_event("sizes", "k-large");
    large.body = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut text = sample_event("sizes", "k-text");
    // Multi-byte UTF-8: the size is in bytes, not characters.
    text.body = Bytes::from("{\"name\":\"Zoë 🚀\"}");
    let mut events = [binary, empty, large, text];
    for event in &events {
        b.events
            .insert_event(event, HOUR)
            .await
            .unwrap_or_else(|e| panic!("insert_event({}) failed: {e}", event.id));
    }
    events.sort_by(|x, y| y.id.cmp(&x.id));
    let listed = b
        .events
        .list_events(&EventQuery {
            source_id: Some("sizes".to_owned()),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    let expected: Vec<EventSummary> = events.iter().map(EventSummary::from).collect();
    assert_eq!(
        listed, expected,
        "summaries carry every listed field exactly and the body size in bytes"
    );
    assert_eq!(
        listed.iter().map(|s| s.size).collect::<Vec<_>>(),
        events.iter().map(|e| e.body.len()).collect::<Vec<_>>(),
    );
}

pub async fn subscription_disable_in_place(b: &Backend) {
    let s = &b.subscriptions;
    let mut sub = sample_subscription();
    sub.sources = vec!["github".to_owned()];
    sub.event_types = vec!["order.*".to_owned()];
    s.create_subscription(&sub).await.expect("create");
    let other = sample_subscription();
    s.create_subscription(&other).await.expect("create other");

    // Nanoseconds on purpose: the timestamp must round-trip exactly.
    let at = sub.updated_at + TimeDelta::nanoseconds(61_000_000_123);
    let reason = DisabledReason::Gone;
    assert_eq!(
        s.disable_subscription(&sub.id, reason, at).await.unwrap(),
        DisableOutcome::Disabled,
        "disabling an enabled subscription"
    );
    let expected = Subscription {
        enabled: false,
        disabled_reason: Some(reason),
        updated_at: at,
        ..sub.clone()
    };
    assert_eq!(
        s.get_subscription(&sub.id).await.unwrap(),
        Some(expected.clone()),
        "only enabled, disabled_reason and updated_at change"
    );
    assert_eq!(
        s.get_subscription(&other.id).await.unwrap(),
        Some(other.clone()),
        "other subscriptions are untouched"
    );

    let later = at + TimeDelta::seconds(1);
    assert_eq!(
        s.disable_subscription(&sub.id, DisabledReason::Failing, later)
            .await
            .unwrap(),
        DisableOutcome::AlreadyDisabled,
        "only the call that turned it off says it disabled it"
    );
    assert_eq!(
        s.get_subscription(&sub.id)
            .await
            .unwrap()
            .and_then(|x| x.disabled_reason),
        Some(DisabledReason::Failing),
        "disabling a disabled subscription records the new reason"
    );

    let missing = "sub_missing";
    assert_eq!(
        s.disable_subscription(missing, reason, Utc::now())
            .await
            .unwrap(),
        DisableOutcome::NotFound,
        "disabling a missing subscription"
    );
    assert_eq!(
        s.get_subscription(missing).await.unwrap(),
        None,
        "disabling a missing subscription does not create it"
    );
    assert_eq!(s.list_subscriptions().await.unwrap().len(), 2);

    // The disabled record is still a whole subscription that the admin can update again.
    let mut enabled = expected;
    enabled.enabled = true;
    enabled.disabled_reason = None;
    enabled.updated_at = later + TimeDelta::seconds(1);
    s.update_subscription(&enabled).await.expect("re-enable");
    assert_eq!(s.get_subscription(&sub.id).await.unwrap(), Some(enabled));
}

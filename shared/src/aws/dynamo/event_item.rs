//! The event item, written and read by hand rather than through `serde_dynamo`: item size is
//! billed by every attribute name and value, so headers and body are one compressed attribute
//! ([`crate::payload`]), names that no index or IAM condition uses are short, `received_at` is
//! read back from `received_sk` instead of being stored twice, and `enqueued` exists only once
//! true. Layout: `docs/aws-layout.md`, section `events`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::names::*;
use super::{sortable_time, string_attr, Item};
use crate::domain::{Event, EventSummary, StoredPlan};
use crate::payload;
use crate::ports::{StoreError, StoreResult};

/// Short names of the attributes only this module reads.
const EVENT_TYPE: &str = "t";
const CONTENT_TYPE: &str = "ct";
pub(super) const DEDUP_KEY: &str = "dk";
/// The dedup window the event was inserted with (N, nanoseconds), present only for events that
/// own (or should own) a dedup marker: the sweep needs it to finish an interrupted insert.
pub(super) const DEDUP_WINDOW: &str = "dw";
/// Headers and body, compressed together (B).
const PAYLOAD: &str = "p";
/// Present (true) once the dispatch task is on the queue; the IAM grant of `mark_enqueued`
/// names it, so it keeps its long name.
const ENQUEUED: &str = "enqueued";

/// The fan-out plan stored with the event ([`StoredPlan`]): its subscription ids (L of S) and
/// the attempt log layout it was made for (N).
const PLAN_SUBSCRIPTIONS: &str = "pr";
const PLAN_LAYOUT: &str = "pl";
/// What [`plan_from_item`] reads.
pub(super) const PLAN_ATTRIBUTES: [&str; 3] = [PLAN_SUBSCRIPTIONS, PLAN_LAYOUT, RECEIVED_SK];

/// What a listing projects: never the payload.
pub(super) const SUMMARY_ATTRIBUTES: [&str; 6] = [
    "id",
    "source_id",
    EVENT_TYPE,
    CONTENT_TYPE,
    BODY_SIZE,
    RECEIVED_SK,
];

/// The item of a new event. `dedup_window` is set for events that take a dedup marker.
pub(super) fn event_item(
    event: &Event,
    dedup_window: Option<Duration>,
    shard: String,
    expires_at: AttributeValue,
) -> StoreResult<Item> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let mut item: Item = HashMap::with_capacity(13);
    item.insert("id".into(), s(&event.id));
    item.insert("source_id".into(), s(&event.source_id));
    item.insert(EVENT_TYPE.into(), s(&event.event_type));
    if let Some(content_type) = &event.content_type {
        item.insert(CONTENT_TYPE.into(), s(content_type));
    }
    item.insert(DEDUP_KEY.into(), s(&event.dedup_key));
    if let Some(window) = dedup_window {
        item.insert(
            DEDUP_WINDOW.into(),
            AttributeValue::N(window.as_nanos().to_string()),
        );
    }
    let packed = payload::pack(&event.headers, &event.body)?;
    item.insert(PAYLOAD.into(), AttributeValue::B(packed.into()));
    item.insert(
        BODY_SIZE.into(),
        AttributeValue::N(event.body.len().to_string()),
    );
    item.insert(
        RECEIVED_SK.into(),
        AttributeValue::S(received_sk(event.received_at, &event.id)),
    );
    if event.enqueued {
        item.insert(ENQUEUED.into(), AttributeValue::Bool(true));
    } else {
        // Sharded like the table: every event stored before its task passes through this index.
        item.insert(PENDING.into(), AttributeValue::S(shard.clone()));
    }
    item.insert(EVENT_PK.into(), AttributeValue::S(shard));
    item.insert(EXPIRES_AT.into(), expires_at);
    Ok(item)
}

/// The event an item holds.
pub(super) fn event_from_item(item: &Item) -> StoreResult<Event> {
    let id = string_attr(item, "id")?;
    let (headers, body) = match item.get(PAYLOAD) {
        Some(AttributeValue::B(packed)) => payload::unpack(packed.as_ref())
            .map_err(|e| StoreError::Corrupt(format!("event {id}: {e}")))?,
        _ => return Err(StoreError::Corrupt(format!("event {id}: no payload"))),
    };
    Ok(Event {
        source_id: string_attr(item, "source_id")?,
        event_type: string_attr(item, EVENT_TYPE)?,
        received_at: received_at(item)?,
        content_type: optional_string(item, CONTENT_TYPE)?,
        dedup_key: string_attr(item, DEDUP_KEY)?,
        headers,
        body,
        enqueued: matches!(item.get(ENQUEUED), Some(AttributeValue::Bool(true))),
        id,
    })
}

/// Adds `plan` to an event's item.
pub(super) fn add_plan(item: &mut Item, plan: &StoredPlan) {
    let ids = plan.subscriptions.iter().cloned().map(AttributeValue::S);
    item.insert(PLAN_SUBSCRIPTIONS.into(), AttributeValue::L(ids.collect()));
    item.insert(
        PLAN_LAYOUT.into(),
        AttributeValue::N(plan.layout.to_string()),
    );
}

/// The plan stored in an event's item, if any, and the time its attempts were planned at (the
/// event's receipt, as `received_sk` starts with it).
pub(super) fn plan_from_item(item: &Item) -> StoreResult<Option<(StoredPlan, String)>> {
    let (Some(AttributeValue::L(ids)), Some(AttributeValue::N(layout))) =
        (item.get(PLAN_SUBSCRIPTIONS), item.get(PLAN_LAYOUT))
    else {
        return Ok(None);
    };
    let corrupt = || StoreError::Corrupt(format!("event plan {ids:?} / {layout:?}"));
    let subscriptions = ids
        .iter()
        .map(|id| id.as_s().cloned().map_err(|_| corrupt()))
        .collect::<StoreResult<Vec<String>>>()?;
    let layout = layout.parse().map_err(|_| corrupt())?;
    let sk = string_attr(item, RECEIVED_SK)?;
    let at = sk.split_once('#').map(|(time, _)| time.to_owned());
    let at = at.ok_or_else(|| StoreError::Corrupt(format!("malformed {RECEIVED_SK} {sk:?}")))?;
    Ok(Some((
        StoredPlan {
            subscriptions,
            layout,
        },
        at,
    )))
}

/// The summary of an item read with [`SUMMARY_ATTRIBUTES`].
pub(super) fn summary_from_item(item: &Item) -> StoreResult<EventSummary> {
    let id = string_attr(item, "id")?;
    let size = match item.get(BODY_SIZE) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt(format!("event {id}: no body size")))?;
    Ok(EventSummary {
        source_id: string_attr(item, "source_id")?,
        event_type: string_attr(item, EVENT_TYPE)?,
        received_at: received_at(item)?,
        content_type: optional_string(item, CONTENT_TYPE)?,
        size,
        id,
    })
}

/// The dedup window an event item was inserted with; `None` for events without a marker.
pub(super) fn dedup_window(item: &Item) -> Option<Duration> {
    match item.get(DEDUP_WINDOW) {
        Some(AttributeValue::N(n)) => n
            .parse::<u128>()
            .ok()
            .map(|ns| Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))),
        _ => None,
    }
}

pub(super) fn received_sk(t: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", sortable_time(t))
}

/// `received_at` as `received_sk` holds it (`{time}#{id}`, the time at nanosecond precision).
fn received_at(item: &Item) -> StoreResult<DateTime<Utc>> {
    let sk = string_attr(item, RECEIVED_SK)?;
    sk.split_once('#')
        .and_then(|(time, _)| DateTime::parse_from_rfc3339(time).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| StoreError::Corrupt(format!("malformed {RECEIVED_SK} {sk:?}")))
}

fn optional_string(item: &Item, name: &str) -> StoreResult<Option<String>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn event(content_type: Option<&str>, enqueued: bool) -> Event {
        Event {
            id: "evt_01JDZ".into(),
            source_id: "gh".into(),
            event_type: "push".into(),
            received_at: Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
            content_type: content_type.map(str::to_owned),
            dedup_key: "id:abc".into(),
            headers: [("x-a".to_string(), "Zoë".to_string())].into(),
            body: bytes::Bytes::from_static(&[0, 159, 146, 150, 255]),
            enqueued,
        }
    }

    #[test]
    fn items_read_back_as_the_event() {
        for (content_type, enqueued) in [(None, false), (Some("application/json"), true)] {
            let e = event(content_type, enqueued);
            let item = event_item(&e, Some(Duration::from_secs(60)), "3".into(), {
                AttributeValue::N("1".into())
            })
            .unwrap();
            assert_eq!(item.contains_key(PENDING), !enqueued);
            assert_eq!(dedup_window(&item), Some(Duration::from_secs(60)));
            assert_eq!(event_from_item(&item).unwrap(), e);
            let summary = summary_from_item(&item).unwrap();
            assert_eq!(summary, EventSummary::from(&e));
        }
    }

    #[test]
    fn damaged_items_are_corrupt() {
        let good = event_item(&event(None, false), None, "0".into(), {
            AttributeValue::N("1".into())
        })
        .unwrap();
        let damage: [(&str, Option<AttributeValue>); 3] = [
            (PAYLOAD, Some(AttributeValue::B(vec![1, 2, 3].into()))),
            (PAYLOAD, None),
            (RECEIVED_SK, Some(AttributeValue::S("yesterday#evt".into()))),
        ];
        for (name, value) in damage {
            let mut item = good.clone();
            match value {
                Some(v) => item.insert(name.into(), v),
                None => item.remove(name),
            };
            assert!(
                matches!(event_from_item(&item), Err(StoreError::Corrupt(_))),
                "{name}"
            );
        }
    }
}

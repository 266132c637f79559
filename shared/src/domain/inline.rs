//! The event carried inside its dispatch task, so the dispatcher need not read it back.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Event;

/// A whole [`Event`] in a [`Task::Dispatch`](super::Task::Dispatch). On the wire the body is
/// base64 (serde would write `Bytes` as an array of numbers, ~3.5× larger) and the headers a
/// map; or, for a larger event ([`InlineEvent::packed`]), headers and body together as one
/// deflated blob (`hookhub::payload`, as DynamoDB stores them) in base64, `packed`. `enqueued`
/// is not carried: a task holding the event is on the queue, so it reads back `true`. `Debug`
/// shows neither body nor headers (request data stays out of logs and panics). Equality is
/// the event's, whatever the wire form.
#[derive(Clone)]
pub struct InlineEvent(Box<Event>, Form);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain,
    Packed,
}

impl PartialEq for InlineEvent {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl InlineEvent {
    pub fn new(event: &Event) -> Self {
        Self(
            Box::new(Event {
                enqueued: true,
                ..event.clone()
            }),
            Form::Plain,
        )
    }

    /// The event with its headers and body compressed on the wire: a realistic 64 KiB JSON
    /// body takes ~16 KB of task instead of ~88 KB.
    pub fn packed(event: &Event) -> Self {
        Self(Self::new(event).0, Form::Packed)
    }

    pub fn event(&self) -> &Event {
        &self.0
    }

    pub fn into_event(self) -> Event {
        *self.0
    }

    /// The event of the task about `event_id`; an inline event with another id makes the
    /// task malformed (the reason is returned).
    pub fn for_task(self, event_id: &str) -> Result<Event, String> {
        if self.0.id == event_id {
            Ok(self.into_event())
        } else {
            Err(format!(
                "dispatch task for {event_id} carries event {}",
                self.0.id
            ))
        }
    }
}

// Every field of `Event` is `Eq`; it only lacks the derive.
impl Eq for InlineEvent {}

impl fmt::Debug for InlineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        f.debug_struct("InlineEvent")
            .field("id", &e.id)
            .field("source_id", &e.source_id)
            .field("event_type", &e.event_type)
            .field("received_at", &e.received_at)
            .field("headers", &e.headers.len())
            .field("body_len", &e.body.len())
            .finish_non_exhaustive()
    }
}

/// The wire form.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// Headers and body packed ([`crate::payload::pack`]), in base64; then `headers` and
    /// `body` are absent.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_opt")]
    packed: Option<Bytes>,
    id: String,
    source_id: String,
    event_type: String,
    received_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    dedup_key: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    /// Present exactly when `packed` is not.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_opt")]
    body: Option<Bytes>,
}

impl Serialize for InlineEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &*self.0;
        let (packed, headers, body) = match self.1 {
            Form::Plain => (None, e.headers.clone(), Some(e.body.clone())),
            Form::Packed => {
                let packed =
                    crate::payload::pack(&e.headers, &e.body).map_err(serde::ser::Error::custom)?;
                (Some(Bytes::from(packed)), BTreeMap::new(), None)
            }
        };
        Wire {
            packed,
            id: e.id.clone(),
            source_id: e.source_id.clone(),
            event_type: e.event_type.clone(),
            received_at: e.received_at,
            content_type: e.content_type.clone(),
            dedup_key: e.dedup_key.clone(),
            headers,
            body,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for InlineEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let (form, headers, body) = match (&w.packed, w.body) {
            (None, Some(body)) => (Form::Plain, w.headers, body),
            (None, None) => return Err(serde::de::Error::missing_field("body")),
            (Some(_), Some(_)) => {
                return Err(serde::de::Error::custom("both `body` and `packed`"));
            }
            (Some(_), None) if !w.headers.is_empty() => {
                return Err(serde::de::Error::custom("both `headers` and `packed`"));
            }
            (Some(packed), None) => {
                let (headers, body) =
                    crate::payload::unpack(packed).map_err(serde::de::Error::custom)?;
                (Form::Packed, headers, body)
            }
        };
        let event = Box::new(Event {
            id: w.id,
            source_id: w.source_id,
            event_type: w.event_type,
            received_at: w.received_at,
            content_type: w.content_type,
            dedup_key: w.dedup_key,
            headers,
            body,
            enqueued: true,
        });
        Ok(Self(event, form))
    }
}

/// `Bytes` as standard padded base64.
mod base64_body {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use bytes::Bytes;
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(de::Error::custom)
    }
}

/// An optional `Bytes` as base64.
mod base64_opt {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(packed: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match packed {
            Some(bytes) => super::base64_body::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::base64_body")] Bytes);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Task;
    use super::*;

    fn event() -> Event {
        Event {
            id: "evt_1".into(),
            source_id: "github".into(),
            event_type: "push".into(),
            received_at: Utc::now(),
            content_type: Some("application/json".into()),
            dedup_key: "id:d1".into(),
            headers: BTreeMap::from([("x-github-event".into(), "push".into())]),
            body: Bytes::from_static(b"{\"secret-ish\":\"payload\"}\xff"),
            enqueued: false,
        }
    }

    #[test]
    fn round_trips_with_a_base64_body() {
        let original = event();
        let task = Task::Dispatch {
            event_id: "evt_1".into(),
            event: Some(InlineEvent::new(&original)),
            sent_first: None,
        };
        let json = task.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(&original.body);
        assert_eq!(value["event"]["body"], body.as_str());
        assert_eq!(value["event"]["headers"]["x-github-event"], "push");
        assert!(value["event"].get("enqueued").is_none());
        let back = Task::from_json(&json).unwrap();
        assert_eq!(back, task);
        let Task::Dispatch {
            event: Some(inline),
            ..
        } = back
        else {
            panic!("{back:?}")
        };
        assert_eq!(
            inline.into_event(),
            Event {
                enqueued: true,
                ..original
            }
        );
    }

    #[test]
    fn old_dispatch_messages_still_parse() {
        assert_eq!(
            Task::from_json(r#"{"kind":"dispatch","event_id":"evt_01HX"}"#).unwrap(),
            Task::Dispatch {
                event_id: "evt_01HX".into(),
                event: None,
                sent_first: None,
            }
        );
        // And a task by reference is written as before.
        assert_eq!(
            Task::Dispatch {
                event_id: "evt_01HX".into(),
                event: None,
                sent_first: None,
            }
            .to_json(),
            r#"{"kind":"dispatch","event_id":"evt_01HX"}"#
        );
    }

    #[test]
    fn a_body_that_is_not_base64_is_rejected() {
        let json = r#"{"kind":"dispatch","event_id":"evt_1","event":{"id":"evt_1",
            "source_id":"s","event_type":"t","received_at":"2026-01-01T00:00:00Z",
            "dedup_key":"k","body":"not base64!"}}"#;
        assert!(Task::from_json(json).is_err());
    }

    #[test]
    fn round_trips_packed() {
        let mut original = event();
        original.body = Bytes::from(r#"{"commits":[{"message":"fix"}]}"#.repeat(500));
        let plain = Task::Dispatch {
            event_id: "evt_1".into(),
            event: Some(InlineEvent::new(&original)),
            sent_first: None,
        };
        let packed = Task::Dispatch {
            event_id: "evt_1".into(),
            event: Some(InlineEvent::packed(&original)),
            sent_first: None,
        };
        let json = packed.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(value["event"]["packed"].is_string(), "{json}");
        assert!(value["event"].get("body").is_none() && value["event"].get("headers").is_none());
        assert!(
            json.len() * 10 < plain.to_json().len(),
            "packed {} bytes",
            json.len()
        );
        let back = Task::from_json(&json).unwrap();
        assert_eq!(back, plain, "the same event whichever form it travelled in");
        // Damaged packing makes the task unreadable (malformed), never a wrong event.
        let damaged = json.replace(value["event"]["packed"].as_str().unwrap(), "AAAA");
        assert!(Task::from_json(&damaged).is_err());
    }

    #[test]
    fn debug_hides_body_and_headers() {
        let shown = format!("{:?}", InlineEvent::new(&event()));
        assert!(shown.contains("evt_1"), "{shown}");
        assert!(!shown.contains("payload"), "{shown}");
        assert!(!shown.contains("x-github-event"), "{shown}");
    }
}

//! The JSON a subscription's programs see: `{"type", "source", "received_at", "headers", "body"}`.

use jaq_core::ValT;
use jaq_json::Val;

use crate::domain::Event;

/// The event as program input. The body is parsed as JSON; a form-encoded body
/// (`application/x-www-form-urlencoded`) becomes an object (a repeated key, an array of its
/// values); any other body is a string (invalid UTF-8 replaced by U+FFFD).
pub fn event_input(event: &Event) -> Val {
    let text = |s: &str| Val::from(s.to_string());
    let headers = event
        .headers
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect::<Vec<_>>();
    object(vec![
        (text("type"), text(&event.event_type)),
        (text("source"), text(&event.source_id)),
        (
            text("received_at"),
            text(
                &event
                    .received_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        ),
        (text("headers"), object(headers)),
        (
            text("body"),
            body_value(event.content_type.as_deref(), &event.body),
        ),
    ])
}

fn object(entries: Vec<(Val, Val)>) -> Val {
    Val::from_map(entries).unwrap_or_default()
}

fn body_value(content_type: Option<&str>, body: &[u8]) -> Val {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    if essence.as_deref() == Some("application/x-www-form-urlencoded") {
        return form_value(body);
    }
    serde_json::from_slice::<Val>(body)
        .unwrap_or_else(|_| Val::from(String::from_utf8_lossy(body).into_owned()))
}

fn form_value(body: &[u8]) -> Val {
    // In the order keys first appear; an index keeps many fields linear.
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for (key, value) in url::form_urlencoded::parse(body) {
        match index.get(key.as_ref()) {
            Some(&i) => fields[i].1.push(value.into_owned()),
            None => {
                index.insert(key.to_string(), fields.len());
                fields.push((key.into_owned(), vec![value.into_owned()]));
            }
        }
    }
    object(
        fields
            .into_iter()
            .map(|(key, mut values)| {
                let value = if values.len() == 1 {
                    Val::from(values.remove(0))
                } else {
                    values.into_iter().map(Val::from).collect()
                };
                (Val::from(key), value)
            })
            .collect(),
    )
}

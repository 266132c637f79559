//! Per-source deduplication: what makes two requests "the same webhook", so a provider's retry
//! is acknowledged without being stored or delivered again.
//!
//! `"dedup": {"key": …, "window": "24h"}` on a source. Keys:
//!
//! | key | two requests are the same webhook when… |
//! | --- | --- |
//! | `delivery_id` | the provider's own delivery id matches (the scheme must have one) |
//! | `body` | the raw bodies are byte-identical (SHA-256) |
//! | `none` | never: every request is a new event |
//! | `header:<Name>` | that request header has the same value |
//! | `json:<pointer>` | the value at that JSON pointer (RFC 6901) of the body is the same |
//!
//! A request that lacks the chosen id (no delivery id, header or JSON value) is a new event: a
//! missing id never makes two different webhooks collide. The default is `delivery_id` where the
//! scheme has one, else `none`; never `body`, which drops real events of providers that send the
//! same bytes twice on purpose (Dropbox's change notifications, pings).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest accepted window: events themselves are kept 30 days by default, and a marker
/// outliving its event would name an event that is gone.
pub const MAX_WINDOW: Duration = Duration::from_secs(30 * 86_400);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// `delivery_id`, `body`, `none`, `header:<name>` or `json:<pointer>`.
    #[schema(value_type = String)]
    pub key: DedupKey,
    /// How long a key counts (humantime: `24h`, `90m`); the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DedupKey {
    DeliveryId,
    Body,
    None,
    /// A request header, by name (case-insensitive).
    Header(String),
    /// A JSON pointer into the body (`/id`, `/data/event_id`).
    Json(String),
}

impl FromStr for DedupKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = match s {
            "delivery_id" => DedupKey::DeliveryId,
            "body" => DedupKey::Body,
            "none" => DedupKey::None,
            _ => match s.split_once(':') {
                Some(("header", name)) => {
                    http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("{name:?} is not a valid header name"))?;
                    DedupKey::Header(name.to_string())
                }
                Some(("json", pointer)) if pointer.starts_with('/') => {
                    DedupKey::Json(pointer.to_string())
                }
                Some(("json", _)) => {
                    return Err("a JSON pointer starts with `/`, e.g. json:/id".to_string())
                }
                _ => {
                    return Err(format!(
                        "unknown dedup key {s:?}: use delivery_id, body, none, header:<Name> or \
                         json:<pointer>"
                    ))
                }
            },
        };
        Ok(key)
    }
}

impl TryFrom<String> for DedupKey {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DedupKey::DeliveryId => f.write_str("delivery_id"),
            DedupKey::Body => f.write_str("body"),
            DedupKey::None => f.write_str("none"),
            DedupKey::Header(name) => write!(f, "header:{name}"),
            DedupKey::Json(pointer) => write!(f, "json:{pointer}"),
        }
    }
}

impl From<DedupKey> for String {
    fn from(key: DedupKey) -> Self {
        key.to_string()
    }
}

impl DedupConfig {
    /// The default for a scheme: its provider's delivery id when it has one, else nothing.
    pub fn default_for(has_delivery_id: bool) -> Self {
        Self {
            key: if has_delivery_id {
                DedupKey::DeliveryId
            } else {
                DedupKey::None
            },
            window: None,
        }
    }

    /// Checks the config for a source whose scheme has (or lacks) a delivery id.
    pub fn validate(&self, scheme: &str, has_delivery_id: bool) -> Result<(), String> {
        if self.key == DedupKey::DeliveryId && !has_delivery_id {
            return Err(format!(
                "scheme {scheme} has no delivery id: use body, none, header:<Name> or json:<pointer>"
            ));
        }
        if let Some(text) = &self.window {
            match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() && d <= MAX_WINDOW => {}
                Ok(_) => return Err("dedup window must be between 1s and 30d".to_string()),
                Err(e) => return Err(format!("dedup window {text:?} is not a duration: {e}")),
            }
        }
        Ok(())
    }

    /// The window to apply: this config's, else `default`.
    pub fn window_or(&self, default: Duration) -> Duration {
        self.window
            .as_deref()
            .and_then(|w| humantime::parse_duration(w).ok())
            .unwrap_or(default)
    }
}

/// What a request offers to recognise it by.
#[derive(Debug, Clone, Copy)]
pub struct DedupInput<'a> {
    pub delivery_id: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub json: Option<&'a serde_json::Value>,
    pub body: &'a [u8],
}

/// The dedup key of a request, scoped by kind so keys of different kinds never collide;
/// `None` when the request is not to be deduplicated.
pub fn dedup_key(key: &DedupKey, input: DedupInput<'_>) -> Option<String> {
    match key {
        DedupKey::None => None,
        DedupKey::DeliveryId => input.delivery_id.map(|id| format!("id:{id}")),
        DedupKey::Body => Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(input.body))
        )),
        DedupKey::Header(name) => {
            let value = input.headers.get(name.as_str())?.to_str().ok()?;
            Some(format!("header:{}:{value}", name.to_ascii_lowercase()))
        }
        DedupKey::Json(pointer) => {
            let value = input.json?.pointer(pointer)?;
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => return None,
                other => other.to_string(),
            };
            Some(format!("json:{pointer}:{text}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_parse_and_print() {
        for text in [
            "delivery_id",
            "body",
            "none",
            "header:X-Request-Id",
            "json:/data/id",
        ] {
            let key: DedupKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
        }
        for bad in [
            "",
            "id",
            "header:",
            "header:bad name",
            "json:id",
            "json",
            "sha256",
        ] {
            assert!(bad.parse::<DedupKey>().is_err(), "{bad}");
        }
        let config: DedupConfig =
            serde_json::from_value(json!({"key": "header:X-Id", "window": "2h"})).unwrap();
        assert_eq!(config.key, DedupKey::Header("X-Id".into()));
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            json!({"key": "header:X-Id", "window": "2h"})
        );
        assert!(serde_json::from_value::<DedupConfig>(json!({"key": "nope"})).is_err());
        assert!(serde_json::from_value::<DedupConfig>(json!({"key": "body", "x": 1})).is_err());
    }

    #[test]
    fn validation_per_scheme_and_window() {
        let key = |k: &str, w: Option<&str>| DedupConfig {
            key: k.parse().unwrap(),
            window: w.map(str::to_string),
        };
        assert!(key("delivery_id", None).validate("github", true).is_ok());
        let err = key("delivery_id", None)
            .validate("hmac", false)
            .unwrap_err();
        assert!(err.contains("hmac has no delivery id"), "{err}");
        assert!(key("body", Some("90m")).validate("hmac", false).is_ok());
        for bad in ["0s", "31d", "soon"] {
            assert!(
                key("none", Some(bad)).validate("hmac", false).is_err(),
                "{bad}"
            );
        }
        let d = Duration::from_secs(60);
        assert_eq!(
            key("none", Some("2h")).window_or(d),
            Duration::from_secs(7200)
        );
        assert_eq!(key("none", None).window_or(d), d);
        assert_eq!(DedupConfig::default_for(true).key, DedupKey::DeliveryId);
        assert_eq!(DedupConfig::default_for(false).key, DedupKey::None);
    }

    #[test]
    fn key_per_setting() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "req-7".parse().unwrap());
        let body = br#"{"id":"ev_1","n":3,"nested":{"id":null}}"#;
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        let input = DedupInput {
            delivery_id: Some("d-1"),
            headers: &headers,
            json: Some(&json),
            body,
        };
        let without = DedupInput {
            delivery_id: None,
            json: None,
            ..input
        };
        let cases: &[(&str, DedupInput<'_>, Option<&str>)] = &[
            ("none", input, None),
            ("delivery_id", input, Some("id:d-1")),
            ("delivery_id", without, None),
            (
                "header:X-Request-Id",
                input,
                Some("header:x-request-id:req-7"),
            ),
            ("header:X-Other", input, None),
            ("json:/id", input, Some("json:/id:ev_1")),
            ("json:/n", input, Some("json:/n:3")),
            ("json:/nested/id", input, None),
            ("json:/missing", input, None),
            ("json:/id", without, None),
        ];
        for (key, input, expected) in cases {
            let got = dedup_key(&key.parse().unwrap(), *input);
            assert_eq!(got.as_deref(), *expected, "{key}");
        }
        let hashed = dedup_key(&DedupKey::Body, input).unwrap();
        assert_eq!(hashed.len(), "sha256:".len() + 64);
        assert_eq!(Some(hashed), dedup_key(&DedupKey::Body, without));
    }
}

//! `linear`: `Linear-Signature: <hex HMAC-SHA256(secret, body)>`. The timestamp is inside the
//! signed body (`webhookTimestamp`, milliseconds), and Linear asks for a one-minute window.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    check_window_millis, dotted, header_text, hex_sha256, str_at, validate_tolerance, Scheme,
    SignatureFormat,
};
use super::{ConfigError, EventMeta, InboundRequest, Secrets, VerifyConfig, VerifyError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// The webhook's signing secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
    /// Default 60, as Linear recommends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

const SIGNATURE: SignatureFormat<'static> = hex_sha256("Linear-Signature", None);
const DEFAULT_TOLERANCE: u64 = 60;

impl Scheme for LinearConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNATURE.verify(req, &self.secret, &[req.body])?;
        // Signed content without its timestamp cannot be placed in time: treat it as outside.
        let timestamp = serde_json::from_slice::<WebhookTimestamp>(req.body)
            .ok()
            .and_then(|body| body.0?.as_i64())
            .ok_or(VerifyError::TimestampOutOfRange)?;
        check_window_millis(
            timestamp,
            req.now,
            self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE),
        )
    }

    /// `Issue.create`, `Comment.update`…: `type` + `.` + `action`. The id is `Linear-Delivery`.
    fn describe(&self, req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: dotted(str_at(json, &["type"]), str_at(json, &["action"])),
            delivery_id: header_text(req, "Linear-Delivery"),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Linear(LinearConfig {
            secret: self.secret.redacted(),
            tolerance_seconds: self.tolerance_seconds,
        })
    }
}

/// The body's top-level `webhookTimestamp` (the last one, as a parsed `Value` would keep), read
/// without building the rest of the document: the receiver parses the body once more anyway.
struct WebhookTimestamp(Option<Value>);

impl<'de> serde::Deserialize<'de> for WebhookTimestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = WebhookTimestamp;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WebhookTimestamp, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "webhookTimestamp" {
                        found = Some(map.next_value::<Value>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(WebhookTimestamp(found))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

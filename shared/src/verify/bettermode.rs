//! `bettermode`: `X-Bettermode-Signature: <hex HMAC-SHA256(secret, "{timestamp}:{body}")>` with
//! `X-Bettermode-Request-Timestamp` in milliseconds (5 minutes by default; Bettermode suggests
//! up to 15). Bettermode was Tribe, and older deliveries use `X-Tribe-*` names: both are read.
//! The `TEST` challenge sent when the webhook URL is saved is signed like any request and is
//! answered with `SUCCEEDED` and the same challenge.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    hex_sha256, json_response, str_at, validate_tolerance, Scheme, TimestampedSignature,
};
use super::{
    ConfigError, EventMeta, HandshakeResponse, InboundRequest, Secrets, VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BettermodeConfig {
    /// The app's signing secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

/// Header names, current first, then Tribe's.
const NAMES: [(&str, &str); 2] = [
    ("X-Bettermode-Signature", "X-Bettermode-Request-Timestamp"),
    ("X-Tribe-Signature", "X-Tribe-Request-Timestamp"),
];

impl Scheme for BettermodeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        // The family whose signature header is present decides; the current one when neither is.
        let (signature, timestamp) = NAMES
            .into_iter()
            .find(|(signature, _)| req.headers.contains_key(*signature))
            .unwrap_or(NAMES[0]);
        TimestampedSignature {
            signature: hex_sha256(signature, None),
            timestamp_header: timestamp,
            prefix: b"",
            separator: b":",
            millis: true,
        }
        .verify(req, &self.secret, self.tolerance_seconds)
    }

    fn post_handshake(
        &self,
        _req: &InboundRequest<'_>,
        json: Option<&Value>,
    ) -> Option<HandshakeResponse> {
        if str_at(json, &["type"])? != "TEST" {
            return None;
        }
        let challenge = str_at(json, &["data", "challenge"])?;
        Some(json_response(
            200,
            &json!({ "type": "TEST", "status": "SUCCEEDED", "data": { "challenge": challenge } }),
        ))
    }

    /// `post.published`, `member.verified`…: `data.name`. The id is `data.id`, which
    /// Bettermode documents as unique per event, else the top-level `id`.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: str_at(json, &["data", "name"]),
            delivery_id: str_at(json, &["data", "id"]).or_else(|| str_at(json, &["id"])),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Bettermode(BettermodeConfig {
            secret: self.secret.redacted(),
            tolerance_seconds: self.tolerance_seconds,
        })
    }
}

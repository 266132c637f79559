//! `zoom`: `x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{ts}:{body}")>` with
//! `x-zm-request-timestamp` (unix seconds, 5 minutes). The `endpoint.url_validation` event is
//! answered with the plain token and its HMAC under the current secret token.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    hex_sha256, hmac_sha256, json_response, str_at, validate_tolerance, Scheme, SignatureFormat,
    TimestampedSignature,
};
use super::{
    ConfigError, EventMeta, HandshakeResponse, InboundRequest, Secrets, VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomConfig {
    /// The app's secret token (`secret` or `secrets`; the first one answers URL validation).
    #[serde(flatten)]
    pub secret: Secrets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

const SIGNATURE: SignatureFormat<'static> = hex_sha256("x-zm-signature", Some("v0="));
const TIMESTAMP: &str = "x-zm-request-timestamp";
const SIGNED: TimestampedSignature<'static> = TimestampedSignature {
    signature: SIGNATURE,
    timestamp_header: TIMESTAMP,
    prefix: b"v0:",
    separator: b":",
    millis: false,
};

impl Scheme for ZoomConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNED.verify(req, &self.secret, self.tolerance_seconds)
    }

    fn post_handshake(
        &self,
        _req: &InboundRequest<'_>,
        json: Option<&Value>,
    ) -> Option<HandshakeResponse> {
        if str_at(json, &["event"])? != "endpoint.url_validation" {
            return None;
        }
        let plain = str_at(json, &["payload", "plainToken"])?;
        let secret = self.secret.current()?;
        let encrypted = hex::encode(hmac_sha256(secret.expose().as_bytes(), &[plain.as_bytes()]));
        Some(json_response(
            200,
            &json!({ "plainToken": plain, "encryptedToken": encrypted }),
        ))
    }

    /// `meeting.started`, `recording.completed`…: the body's `event`. Zoom sends no delivery id.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: str_at(json, &["event"]),
            delivery_id: None,
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Zoom(ZoomConfig {
            secret: self.secret.redacted(),
            tolerance_seconds: self.tolerance_seconds,
        })
    }
}

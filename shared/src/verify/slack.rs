//! `slack`: `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:{ts}:{body}")>` with
//! `X-Slack-Request-Timestamp` (unix seconds, 5 minutes). The Events API's `url_verification`
//! is answered with its challenge; slash commands and interactivity arrive form-encoded.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::common::{
    form_as_json, hex_sha256, is_form, json_or_form_payload, json_response, str_at,
    validate_tolerance, Scheme, SignatureFormat, TimestampedSignature,
};
use super::{
    ConfigError, EventMeta, HandshakeResponse, InboundRequest, Secrets, VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The app's signing secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

const SIGNATURE: SignatureFormat<'static> = hex_sha256("X-Slack-Signature", Some("v0="));
const TIMESTAMP: &str = "X-Slack-Request-Timestamp";
const SIGNED: TimestampedSignature<'static> = TimestampedSignature {
    signature: SIGNATURE,
    timestamp_header: TIMESTAMP,
    prefix: b"v0:",
    separator: b":",
    millis: false,
};

impl Scheme for SlackConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNED.verify(req, &self.secret, self.tolerance_seconds)
    }

    /// Slack accepts the challenge as plain text, form or JSON; JSON is the documented example.
    fn post_handshake(
        &self,
        _req: &InboundRequest<'_>,
        json: Option<&Value>,
    ) -> Option<HandshakeResponse> {
        if str_at(json, &["type"])? != "url_verification" {
            return None;
        }
        let challenge = str_at(json, &["challenge"])?;
        Some(json_response(200, &json!({ "challenge": challenge })))
    }

    /// Events API JSON, interactivity's `payload=` JSON, or a slash command's form fields.
    fn json_for_typing(&self, req: &InboundRequest<'_>) -> Option<Value> {
        json_or_form_payload(req.body).or_else(|| is_form(req).then(|| form_as_json(req.body))?)
    }

    /// `event.type` for Events API callbacks (`app_mention`…), else the top-level `type`
    /// (`block_actions`…), else `slash_command`. The id is `event_id`, the same on every retry
    /// (`X-Slack-Retry-Num`), so retries deduplicate.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        let event_type = str_at(json, &["event", "type"])
            .or_else(|| str_at(json, &["type"]))
            .or_else(|| str_at(json, &["command"]).map(|_| "slash_command".to_owned()));
        EventMeta {
            event_type,
            delivery_id: str_at(json, &["event_id"]),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Slack(SlackConfig {
            secret: self.secret.redacted(),
            tolerance_seconds: self.tolerance_seconds,
        })
    }
}

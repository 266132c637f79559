//! `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. Deliveries may be
//! JSON or `application/x-www-form-urlencoded` with the JSON in `payload`; the signature always
//! covers the raw body as sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::SignatureFormat;
use super::common::{dotted, header_text, hex_sha256, json_or_form_payload, str_at, Scheme};
use super::{ConfigError, EventMeta, InboundRequest, Secrets, VerifyConfig, VerifyError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// The webhook secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
}

const SIGNATURE: SignatureFormat<'static> = hex_sha256("X-Hub-Signature-256", Some("sha256="));

impl Scheme for GithubConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNATURE.verify(req, &self.secret, &[req.body])
    }

    fn json_for_typing(&self, req: &InboundRequest<'_>) -> Option<Value> {
        json_or_form_payload(req.body)
    }

    /// `issues.opened`, `push`, `ping`…: the event header, plus the body's `action` if any.
    fn describe(&self, req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: dotted(
                header_text(req, "X-GitHub-Event"),
                str_at(json, &["action"]),
            ),
            delivery_id: header_text(req, "X-GitHub-Delivery"),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Github(GithubConfig {
            secret: self.secret.redacted(),
        })
    }
}

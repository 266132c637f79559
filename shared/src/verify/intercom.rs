//! `intercom`: `X-Hub-Signature: sha1=<hex HMAC-SHA1(client secret, body)>`. The `ping`
//! notification sent when a webhook is set up is an ordinary, signed event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{str_at, Scheme, SignatureFormat};
use super::{
    ConfigError, EventMeta, HmacAlgorithm, InboundRequest, Secrets, SignatureEncoding,
    VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntercomConfig {
    /// The app's client secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
}

const SIGNATURE: SignatureFormat<'static> = SignatureFormat {
    header: "X-Hub-Signature",
    prefix: Some("sha1="),
    encoding: SignatureEncoding::Hex,
    algorithm: HmacAlgorithm::Sha1,
};

impl Scheme for IntercomConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNATURE.verify(req, &self.secret, &[req.body])
    }

    /// `conversation.user.created`, `ping`…: the notification's `topic`; its `id` identifies it.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: str_at(json, &["topic"]),
            delivery_id: str_at(json, &["id"]),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Intercom(IntercomConfig {
            secret: self.secret.redacted(),
        })
    }
}

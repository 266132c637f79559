//! `shopify`: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>`; the topic
//! (`orders/create`) and webhook id come in headers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{header_text, Scheme, SignatureFormat};
use super::{
    ConfigError, EventMeta, HmacAlgorithm, InboundRequest, Secrets, SignatureEncoding,
    VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    /// The app's client secret, or the store's webhook signing key (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
}

const SIGNATURE: SignatureFormat<'static> = SignatureFormat {
    header: "X-Shopify-Hmac-Sha256",
    prefix: None,
    encoding: SignatureEncoding::Base64,
    algorithm: HmacAlgorithm::Sha256,
};

impl Scheme for ShopifyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNATURE.verify(req, &self.secret, &[req.body])
    }

    fn describe(&self, req: &InboundRequest<'_>, _json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: header_text(req, "X-Shopify-Topic"),
            delivery_id: header_text(req, "X-Shopify-Webhook-Id"),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Shopify(ShopifyConfig {
            secret: self.secret.redacted(),
        })
    }
}

//! `meta` (Facebook, Instagram, WhatsApp Cloud API): `X-Hub-Signature-256: sha256=<hex
//! HMAC-SHA256(app secret, body)>`. Subscribing sends `GET ?hub.mode=subscribe&
//! hub.verify_token=…&hub.challenge=…`, answered with the challenge when the token matches.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    hex_sha256, query_param, redacted_secret, str_at, text_response, validate_secret, value_at,
    Scheme, SignatureFormat,
};
use super::{
    ConfigError, EventMeta, HandshakeResponse, InboundRequest, Secrets, VerifyConfig, VerifyError,
};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// The app secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
    /// The verify token entered in the app dashboard with the callback URL.
    pub verify_token: Secret,
}

const SIGNATURE: SignatureFormat<'static> = hex_sha256("X-Hub-Signature-256", Some("sha256="));

impl Scheme for MetaConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        validate_secret("verify_token", &self.verify_token)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNATURE.verify(req, &self.secret, &[req.body])
    }

    /// Anything but a subscribe request with the right token and a challenge is refused (403),
    /// so the endpoint never echoes text for a caller who does not know the token.
    fn get_handshake(
        &self,
        req: &InboundRequest<'_>,
    ) -> Option<Result<HandshakeResponse, VerifyError>> {
        let param = |key| query_param(req.query, key);
        let token_ok = param("hub.verify_token").is_some_and(|token| {
            super::constant_time_eq(token.as_bytes(), self.verify_token.expose().as_bytes())
        });
        let answer = match (
            param("hub.mode").as_deref(),
            token_ok,
            param("hub.challenge"),
        ) {
            (Some("subscribe"), true, Some(challenge)) => {
                let mut response = text_response(200, challenge);
                response
                    .headers
                    .push(("X-Content-Type-Options".to_owned(), "nosniff".to_owned()));
                Ok(response)
            }
            _ => Err(VerifyError::HandshakeForbidden),
        };
        Some(answer)
    }

    /// The body's `object` (`page`, `instagram`, `whatsapp_business_account`…), plus the first
    /// change's `field` (`messages`, `feed`…) or `messaging` for Messenger, when present.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        let entry = value_at(json, &["entry"]).and_then(|e| e.get(0));
        let field = entry
            .and_then(|e| e.get("changes")?.get(0))
            .and_then(|change| str_at(Some(change), &["field"]))
            .or_else(|| {
                entry
                    .and_then(|e| e.get("messaging"))
                    .map(|_| "messaging".to_owned())
            });
        let event_type = str_at(json, &["object"]).map(|object| match field {
            Some(field) => format!("{object}.{field}"),
            None => object,
        });
        EventMeta {
            event_type,
            delivery_id: None,
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Meta(MetaConfig {
            secret: self.secret.redacted(),
            verify_token: redacted_secret(),
        })
    }
}

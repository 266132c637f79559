//! `dropbox`: `X-Dropbox-Signature: <hex HMAC-SHA256(app secret, body)>`. Registering the
//! webhook sends `GET ?challenge=…`, echoed back as text with `X-Content-Type-Options: nosniff`
//! as Dropbox asks, so the echo cannot be sniffed into HTML.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{hex_sha256, query_param, text_response, value_at, Scheme, SignatureFormat};
use super::{
    ConfigError, EventMeta, HandshakeResponse, InboundRequest, Secrets, VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropboxConfig {
    /// The app secret (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
}

const SIGNATURE: SignatureFormat<'static> = hex_sha256("X-Dropbox-Signature", None);

impl Scheme for DropboxConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        SIGNATURE.verify(req, &self.secret, &[req.body])
    }

    /// A GET without `challenge` is not from Dropbox: `None`, so it is refused as any GET.
    fn get_handshake(
        &self,
        req: &InboundRequest<'_>,
    ) -> Option<Result<HandshakeResponse, VerifyError>> {
        let challenge = query_param(req.query, "challenge")?;
        let mut response = text_response(200, challenge);
        response
            .headers
            .push(("X-Content-Type-Options".to_owned(), "nosniff".to_owned()));
        Some(Ok(response))
    }

    /// Dropbox only ever notifies that accounts' files changed: `list_folder`.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: value_at(json, &["list_folder"]).map(|_| "list_folder".to_owned()),
            delivery_id: None,
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Dropbox(DropboxConfig {
            secret: self.secret.redacted(),
        })
    }
}

//! `sendgrid`: the signed Event Webhook. ECDSA P-256 with SHA-256 over `{timestamp}{body}`;
//! `X-Twilio-Email-Event-Webhook-Signature` holds the base64 DER signature and
//! `X-Twilio-Email-Event-Webhook-Timestamp` the unix seconds (5 minutes). The key is the
//! verification key SendGrid shows: base64 DER SubjectPublicKeyInfo (a PEM block also works).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use p256::ecdsa::signature::DigestVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::common::{
    check_window_seconds, header, parse_timestamp, str_at, validate_tolerance, Scheme,
    DEFAULT_TOLERANCE_SECONDS,
};
use super::{ConfigError, EventMeta, InboundRequest, VerifyConfig, VerifyError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridConfig {
    /// The verification key, base64 of its DER encoding. Public, so never redacted.
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

const SIGNATURE: &str = "X-Twilio-Email-Event-Webhook-Signature";
const TIMESTAMP: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

impl SendgridConfig {
    fn key(&self) -> Option<VerifyingKey> {
        // PEM armour and line breaks are dropped so a pasted PEM block works as well.
        let base64: String = self
            .public_key
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
            .collect();
        let der = B64.decode(base64).ok()?;
        VerifyingKey::from_public_key_der(&der).ok()
    }
}

impl Scheme for SendgridConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.public_key.trim().is_empty() {
            return Err(ConfigError("public_key must not be empty".to_owned()));
        }
        self.key().ok_or_else(|| {
            ConfigError("public_key must be a base64 DER (or PEM) P-256 public key".to_owned())
        })?;
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let malformed = || VerifyError::SignatureMalformed(SIGNATURE.to_owned());
        let sig_text = header(req, SIGNATURE)?;
        let ts_text = header(req, TIMESTAMP)?;
        let ts = parse_timestamp(ts_text, TIMESTAMP)?;
        let der = B64.decode(sig_text).map_err(|_| malformed())?;
        let signature = Signature::from_der(&der).map_err(|_| malformed())?;
        // validate() rejects unusable keys; an unchecked one verifies nothing.
        let key = self.key().ok_or(VerifyError::SignatureInvalid)?;
        // Hashed in two parts: the body is not copied to prepend the timestamp.
        let digest = Sha256::new()
            .chain_update(ts_text.as_bytes())
            .chain_update(req.body);
        key.verify_digest(digest, &signature)
            .map_err(|_| VerifyError::SignatureInvalid)?;
        check_window_seconds(
            ts,
            req.now,
            self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
        )
    }

    /// The body is a batch (JSON array) of events. Its type is their shared `event`
    /// (`delivered`, `open`…) or `batch` when they differ; a batch of one is identified by its
    /// `sg_event_id`, larger ones by the receiver's body hash.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        let Some(events) = json.and_then(Value::as_array).filter(|e| !e.is_empty()) else {
            return EventMeta::default();
        };
        let first = str_at(events.first(), &["event"]);
        let shared = events.iter().all(|e| str_at(Some(e), &["event"]) == first);
        EventMeta {
            event_type: if shared {
                first
            } else {
                Some("batch".to_owned())
            },
            delivery_id: match events.as_slice() {
                [only] => str_at(Some(only), &["sg_event_id"]),
                _ => None,
            },
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Sendgrid(self.clone())
    }
}

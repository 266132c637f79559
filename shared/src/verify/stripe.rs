//! `stripe`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 over `{t}.{body}`
//! keyed with the whole `whsec_…` string (Stripe does not base64-decode it). Any `v1` passes,
//! which is how Stripe signs during its own secret rolls.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    check_window_seconds, decode_hex, header, hmac_sha256, parse_timestamp, require_match, str_at,
    validate_tolerance, Scheme, DEFAULT_TOLERANCE_SECONDS,
};
use super::mac::Candidates;
use super::{ConfigError, EventMeta, InboundRequest, Secrets, VerifyConfig, VerifyError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// The endpoint's signing secret, `whsec_…` (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

const HEADER: &str = "Stripe-Signature";

impl Scheme for StripeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let malformed = || VerifyError::SignatureMalformed(HEADER.to_owned());
        let value = header(req, HEADER)?;
        let mut timestamp = None;
        let mut signatures = Candidates::new();
        for item in value.split(',') {
            match item.trim().split_once('=') {
                Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
                Some(("v1", sig)) => signatures.extend(decode_hex(sig.as_bytes(), 32)),
                // v0 (test-mode legacy) and future schemes are ignored, as Stripe's libraries do.
                _ => {}
            }
        }
        let t_text = timestamp.ok_or_else(malformed)?;
        let t = parse_timestamp(t_text, HEADER)?;
        if signatures.is_empty() {
            return Err(malformed());
        }
        let parts: [&[u8]; 3] = [t_text.as_bytes(), b".", req.body];
        require_match(&signatures, &self.secret, |key| hmac_sha256(key, &parts))?;
        check_window_seconds(
            t,
            req.now,
            self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
        )
    }

    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: str_at(json, &["type"]),
            delivery_id: str_at(json, &["id"]),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Stripe(StripeConfig {
            secret: self.secret.redacted(),
            tolerance_seconds: self.tolerance_seconds,
        })
    }
}

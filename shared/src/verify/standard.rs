//! `standard-webhooks`: the Standard Webhooks specification, which Svix also sends under
//! `svix-*` header names. `webhook-signature: v1,<base64> [v1,<base64> …]` over
//! `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of the `whsec_` secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

use super::common::{
    check_window_seconds, header, header_text, str_at, timestamp_header, validate_tolerance,
    Scheme, DEFAULT_TOLERANCE_SECONDS,
};
use super::{ConfigError, EventMeta, InboundRequest, Secrets, VerifyConfig, VerifyError};
use crate::signing::{decode_secret, signature_matches};

/// The three headers, under one naming family.
struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK: Names = Names {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

const SVIX: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

pub(crate) struct StandardWebhooks<'a> {
    pub secret: &'a Secrets,
    pub tolerance_seconds: Option<u64>,
}

impl Scheme for StandardWebhooks<'_> {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()?;
        for secret in self.secret.iter() {
            decode_secret(secret.expose())
                .map_err(|_| ConfigError("secret must look like whsec_<base64>".to_owned()))?;
        }
        validate_tolerance(self.tolerance_seconds)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        // The family whose signature header is present decides; Svix only when webhook-* is absent.
        let names = if req.headers.contains_key(WEBHOOK.signature)
            || !req.headers.contains_key(SVIX.signature)
        {
            &WEBHOOK
        } else {
            &SVIX
        };
        let signatures = header(req, names.signature)?;
        let id = header(req, names.id)?;
        let timestamp = timestamp_header(req, names.timestamp)?;
        if !well_formed(signatures) {
            return Err(VerifyError::SignatureMalformed(names.signature.to_owned()));
        }
        // validate() rejects undecodable secrets; a config that skipped it cannot match with them.
        let matched = self
            .secret
            .iter()
            .filter_map(|secret| decode_secret(secret.expose()).ok())
            .any(|key| signature_matches(&key, id, timestamp, req.body, signatures));
        if !matched {
            return Err(VerifyError::SignatureInvalid);
        }
        check_window_seconds(
            timestamp,
            req.now,
            self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
        )
    }

    fn describe(&self, req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: str_at(json, &["type"]),
            delivery_id: header_text(req, WEBHOOK.id).or_else(|| header_text(req, SVIX.id)),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::StandardWebhooks {
            secret: self.secret.redacted(),
            tolerance_seconds: self.tolerance_seconds,
        }
    }
}

/// At least one space-separated `<version>,<signature>` entry, with `v1` entries in base64.
/// Entries of other versions (e.g. asymmetric `v1a`) are well-formed but never match here.
fn well_formed(header: &str) -> bool {
    header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .any(|(version, sig)| match version {
            "v1" => B64.decode(sig).is_ok_and(|raw| !raw.is_empty()),
            _ => !version.is_empty() && !sig.is_empty(),
        })
}

//! `standard-webhooks`: the Standard Webhooks specification, which Svix also sends under
//! `svix-*` header names. `webhook-signature: v1,<base64> [v1,<base64> …]` over
//! `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of the `whsec_` secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::{DecodeSliceError, Engine};
use serde_json::Value;

use super::common::{
    check_window_seconds, header, header_text, str_at, timestamp_header, validate_tolerance,
    Scheme, DEFAULT_TOLERANCE_SECONDS,
};
use super::mac::{hmac_sha256, Candidates, MacBytes};
use super::{ConfigError, EventMeta, InboundRequest, Secrets, VerifyConfig, VerifyError};
use crate::signing::decode_secret;

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
        let candidates = v1_signatures(signatures)
            .ok_or_else(|| VerifyError::SignatureMalformed(names.signature.to_owned()))?;
        // Signed as the parsed number written back in decimal, as `crate::signing` writes it.
        let mut digits = [0; 20];
        let timestamp_text = decimal(timestamp, &mut digits);
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp_text, b".", req.body];
        // validate() rejects undecodable secrets; a config that skipped it cannot match with them.
        let matched = self.secret.iter().any(|secret| {
            with_key(secret.expose(), |key| {
                candidates.contains(&hmac_sha256(key, &parts))
            })
            .unwrap_or(false)
        });
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

/// The header's `v1` signatures that can be HMAC-SHA256 MACs (32 bytes), or `None` when it is
/// malformed: it needs at least one space-separated `<version>,<signature>` entry, with `v1`
/// entries in base64. Entries of other versions (e.g. asymmetric `v1a`) are well-formed but never
/// match here.
fn v1_signatures(header: &str) -> Option<Candidates> {
    let mut well_formed = false;
    let mut found = Candidates::new();
    for (version, sig) in header.split(' ').filter_map(|entry| entry.split_once(',')) {
        if version != "v1" {
            well_formed |= !version.is_empty() && !sig.is_empty();
            continue;
        }
        // A MAC fits on the stack; anything longer is only checked for being base64.
        let mut buf = [0; 48];
        match B64.decode_slice(sig, &mut buf) {
            Ok(len) => {
                well_formed |= len > 0;
                if len == 32 {
                    found.push(MacBytes::from_slice(&buf[..len]));
                }
            }
            Err(DecodeSliceError::OutputSliceTooSmall) => well_formed |= B64.decode(sig).is_ok(),
            Err(DecodeSliceError::DecodeError(_)) => {}
        }
    }
    well_formed.then_some(found)
}

/// Runs `f` with the HMAC key inside a `whsec_…` secret, read as `crate::signing::decode_secret`
/// reads it, but decoded on the stack when it fits; `None` when the secret is not usable.
fn with_key<T>(secret: &str, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let mut buf = [0; 96];
    match B64.decode_slice(encoded, &mut buf) {
        Ok(0) => None,
        Ok(len) => Some(f(&buf[..len])),
        Err(DecodeSliceError::OutputSliceTooSmall) => decode_secret(secret).ok().map(|k| f(&k)),
        Err(DecodeSliceError::DecodeError(_)) => None,
    }
}

/// `n` in decimal exactly as `i64::to_string` writes it, without allocating.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        start -= 1;
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_matches_to_string() {
        for n in [0, 7, -7, 10, 1_614_265_330, -1_000, i64::MAX, i64::MIN] {
            assert_eq!(decimal(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }
}

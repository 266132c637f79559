//! `twilio`: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, URL + params)>`, where URL is
//! the full public URL Twilio called and params are the form fields sorted by name, each name
//! followed by its value. JSON bodies are signed through a `bodySHA256` query parameter
//! instead: the URL alone is signed, and the body must hash to that parameter.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::common::{
    decode_base64, form_as_json, header, header_text, query_param, str_at, Scheme,
};
use super::mac::hmac_fed;
use super::{
    ConfigError, EventMeta, HmacAlgorithm, InboundRequest, Secrets, VerifyConfig, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account's auth token; list the primary and secondary token while rotating
    /// (`secret` or `secrets`).
    #[serde(flatten)]
    pub secret: Secrets,
}

const SIGNATURE: &str = "X-Twilio-Signature";

impl Scheme for TwilioConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.secret.validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let text = header(req, SIGNATURE)?;
        let signature = decode_base64(text.as_bytes(), HmacAlgorithm::Sha1.output_len())
            .ok_or_else(|| VerifyError::SignatureMalformed(SIGNATURE.to_owned()))?;
        // Twilio signs the URL it called; without a configured public base URL there is nothing
        // to check against, and a source config cannot know that, so this is the request's error.
        let Some(url) = req.public_url else {
            tracing::warn!(
                scheme = "twilio",
                "no public base URL is configured, so Twilio signatures cannot be checked"
            );
            return Err(VerifyError::SignatureInvalid);
        };
        let body_sha256 = query_param(url.split_once('?').map(|(_, q)| q), "bodySHA256");
        let params = match body_sha256 {
            Some(_) => Vec::new(),
            None => sorted_params(req.body),
        };
        // Name and value pieces are fed to the MAC as they are, never concatenated.
        let signed_with = |url: &str, key: &[u8]| {
            let mac = hmac_fed(HmacAlgorithm::Sha1, key, |update| {
                update(url.as_bytes());
                for (name, value) in &params {
                    update(name.as_bytes());
                    update(value.as_bytes());
                }
            });
            signature.ct_eq(mac.as_slice())
        };
        let matches = |url: &str| {
            self.secret
                .iter()
                .any(|secret| signed_with(url, secret.expose().as_bytes()))
        };
        // The URL as reported first; its default-port twin (built on the heap) only if that fails.
        if !(matches(url) || url_variants(url)[1..].iter().any(|url| matches(url))) {
            return Err(VerifyError::SignatureInvalid);
        }
        if let Some(hash) = body_sha256 {
            let sent = hex::decode(hash.trim()).map_err(|_| VerifyError::SignatureInvalid)?;
            if !super::constant_time_eq(&sent, &Sha256::digest(req.body)) {
                return Err(VerifyError::SignatureInvalid);
            }
        }
        Ok(())
    }

    /// JSON bodies as they are; form posts (most Twilio webhooks) as an object of their fields.
    fn json_for_typing(&self, req: &InboundRequest<'_>) -> Option<Value> {
        serde_json::from_slice(req.body)
            .ok()
            .or_else(|| form_as_json(req.body))
    }

    /// Twilio's callbacks carry no event name, so the status field makes one: `message.delivered`,
    /// `message.received`, `call.completed`; JSON bodies (Event Streams) use their `type`.
    /// Retries carry the same `I-Twilio-Idempotency-Token`.
    fn describe(&self, req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        let status = |field: &str, kind: &str| {
            str_at(json, &[field]).map(|s| format!("{kind}.{}", s.to_ascii_lowercase()))
        };
        let event_type = status("MessageStatus", "message")
            .or_else(|| status("SmsStatus", "message"))
            .or_else(|| status("CallStatus", "call"))
            .or_else(|| str_at(json, &["type"]));
        EventMeta {
            event_type,
            delivery_id: header_text(req, "I-Twilio-Idempotency-Token"),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Twilio(TwilioConfig {
            secret: self.secret.redacted(),
        })
    }
}

/// Form fields sorted by name (then value, for repeated names), decoded as
/// `form_urlencoded::parse` does. Fields that need no decoding (ASCII without `%` or `+`: nearly
/// all of Twilio's) are borrowed from the body; the rest go through `form_urlencoded` itself.
fn sorted_params(body: &[u8]) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut pairs = Vec::with_capacity(32);
    for field in body.split(|&b| b == b'&').filter(|f| !f.is_empty()) {
        if field
            .iter()
            .all(|&b| b.is_ascii() && b != b'%' && b != b'+')
        {
            // ASCII, so valid UTF-8 at any split point.
            let text = std::str::from_utf8(field).expect("ASCII is UTF-8");
            let (name, value) = text.split_once('=').unwrap_or((text, ""));
            pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
        } else {
            // A field without `&` is exactly one pair.
            pairs.extend(url::form_urlencoded::parse(field));
        }
    }
    // Equal pairs are identical text, so an unstable sort signs the same string.
    pairs.sort_unstable();
    pairs
}

/// The URL as configured, plus the same URL with the default port added or removed: Twilio's
/// own validators accept both, since proxies differ in which form they report.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port follows the host: after any userinfo and after an IPv6 literal's brackets.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_and_port = &authority[host_start..];
    let port_search_from = host_and_port.rfind(']').unwrap_or(0);
    match host_and_port[port_search_from..].rfind(':') {
        Some(i) => {
            let colon = host_start + port_search_from + i;
            if &authority[colon + 1..] == default_port {
                variants.push(format!("{scheme}://{}{tail}", &authority[..colon]));
            }
        }
        None => variants.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::url_variants;

    #[test]
    fn url_variants_add_or_remove_the_default_port() {
        assert_eq!(
            url_variants("https://example.com/sms?x=1"),
            [
                "https://example.com/sms?x=1",
                "https://example.com:443/sms?x=1"
            ]
        );
        assert_eq!(
            url_variants("https://example.com:443/sms"),
            ["https://example.com:443/sms", "https://example.com/sms"]
        );
        assert_eq!(
            url_variants("http://[::1]"),
            ["http://[::1]", "http://[::1]:80"]
        );
        assert_eq!(
            url_variants("https://example.com:8443/a"),
            ["https://example.com:8443/a"]
        );
        assert_eq!(url_variants("not a url"), ["not a url"]);
    }
}

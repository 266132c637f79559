//! What every scheme shares: the [`Scheme`] trait the catalog dispatches to, and small helpers
//! for headers, HMACs, timestamps and JSON fields, so each provider module stays a few lines of
//! provider facts.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ConfigError, EventMeta, HandshakeResponse, HmacAlgorithm, InboundRequest, Secrets,
    SignatureEncoding, VerifyConfig, VerifyError,
};
use crate::secret::Secret;

use super::mac::Candidates;
pub(crate) use super::mac::{decode_base64, decode_hex, hmac, hmac_sha256, require_match};

/// What `redacted()` puts in place of every secret.
pub const REDACTED: &str = "***";

/// Default replay window when a config does not set `tolerance_seconds`.
pub(crate) const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// One authentication scheme. `VerifyConfig` dispatches every public method to one of these.
pub(crate) trait Scheme {
    fn validate(&self) -> Result<(), ConfigError>;

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError>;

    fn get_handshake(
        &self,
        _req: &InboundRequest<'_>,
    ) -> Option<Result<HandshakeResponse, VerifyError>> {
        None
    }

    fn post_handshake(
        &self,
        _req: &InboundRequest<'_>,
        _json: Option<&Value>,
    ) -> Option<HandshakeResponse> {
        None
    }

    /// `json` is already resolved through [`Scheme::json_for_typing`] when the caller had none.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: str_at(json, &["type"]),
            delivery_id: None,
        }
    }

    fn json_for_typing(&self, req: &InboundRequest<'_>) -> Option<Value> {
        serde_json::from_slice(req.body).ok()
    }

    fn credential_headers(&self) -> Vec<String> {
        Vec::new()
    }

    fn redacted(&self) -> VerifyConfig;
}

/// Lets the catalog hand out borrowed configs as schemes.
impl<T: Scheme + ?Sized> Scheme for &T {
    fn validate(&self) -> Result<(), ConfigError> {
        (**self).validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        (**self).verify(req)
    }

    fn get_handshake(
        &self,
        req: &InboundRequest<'_>,
    ) -> Option<Result<HandshakeResponse, VerifyError>> {
        (**self).get_handshake(req)
    }

    fn post_handshake(
        &self,
        req: &InboundRequest<'_>,
        json: Option<&Value>,
    ) -> Option<HandshakeResponse> {
        (**self).post_handshake(req, json)
    }

    fn describe(&self, req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        (**self).describe(req, json)
    }

    fn json_for_typing(&self, req: &InboundRequest<'_>) -> Option<Value> {
        (**self).json_for_typing(req)
    }

    fn credential_headers(&self) -> Vec<String> {
        (**self).credential_headers()
    }

    fn redacted(&self) -> VerifyConfig {
        (**self).redacted()
    }
}

// ---------------------------------------------------------------------------------------------
// Config checks

pub(crate) fn validate_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError(format!("{field} must not be empty")));
    }
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| ConfigError(format!("{field} `{name}` is not a valid header name")))
}

pub(crate) fn validate_secret(field: &str, secret: &Secret) -> Result<(), ConfigError> {
    if secret.expose().is_empty() {
        return Err(ConfigError(format!("{field} must not be empty")));
    }
    // Anyone could sign with the placeholder the admin API shows in place of secrets.
    if secret.expose() == REDACTED {
        return Err(ConfigError(format!(
            "{field} is the redaction placeholder {REDACTED:?}, not a secret"
        )));
    }
    Ok(())
}

pub(crate) fn validate_tolerance(tolerance: Option<u64>) -> Result<(), ConfigError> {
    match tolerance {
        Some(0) => Err(ConfigError(
            "tolerance_seconds must be at least 1".to_owned(),
        )),
        // Beyond a day the window no longer protects against replays in any useful way.
        Some(t) if t > 86_400 => Err(ConfigError(
            "tolerance_seconds must be at most 86400".to_owned(),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn redacted_secret() -> Secret {
    Secret::new(REDACTED)
}

// ---------------------------------------------------------------------------------------------
// Request access

/// A required header as text. Absent or blank → `SignatureMissing`; not visible ASCII →
/// `SignatureMalformed`. `name` is reported as given, so errors read like the provider's docs.
pub(crate) fn header<'a>(req: &InboundRequest<'a>, name: &str) -> Result<&'a str, VerifyError> {
    match optional_header(req, name)? {
        Some(value) => Ok(value),
        None => Err(VerifyError::SignatureMissing(name.to_owned())),
    }
}

// Signature headers are scanned on every request, and this crate is built size-optimised (no
// auto-vectorisation), so the two scans below test eight bytes at a time ("SWAR").

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any byte of `word` is below `n` (`n` ≤ 0x80; exact for "any", per the bithacks
/// `hasless`).
fn any_byte_below(word: u64, n: u8) -> bool {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS != 0
}

fn any_byte_is(word: u64, byte: u8) -> bool {
    any_byte_below(word ^ (ONES * u64::from(byte)), 1)
}

/// Whether `test` holds for some 8-byte word of `value` or for one of its last bytes.
fn any_word(value: &[u8], test: impl Fn(u64) -> bool, byte_test: impl Fn(u8) -> bool) -> bool {
    let mut words = value.chunks_exact(8);
    let hit = words
        .by_ref()
        .any(|w| test(u64::from_ne_bytes(w.try_into().expect("8 bytes"))));
    hit || words.remainder().iter().any(|&b| byte_test(b))
}

/// Whether a header value is what `HeaderValue::to_str` accepts: visible ASCII and tabs.
pub(crate) fn visible_ascii(value: &[u8]) -> bool {
    let visible = |b: u8| (b' '..=b'~').contains(&b) | (b == b'\t');
    // Words with a control byte, DEL or a non-ASCII byte are rare (tabs): checked byte by byte.
    let suspect = |w: u64| w & HIGHS != 0 || any_byte_below(w, b' ') || any_byte_is(w, 0x7F);
    !any_word(value, suspect, |b| !visible(b)) || value.iter().all(|&b| visible(b))
}

/// Whether a signature header value lists several entries (a comma, space or tab).
fn has_separator(value: &[u8]) -> bool {
    let separator = |b: u8| matches!(b, b',' | b' ' | b'\t');
    let any_separator =
        |w: u64| any_byte_is(w, b',') || any_byte_is(w, b' ') || any_byte_is(w, b'\t');
    any_word(value, any_separator, separator)
}

/// Like [`header`], but absence is not an error.
pub(crate) fn optional_header<'a>(
    req: &InboundRequest<'a>,
    name: &str,
) -> Result<Option<&'a str>, VerifyError> {
    let Some(value) = req.headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| VerifyError::SignatureMalformed(name.to_owned()))?
        .trim();
    Ok((!text.is_empty()).then_some(text))
}

/// A header for `describe`: present, visible ASCII and non-blank, or `None`.
pub(crate) fn header_text(req: &InboundRequest<'_>, name: &str) -> Option<String> {
    optional_header(req, name).ok().flatten().map(str::to_owned)
}

/// An integer timestamp header (seconds or milliseconds, as the provider sends it).
pub(crate) fn timestamp_header(req: &InboundRequest<'_>, name: &str) -> Result<i64, VerifyError> {
    parse_timestamp(header(req, name)?, name)
}

pub(crate) fn parse_timestamp(text: &str, name: &str) -> Result<i64, VerifyError> {
    text.parse::<i64>()
        .map_err(|_| VerifyError::SignatureMalformed(name.to_owned()))
}

/// Whether `timestamp` (unix seconds) is within `tolerance` seconds of `now`, either way: a
/// timestamp far in the future is as suspicious as a stale one.
pub(crate) fn check_window_seconds(
    timestamp: i64,
    now: DateTime<Utc>,
    tolerance: u64,
) -> Result<(), VerifyError> {
    let diff = (i128::from(now.timestamp()) - i128::from(timestamp)).unsigned_abs();
    if diff > u128::from(tolerance) {
        return Err(VerifyError::TimestampOutOfRange);
    }
    Ok(())
}

/// Same as [`check_window_seconds`] for millisecond timestamps.
pub(crate) fn check_window_millis(
    timestamp_ms: i64,
    now: DateTime<Utc>,
    tolerance: u64,
) -> Result<(), VerifyError> {
    let diff = (i128::from(now.timestamp_millis()) - i128::from(timestamp_ms)).unsigned_abs();
    if diff > u128::from(tolerance) * 1000 {
        return Err(VerifyError::TimestampOutOfRange);
    }
    Ok(())
}

/// The first value of a query parameter, percent-decoded.
pub(crate) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

// ---------------------------------------------------------------------------------------------
// Crypto

/// How a signature header is written: `<prefix><encoded MAC>`.
#[derive(Clone, Copy)]
pub(crate) struct SignatureFormat<'a> {
    pub header: &'a str,
    pub prefix: Option<&'a str>,
    pub encoding: SignatureEncoding,
    pub algorithm: HmacAlgorithm,
}

impl SignatureFormat<'_> {
    /// Every well-formed signature in the header. The header may repeat, and one value may list
    /// several signatures separated by commas or whitespace (senders rotating keys do that);
    /// entries without the prefix are skipped. Absent → `SignatureMissing`; present but none
    /// well-formed → `SignatureMalformed`.
    pub(crate) fn signatures(&self, req: &InboundRequest<'_>) -> Result<Candidates, VerifyError> {
        let malformed = || VerifyError::SignatureMalformed(self.header.to_owned());
        // `GetAll` is walked twice rather than collected, so nothing is allocated.
        let values = req.headers.get_all(self.header);
        if values
            .iter()
            .all(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
        {
            return Err(VerifyError::SignatureMissing(self.header.to_owned()));
        }
        let len = self.algorithm.output_len();
        let mut found = Candidates::new();
        for value in values {
            let text = value.as_bytes();
            if !visible_ascii(text) {
                return Err(malformed());
            }
            let mut take = |entry: &[u8]| {
                let entry = match self.prefix {
                    Some(prefix) => match entry.strip_prefix(prefix.as_bytes()) {
                        Some(rest) => rest,
                        None => return,
                    },
                    None => entry,
                };
                found.extend(match self.encoding {
                    SignatureEncoding::Hex => decode_hex(entry, len),
                    SignatureEncoding::Base64 => decode_base64(entry, len),
                });
            };
            // Visible ASCII and tabs only, so these are all the separators `char::is_whitespace`
            // would find. Most values hold one signature: one scan finds no separator, and the
            // byte-at-a-time split is skipped.
            if has_separator(text) {
                text.split(|b| matches!(b, b',' | b' ' | b'\t'))
                    .for_each(take);
            } else {
                take(text);
            }
        }
        if found.is_empty() {
            return Err(malformed());
        }
        Ok(found)
    }

    /// Checks the header against the MAC of `parts` under each secret.
    pub(crate) fn verify(
        &self,
        req: &InboundRequest<'_>,
        secrets: &Secrets,
        parts: &[&[u8]],
    ) -> Result<(), VerifyError> {
        let candidates = self.signatures(req)?;
        require_match(&candidates, secrets, |key| hmac(self.algorithm, key, parts))
    }
}

/// Signatures over `{prefix}{timestamp}{separator}{body}`, the timestamp (unix seconds, or
/// milliseconds when `millis`) sent in a header of its own: Slack, Zoom, Bettermode.
pub(crate) struct TimestampedSignature<'a> {
    pub signature: SignatureFormat<'a>,
    pub timestamp_header: &'a str,
    pub prefix: &'a [u8],
    pub separator: &'a [u8],
    pub millis: bool,
}

impl TimestampedSignature<'_> {
    /// The signature is checked before the window, so a stale but genuine request reports
    /// `timestamp_out_of_range` and a forged one `signature_invalid`.
    pub(crate) fn verify(
        &self,
        req: &InboundRequest<'_>,
        secrets: &Secrets,
        tolerance_seconds: Option<u64>,
    ) -> Result<(), VerifyError> {
        let candidates = self.signature.signatures(req)?;
        let ts_text = header(req, self.timestamp_header)?;
        let ts = parse_timestamp(ts_text, self.timestamp_header)?;
        let parts: [&[u8]; 4] = [self.prefix, ts_text.as_bytes(), self.separator, req.body];
        require_match(&candidates, secrets, |key| {
            hmac(self.signature.algorithm, key, &parts)
        })?;
        let tolerance = tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
        if self.millis {
            check_window_millis(ts, req.now, tolerance)
        } else {
            check_window_seconds(ts, req.now, tolerance)
        }
    }
}

/// The hex HMAC-SHA256 format most providers use.
pub(crate) const fn hex_sha256<'a>(
    header: &'a str,
    prefix: Option<&'a str>,
) -> SignatureFormat<'a> {
    SignatureFormat {
        header,
        prefix,
        encoding: SignatureEncoding::Hex,
        algorithm: HmacAlgorithm::Sha256,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// The value at a path of object keys.
pub(crate) fn value_at<'a>(json: Option<&'a Value>, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(json?, |v, key| v.get(*key))
}

/// A non-empty string (or a number, for numeric ids) at a path.
pub(crate) fn str_at(json: Option<&Value>, path: &[&str]) -> Option<String> {
    match value_at(json, path)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The body parsed as JSON, else the JSON in the `payload` field of a form-encoded body (how
/// GitHub and Slack interactivity post JSON as `application/x-www-form-urlencoded`).
pub(crate) fn json_or_form_payload(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok().or_else(|| {
        let (_, payload) = url::form_urlencoded::parse(body).find(|(k, _)| k == "payload")?;
        serde_json::from_str(&payload).ok()
    })
}

/// A form-encoded body as a JSON object of strings (the first value of a repeated key wins).
pub(crate) fn form_as_json(body: &[u8]) -> Option<Value> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        map.entry(k.into_owned())
            .or_insert_with(|| Value::String(v.into_owned()));
    }
    (!map.is_empty()).then_some(Value::Object(map))
}

/// Whether the request says its body is form-encoded.
pub(crate) fn is_form(req: &InboundRequest<'_>) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// `a.b` from two fields, or just `a` when `b` is absent.
pub(crate) fn dotted(first: Option<String>, second: Option<String>) -> Option<String> {
    match (first, second) {
        (Some(a), Some(b)) => Some(format!("{a}.{b}")),
        (a, _) => a,
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake answers

pub(crate) fn json_response(status: u16, body: &Value) -> HandshakeResponse {
    HandshakeResponse {
        status,
        content_type: "application/json".to_owned(),
        headers: Vec::new(),
        body: serde_json::to_vec(body)
            .expect("JSON values always serialise")
            .into(),
    }
}

pub(crate) fn text_response(status: u16, body: String) -> HandshakeResponse {
    HandshakeResponse {
        status,
        content_type: "text/plain; charset=utf-8".to_owned(),
        headers: Vec::new(),
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{has_separator, visible_ascii};

    #[test]
    fn header_scans_agree_with_byte_by_byte() {
        let visible = |v: &[u8]| v.iter().all(|&b| (b' '..=b'~').contains(&b) || b == b'\t');
        let separator = |v: &[u8]| v.iter().any(|&b| matches!(b, b',' | b' ' | b'\t'));
        for len in 0..40 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut value = vec![b'a'; len];
                    value[at] = byte;
                    assert_eq!(visible_ascii(&value), visible(&value), "{value:?}");
                    assert_eq!(has_separator(&value), separator(&value), "{value:?}");
                }
            }
        }
    }
}

//! Verification tests: one file per scheme, sharing the request builder and fixtures below.
//! Times are fixed (`now()`), never read from the clock.

use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::Sha256;

use super::*;

mod bettermode;
mod catalog;
mod config;
mod dropbox;
mod generic;
mod github;
mod intercom;
mod linear;
mod meta;
mod seeds;
mod sendgrid;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod twilio;
mod zoom;

/// A request owned by the test, lent out as an [`InboundRequest`].
pub(super) struct TestRequest {
    method: Method,
    headers: HeaderMap,
    query: Option<String>,
    body: Vec<u8>,
    public_url: Option<String>,
    now: DateTime<Utc>,
}

impl TestRequest {
    pub(super) fn post(body: impl AsRef<[u8]>) -> Self {
        Self {
            method: Method::POST,
            headers: HeaderMap::new(),
            query: None,
            body: body.as_ref().to_vec(),
            public_url: None,
            now: now(),
        }
    }

    pub(super) fn get(query: &str) -> Self {
        Self {
            method: Method::GET,
            query: Some(query.to_owned()),
            ..Self::post("")
        }
    }

    /// Appends a header (a second call with the same name adds a second value).
    pub(super) fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_ref()).unwrap(),
        );
        self
    }

    pub(super) fn without(mut self, name: &str) -> Self {
        self.headers.remove(name);
        self
    }

    pub(super) fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    pub(super) fn url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    pub(super) fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    pub(super) fn req(&self) -> InboundRequest<'_> {
        InboundRequest {
            method: &self.method,
            headers: &self.headers,
            query: self.query.as_deref(),
            body: &self.body,
            public_url: self.public_url.as_deref(),
            now: self.now,
        }
    }

    pub(super) fn verify(&self, config: &VerifyConfig) -> Result<(), VerifyError> {
        config.verify(&self.req())
    }
}

/// The fixed "current time" of every test: 2026-03-02T12:00:00Z.
pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
}

pub(super) fn ts() -> i64 {
    now().timestamp()
}

/// A JSON body of about 50 KB mixing scripts, emoji and escapes, so any re-encoding of the
/// body (lossy UTF-8, JSON normalisation) would break its signature.
pub(super) fn unicode_body() -> Vec<u8> {
    let chunk = "Grüße, 世界! Привет — 🚀🎉 «ünïcødé» \\u00e9 \"quoted\" ";
    let text = chunk.repeat(50_000 / chunk.len() + 1);
    let body = format!(
        "{{\"type\":\"big.event\",\"id\":\"evt_big\",\"text\":\"{}\"}}",
        text.replace('"', "'")
    );
    assert!(body.len() >= 50_000);
    body.into_bytes()
}

/// The body with one byte changed.
pub(super) fn tamper(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let i = out.len() / 2;
    out[i] ^= 0x01;
    out
}

/// HMAC-SHA256 as hex, computed independently of the module under test.
pub(super) fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

pub(super) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) fn hmac_sha256_b64(key: &[u8], msg: &[u8]) -> String {
    b64(&hex::decode(hmac_sha256_hex(key, msg)).unwrap())
}

pub(super) fn config(json: &str) -> VerifyConfig {
    let config: VerifyConfig = serde_json::from_str(json).unwrap();
    config.validate().unwrap();
    config
}

pub(super) fn missing(header: &str) -> Result<(), VerifyError> {
    Err(VerifyError::SignatureMissing(header.to_owned()))
}

pub(super) fn malformed(header: &str) -> Result<(), VerifyError> {
    Err(VerifyError::SignatureMalformed(header.to_owned()))
}

pub(super) const INVALID: Result<(), VerifyError> = Err(VerifyError::SignatureInvalid);
pub(super) const OUT_OF_RANGE: Result<(), VerifyError> = Err(VerifyError::TimestampOutOfRange);

/// Signs `body` with `secret` the provider's way, at `now()`, independently of the module
/// under test.
pub(super) type Sign<'a> = &'a dyn Fn(&str, &[u8]) -> TestRequest;

/// The checks every HMAC provider shares: valid, one byte tampered, wrong secret, rotation
/// through `secrets` (any listed one passes) and a ~50 KB unicode body byte for byte.
/// `fields` are the config's JSON fields besides the secret, e.g. `"scheme":"github"`.
pub(super) fn hmac_battery(fields: &str, body: &[u8], big_body: &[u8], sign: Sign<'_>) {
    let one = config(&format!(r#"{{{fields},"secret":"right-secret"}}"#));
    assert_eq!(sign("right-secret", body).verify(&one), Ok(()), "valid");
    assert_eq!(
        sign("right-secret", body).body(tamper(body)).verify(&one),
        INVALID,
        "tampered"
    );
    assert_eq!(
        sign("wrong-secret", body).verify(&one),
        INVALID,
        "wrong secret"
    );

    let rotating = config(&format!(
        r#"{{{fields},"secrets":["right-secret","old-secret"]}}"#
    ));
    assert_eq!(
        sign("right-secret", body).verify(&rotating),
        Ok(()),
        "new secret"
    );
    assert_eq!(
        sign("old-secret", body).verify(&rotating),
        Ok(()),
        "old secret"
    );
    assert_eq!(
        sign("other-secret", body).verify(&rotating),
        INVALID,
        "unlisted secret"
    );

    assert_eq!(
        sign("right-secret", big_body).verify(&one),
        Ok(()),
        "big body"
    );
    assert_eq!(
        sign("right-secret", big_body)
            .body(tamper(big_body))
            .verify(&one),
        INVALID,
        "big body tampered"
    );
}

pub(super) fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// Replaces one header's value.
pub(super) fn with_header(r: TestRequest, name: &str, value: impl AsRef<[u8]>) -> TestRequest {
    r.without(name).header(name, value)
}

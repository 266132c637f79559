//! Generic schemes for providers without a catalog entry: `none`, `token`, `basic` and `hmac`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::common::{
    check_window_millis, check_window_seconds, header, parse_timestamp, redacted_secret,
    require_match, validate_header_name, validate_secret, validate_tolerance, Scheme,
    SignatureFormat, DEFAULT_TOLERANCE_SECONDS,
};
use super::mac::hmac_fed;
use super::{ConfigError, InboundRequest, Secrets, VerifyConfig, VerifyError};
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha256,
    Sha1,
    Sha512,
}

impl HmacAlgorithm {
    /// Length of the MAC in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha1 => 20,
            HmacAlgorithm::Sha512 => 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// `hmac`: an HMAC of the raw body (optionally with a signed timestamp) in a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: SignatureEncoding,
    /// Text before the signature in the header, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `secret` or `secrets` in JSON.
    #[serde(flatten)]
    pub secret: Secrets,
    /// Header carrying a unix timestamp that is signed along with the body. Seconds, or
    /// milliseconds when the value is 10^12 or more (no plausible date in seconds is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// The signed content, with `{body}` and `{timestamp}` placeholders. Defaults to `{body}`,
    /// or `{timestamp}.{body}` when `timestamp_header` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Accepted clock difference for `timestamp_header`, both ways (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u64>,
}

/// `none`: every request is accepted.
pub(crate) struct NoAuth;

impl Scheme for NoAuth {
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    fn verify(&self, _req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        Ok(())
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::None
    }
}

/// `token`: a static shared value in a header, compared in constant time.
pub(crate) struct Token<'a> {
    pub header: &'a str,
    pub value: &'a Secret,
}

impl Scheme for Token<'_> {
    fn validate(&self) -> Result<(), ConfigError> {
        validate_header_name("header", self.header)?;
        validate_secret("value", self.value)?;
        // A token that cannot travel in a header can never match.
        http::HeaderValue::from_str(self.value.expose())
            .map(|_| ())
            .map_err(|_| ConfigError("value cannot be sent as a header value".to_owned()))
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        // Raw bytes: a token has no format, so anything present is the token or not, never
        // malformed.
        let sent = req
            .headers
            .get(self.header)
            .filter(|v| !v.as_bytes().is_empty())
            .ok_or_else(|| VerifyError::SignatureMissing(self.header.to_owned()))?;
        if super::constant_time_eq(sent.as_bytes(), self.value.expose().as_bytes()) {
            Ok(())
        } else {
            Err(VerifyError::SignatureInvalid)
        }
    }

    fn credential_headers(&self) -> Vec<String> {
        vec![self.header.to_ascii_lowercase()]
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Token {
            header: self.header.to_owned(),
            value: redacted_secret(),
        }
    }
}

/// `basic`: `Authorization: Basic base64(username:password)` (RFC 7617).
pub(crate) struct Basic<'a> {
    pub username: &'a str,
    pub password: &'a Secret,
}

const AUTHORIZATION: &str = "Authorization";

impl Scheme for Basic<'_> {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.username.is_empty() {
            return Err(ConfigError("username must not be empty".to_owned()));
        }
        // RFC 7617: the user-id ends at the first colon, so it cannot contain one.
        if self.username.contains(':') {
            return Err(ConfigError("username must not contain `:`".to_owned()));
        }
        validate_secret("password", self.password)
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let malformed = || VerifyError::SignatureMalformed(AUTHORIZATION.to_owned());
        let value = header(req, AUTHORIZATION)?;
        let (kind, encoded) = value.split_once(' ').ok_or_else(malformed)?;
        if !kind.eq_ignore_ascii_case("basic") {
            return Err(malformed());
        }
        let decoded = B64.decode(encoded.trim()).map_err(|_| malformed())?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(malformed)?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both compared, always, so timing does not tell which one was wrong.
        let user_ok = super::constant_time_eq(user, self.username.as_bytes());
        let password_ok = super::constant_time_eq(password, self.password.expose().as_bytes());
        if user_ok & password_ok {
            Ok(())
        } else {
            Err(VerifyError::SignatureInvalid)
        }
    }

    fn credential_headers(&self) -> Vec<String> {
        vec!["authorization".to_owned()]
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Basic {
            username: self.username.to_owned(),
            password: redacted_secret(),
        }
    }
}

/// One piece of an `hmac` template.
enum Part<'a> {
    Text(&'a str),
    Timestamp,
    Body,
}

/// Calls `each` with the template's pieces in order. Walked again per request rather than
/// stored, so a request allocates nothing for it.
fn walk_template<'t>(template: &'t str, mut each: impl FnMut(Part<'t>)) -> Result<(), ConfigError> {
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if open > 0 {
            each(Part::Text(&rest[..open]));
        }
        let close = rest[open..]
            .find('}')
            .filter(|_| rest[open..].starts_with('{'))
            .ok_or_else(|| ConfigError("template has an unmatched brace".to_owned()))?
            + open;
        each(match &rest[open + 1..close] {
            "body" => Part::Body,
            "timestamp" => Part::Timestamp,
            other => {
                return Err(ConfigError(format!(
                    "template placeholder {{{other}}} is unknown (use {{body}} and {{timestamp}})"
                )))
            }
        });
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        each(Part::Text(rest));
    }
    Ok(())
}

impl HmacConfig {
    fn format(&self) -> SignatureFormat<'_> {
        SignatureFormat {
            header: &self.header,
            prefix: self.prefix.as_deref(),
            encoding: self.encoding,
            algorithm: self.algorithm,
        }
    }

    fn template(&self) -> &str {
        match (&self.template, &self.timestamp_header) {
            (Some(template), _) => template,
            (None, Some(_)) => "{timestamp}.{body}",
            (None, None) => "{body}",
        }
    }
}

impl Scheme for HmacConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        validate_header_name("header", &self.header)?;
        self.secret.validate()?;
        if let Some(prefix) = &self.prefix {
            // Several signatures are split on commas and whitespace, so a prefix cannot hold them.
            if prefix.contains(|c: char| c == ',' || c.is_whitespace()) {
                return Err(ConfigError(
                    "prefix must not contain commas or whitespace".to_owned(),
                ));
            }
        }
        if let Some(name) = &self.timestamp_header {
            validate_header_name("timestamp_header", name)?;
        }
        validate_tolerance(self.tolerance_seconds)?;
        let mut parts = Vec::new();
        walk_template(self.template(), |part| parts.push(part))?;
        if parts.iter().filter(|p| matches!(p, Part::Body)).count() != 1 {
            return Err(ConfigError("template must contain {body} once".to_owned()));
        }
        let signs_timestamp = parts.iter().any(|p| matches!(p, Part::Timestamp));
        match (signs_timestamp, self.timestamp_header.is_some()) {
            (true, false) => Err(ConfigError(
                "template uses {timestamp} but timestamp_header is not set".to_owned(),
            )),
            // An unsigned timestamp could be rewritten by anyone replaying the request.
            (false, true) => Err(ConfigError(
                "timestamp_header is set but the template does not sign {timestamp}".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        let candidates = self.format().signatures(req)?;
        let timestamp = match &self.timestamp_header {
            Some(name) => {
                let text = header(req, name)?;
                Some((text, parse_timestamp(text, name)?))
            }
            None => None,
        };
        let template = self.template();
        // validate() guarantees a well-formed template; an unchecked bad one matches nothing.
        walk_template(template, |_| {}).map_err(|_| VerifyError::SignatureInvalid)?;
        require_match(&candidates, &self.secret, |key| {
            hmac_fed(self.algorithm, key, |update| {
                // Well-formed (checked just above), so this walk cannot fail.
                let _ = walk_template(template, |part| {
                    update(match part {
                        Part::Text(text) => text.as_bytes(),
                        Part::Body => req.body,
                        Part::Timestamp => timestamp.map_or(&b""[..], |(text, _)| text.as_bytes()),
                    })
                });
            })
        })?;
        match timestamp {
            Some((_, value)) => {
                let tolerance = self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
                if value >= 1_000_000_000_000 {
                    check_window_millis(value, req.now, tolerance)
                } else {
                    check_window_seconds(value, req.now, tolerance)
                }
            }
            None => Ok(()),
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Hmac(HmacConfig {
            secret: self.secret.redacted(),
            ..self.clone()
        })
    }
}

//! Inbound verification: how each source's provider authenticates its requests, the handshakes
//! some providers send before they deliver, and how their events are named and identified.
//!
//! A source's `verify` config is a [`VerifyConfig`], tagged by `scheme`. Everything
//! provider-specific lives in this module; the receiver only calls the methods below.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};

pub use crate::secret::constant_time_eq;
use crate::secret::Secret;

mod bettermode;
mod catalog;
mod common;
mod dropbox;
mod generic;
mod github;
mod intercom;
mod linear;
mod mac;
mod meta;
mod placeholder;
mod secrets;
mod seeds;
mod sendgrid;
mod shopify;
mod slack;
mod standard;
mod stripe;
#[cfg(test)]
mod tests;
mod twilio;
mod zoom;

use common::Scheme;
pub use common::REDACTED;

pub use bettermode::BettermodeConfig;
pub use catalog::{scheme_info, SchemeInfo, CATALOG};
pub use dropbox::DropboxConfig;
pub use generic::{HmacAlgorithm, HmacConfig, SignatureEncoding};
pub use github::GithubConfig;
pub use intercom::IntercomConfig;
pub use linear::LinearConfig;
pub use meta::MetaConfig;
pub use placeholder::resolve_placeholders;
pub use secrets::Secrets;
pub use seeds::{FeatureosConfig, OutverseConfig, SimpleAuth, SpikaConfig, SPIKA_HEADER};
pub use sendgrid::SendgridConfig;
pub use shopify::ShopifyConfig;
pub use slack::SlackConfig;
pub use stripe::StripeConfig;
pub use twilio::TwilioConfig;
pub use zoom::ZoomConfig;

/// How a source's requests are authenticated: a named provider from the catalog (see
/// [`CATALOG`] and `README.md` beside this file) or a generic scheme. HMAC schemes take
/// `secret` or `secrets` (a list, for rotation) through [`Secrets`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VerifyConfig {
    /// No authentication at all; must be chosen explicitly.
    None,
    /// A static shared token in a header, compared in constant time.
    Token {
        header: String,
        value: Secret,
    },
    /// `Authorization: Basic`, compared in constant time.
    Basic {
        username: String,
        password: Secret,
    },
    /// HMAC of the raw body (and optionally a timestamp) in a header.
    Hmac(HmacConfig),
    /// Standard Webhooks (and Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks {
        /// `whsec_…` (`secret` or `secrets`).
        #[serde(flatten)]
        secret: Secrets,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance_seconds: Option<u64>,
    },
    Github(GithubConfig),
    Stripe(StripeConfig),
    Slack(SlackConfig),
    Shopify(ShopifyConfig),
    Bettermode(BettermodeConfig),
    Intercom(IntercomConfig),
    Twilio(TwilioConfig),
    Zoom(ZoomConfig),
    Linear(LinearConfig),
    Sendgrid(SendgridConfig),
    Meta(MetaConfig),
    Dropbox(DropboxConfig),
    Spika(SpikaConfig),
    Outverse(OutverseConfig),
    Featureos(FeatureosConfig),
}

/// The request as received, everything verification may need. Its `Debug` shows header names,
/// the body length and the URL without its query only: headers and query strings (Meta's verify
/// token) carry credentials.
#[derive(Clone, Copy)]
pub struct InboundRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The raw body bytes exactly as received.
    pub body: &'a [u8],
    /// The full public URL the provider called (public base URL + path + query), for schemes
    /// that sign it (Twilio). `None` when no public base URL is configured.
    pub public_url: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for InboundRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundRequest")
            .field("method", self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("query", &self.query.map(|_| "…"))
            .field("body_len", &self.body.len())
            .field(
                "public_url",
                &self
                    .public_url
                    .map(|url| url.split('?').next().unwrap_or(url)),
            )
            .field("now", &self.now)
            .finish()
    }
}

/// Why a request was rejected. Each maps to a stable error code in the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    SignatureMissing(String),
    #[error("the {0} header is malformed")]
    SignatureMalformed(String),
    #[error("the signature does not match")]
    SignatureInvalid,
    #[error("the request timestamp is outside the accepted window")]
    TimestampOutOfRange,
    #[error("the handshake token does not match")]
    HandshakeForbidden,
    /// The source's config names no authentication (an `outverse`/`featureos` config stored
    /// before `auth` was required): nothing is accepted until it does.
    #[error("this source has no authentication configured")]
    AuthNotConfigured,
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::SignatureMissing(_) => "signature_missing",
            VerifyError::SignatureMalformed(_) => "signature_malformed",
            VerifyError::SignatureInvalid => "signature_invalid",
            VerifyError::TimestampOutOfRange => "timestamp_out_of_range",
            VerifyError::HandshakeForbidden => "handshake_forbidden",
            VerifyError::AuthNotConfigured => "auth_not_configured",
        }
    }

    /// 401 for every failed signature check, 403 for a refused handshake token.
    pub fn http_status(&self) -> u16 {
        match self {
            VerifyError::HandshakeForbidden => 403,
            _ => 401,
        }
    }
}

/// A source config that cannot work (bad secret format, empty header name…).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// An answer the receiver sends back synchronously instead of storing an event.
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeResponse {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What the provider says about an event: its type and its own delivery id, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventMeta {
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
}

impl VerifyConfig {
    /// Runs `f` with the scheme implementation behind this config (borrowed views for the
    /// struct variants). Lent on the stack rather than boxed: `verify` runs on every request.
    fn with_scheme<T>(&self, f: impl FnOnce(&dyn Scheme) -> T) -> T {
        match self {
            VerifyConfig::None => f(&generic::NoAuth),
            VerifyConfig::Token { header, value } => f(&generic::Token { header, value }),
            VerifyConfig::Basic { username, password } => f(&generic::Basic { username, password }),
            VerifyConfig::Hmac(config) => f(config),
            VerifyConfig::StandardWebhooks {
                secret,
                tolerance_seconds,
            } => f(&standard::StandardWebhooks {
                secret,
                tolerance_seconds: *tolerance_seconds,
            }),
            VerifyConfig::Github(config) => f(config),
            VerifyConfig::Stripe(config) => f(config),
            VerifyConfig::Slack(config) => f(config),
            VerifyConfig::Shopify(config) => f(config),
            VerifyConfig::Bettermode(config) => f(config),
            VerifyConfig::Intercom(config) => f(config),
            VerifyConfig::Twilio(config) => f(config),
            VerifyConfig::Zoom(config) => f(config),
            VerifyConfig::Linear(config) => f(config),
            VerifyConfig::Sendgrid(config) => f(config),
            VerifyConfig::Meta(config) => f(config),
            VerifyConfig::Dropbox(config) => f(config),
            VerifyConfig::Spika(config) => f(config),
            VerifyConfig::Outverse(config) => f(config),
            VerifyConfig::Featureos(config) => f(config),
        }
    }

    /// The `scheme` tag, e.g. `github` or `standard-webhooks` (for logs and metrics).
    pub fn scheme_name(&self) -> &'static str {
        match self {
            VerifyConfig::None => "none",
            VerifyConfig::Token { .. } => "token",
            VerifyConfig::Basic { .. } => "basic",
            VerifyConfig::Hmac(_) => "hmac",
            VerifyConfig::StandardWebhooks { .. } => "standard-webhooks",
            VerifyConfig::Github(_) => "github",
            VerifyConfig::Stripe(_) => "stripe",
            VerifyConfig::Slack(_) => "slack",
            VerifyConfig::Shopify(_) => "shopify",
            VerifyConfig::Bettermode(_) => "bettermode",
            VerifyConfig::Intercom(_) => "intercom",
            VerifyConfig::Twilio(_) => "twilio",
            VerifyConfig::Zoom(_) => "zoom",
            VerifyConfig::Linear(_) => "linear",
            VerifyConfig::Sendgrid(_) => "sendgrid",
            VerifyConfig::Meta(_) => "meta",
            VerifyConfig::Dropbox(_) => "dropbox",
            VerifyConfig::Spika(_) => "spika",
            VerifyConfig::Outverse(_) => "outverse",
            VerifyConfig::Featureos(_) => "featureos",
        }
    }

    /// Runs `f` with the body as JSON: the caller's parse when given, else the scheme's own
    /// (form `payload=` fields and the like).
    fn with_json<T>(
        &self,
        req: &InboundRequest<'_>,
        json: Option<&serde_json::Value>,
        f: impl FnOnce(&dyn Scheme, Option<&serde_json::Value>) -> T,
    ) -> T {
        self.with_scheme(|scheme| match json {
            Some(json) => f(scheme, Some(json)),
            None => f(scheme, scheme.json_for_typing(req).as_ref()),
        })
    }

    /// Checks the config when a source is created or changed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.with_scheme(|scheme| scheme.validate())
    }

    /// Answers a `GET` handshake, if this scheme has one. `None` means GET is not allowed (405).
    pub fn get_handshake(
        &self,
        req: &InboundRequest<'_>,
    ) -> Option<Result<HandshakeResponse, VerifyError>> {
        self.with_scheme(|scheme| scheme.get_handshake(req))
    }

    /// Authenticates a POST, over the raw body bytes.
    pub fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        self.with_scheme(|scheme| scheme.verify(req))
    }

    /// After a successful `verify`: a handshake carried in a POST body (e.g. a challenge) that
    /// must be answered instead of stored. `json` is the parsed body when it is JSON.
    pub fn post_handshake(
        &self,
        req: &InboundRequest<'_>,
        json: Option<&serde_json::Value>,
    ) -> Option<HandshakeResponse> {
        self.with_json(req, json, |scheme, json| scheme.post_handshake(req, json))
    }

    /// Event type and provider delivery id. The receiver falls back to the body's `type`, then
    /// `unknown`, and to a body hash for deduplication. When `json` is `None` the body is parsed
    /// here the scheme's way (see [`VerifyConfig::json_for_typing`]).
    pub fn describe(
        &self,
        req: &InboundRequest<'_>,
        json: Option<&serde_json::Value>,
    ) -> EventMeta {
        self.with_json(req, json, |scheme, json| scheme.describe(req, json))
    }

    /// The body as JSON the way this scheme's provider sends it: plain JSON for most, the
    /// `payload=` field of a form-encoded body for GitHub and Slack interactivity, the form fields
    /// as an object for Twilio and Slack commands. The receiver can call this instead of parsing
    /// the body itself, e.g. for filtering; `None` when the body carries no JSON. `describe` and
    /// `post_handshake` fall back to it when given no JSON.
    pub fn json_for_typing(&self, req: &InboundRequest<'_>) -> Option<serde_json::Value> {
        self.with_scheme(|scheme| scheme.json_for_typing(req))
    }

    /// Header names (lowercase) that carry credentials and must not be stored with the event.
    pub fn credential_headers(&self) -> Vec<String> {
        self.with_scheme(|scheme| scheme.credential_headers())
    }

    /// A copy safe to show through the admin API: every secret replaced by `***`.
    pub fn redacted(&self) -> VerifyConfig {
        self.with_scheme(|scheme| scheme.redacted())
    }
}

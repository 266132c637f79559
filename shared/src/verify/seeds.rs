//! Providers that do not sign their webhooks, named so their events are typed properly:
//! `spika` (a static token), `outverse` and `featureos` (whatever the source puts in front of
//! them, as a nested generic `auth`).
//!
//! `{"scheme":"outverse","auth":{"scheme":"token","header":"X-Outverse-Token","value":"…"}}`;
//! `auth` is one of `none`, `token`, `basic` or `hmac` (same fields as the generic schemes) and is
//! required: these providers send no credentials of their own, so accepting anything must be
//! written out (`"auth":{"scheme":"none"}`), never the silent default. A stored config without
//! `auth` (written before it was required) rejects every request.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{dotted, redacted_secret, str_at, Scheme};
use super::generic::{Basic, NoAuth, Token};
use super::{ConfigError, EventMeta, HmacConfig, InboundRequest, VerifyConfig, VerifyError};
use crate::secret::Secret;

/// How a provider without its own signature is authenticated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SimpleAuth {
    None,
    Token { header: String, value: Secret },
    Basic { username: String, password: Secret },
    Hmac(HmacConfig),
}

impl SimpleAuth {
    /// Runs `f` with the scheme behind this auth, lent on the stack (no box per request).
    fn with_scheme<T>(&self, f: impl FnOnce(&dyn Scheme) -> T) -> T {
        match self {
            SimpleAuth::None => f(&NoAuth),
            SimpleAuth::Token { header, value } => f(&Token { header, value }),
            SimpleAuth::Basic { username, password } => f(&Basic { username, password }),
            SimpleAuth::Hmac(config) => f(config),
        }
    }

    fn redacted(&self) -> SimpleAuth {
        match self {
            SimpleAuth::None => SimpleAuth::None,
            SimpleAuth::Token { header, .. } => SimpleAuth::Token {
                header: header.clone(),
                value: redacted_secret(),
            },
            SimpleAuth::Basic { username, .. } => SimpleAuth::Basic {
                username: username.clone(),
                password: redacted_secret(),
            },
            SimpleAuth::Hmac(config) => SimpleAuth::Hmac(HmacConfig {
                secret: config.secret.redacted(),
                ..config.clone()
            }),
        }
    }
}

/// Lends an optional nested auth out as a scheme (`None` → [`Unconfigured`]).
fn with_auth<T>(auth: &Option<SimpleAuth>, f: impl FnOnce(&dyn Scheme) -> T) -> T {
    match auth {
        Some(auth) => auth.with_scheme(f),
        None => f(&Unconfigured),
    }
}

/// A missing `auth`: refused when a config is written, and every request refused when read.
struct Unconfigured;

impl Scheme for Unconfigured {
    fn validate(&self) -> Result<(), ConfigError> {
        Err(ConfigError(
            "auth is required: one of {\"scheme\":\"token\",\"header\",\"value\"}, \
             {\"scheme\":\"basic\",\"username\",\"password\"}, {\"scheme\":\"hmac\",…} or, to \
             accept unauthenticated requests, {\"scheme\":\"none\"}"
                .to_owned(),
        ))
    }

    fn verify(&self, _req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        Err(VerifyError::AuthNotConfigured)
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::None
    }
}

/// Spika's `Verification-Signature` header: a static token, not a signature.
pub const SPIKA_HEADER: &str = "Verification-Signature";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikaConfig {
    /// Defaults to `Verification-Signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The webhook's verification signature, shown by Spika when the webhook is created.
    pub value: Secret,
}

impl SpikaConfig {
    fn token(&self) -> Token<'_> {
        Token {
            header: self.header.as_deref().unwrap_or(SPIKA_HEADER),
            value: &self.value,
        }
    }
}

impl Scheme for SpikaConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.token().validate()
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        self.token().verify(req)
    }

    fn credential_headers(&self) -> Vec<String> {
        self.token().credential_headers()
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Spika(SpikaConfig {
            header: self.header.clone(),
            value: redacted_secret(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutverseConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SimpleAuth>,
}

impl Scheme for OutverseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        with_auth(&self.auth, |scheme| scheme.validate())
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        with_auth(&self.auth, |scheme| scheme.verify(req))
    }

    fn credential_headers(&self) -> Vec<String> {
        with_auth(&self.auth, |scheme| scheme.credential_headers())
    }

    /// `thread.created`, `reply.updated`…: `type` + `.` + `action`.
    fn describe(&self, _req: &InboundRequest<'_>, json: Option<&Value>) -> EventMeta {
        EventMeta {
            event_type: dotted(str_at(json, &["type"]), str_at(json, &["action"])),
            delivery_id: None,
        }
    }

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Outverse(OutverseConfig {
            auth: self.auth.as_ref().map(SimpleAuth::redacted),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureosConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SimpleAuth>,
}

impl Scheme for FeatureosConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        with_auth(&self.auth, |scheme| scheme.validate())
    }

    fn verify(&self, req: &InboundRequest<'_>) -> Result<(), VerifyError> {
        with_auth(&self.auth, |scheme| scheme.verify(req))
    }

    fn credential_headers(&self) -> Vec<String> {
        with_auth(&self.auth, |scheme| scheme.credential_headers())
    }

    // describe: the default, the body's `type` (`postCompleted`…), with no delivery id.

    fn redacted(&self) -> VerifyConfig {
        VerifyConfig::Featureos(FeatureosConfig {
            auth: self.auth.as_ref().map(SimpleAuth::redacted),
        })
    }
}

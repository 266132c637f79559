//! [`Secrets`]: one signing secret, or several while a provider's secret is being rotated.

use serde::{Deserialize, Serialize};

use super::common::REDACTED;
use super::ConfigError;
use crate::secret::Secret;

/// The signing secret(s) of an HMAC scheme. Flattened into each config, so a source says either
/// `"secret": "…"` or `"secrets": ["new…", "old…"]`; a request signed with any of them passes.
/// The form used is kept, so configs round-trip unchanged. Where a scheme must sign something
/// itself (Zoom's URL validation), the first secret is the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SecretsRepr", into = "SecretsRepr")]
pub enum Secrets {
    One(Secret),
    Many(Vec<Secret>),
}

/// The two JSON spellings. Exactly one must be present.
#[derive(Serialize, Deserialize)]
struct SecretsRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secrets: Option<Vec<Secret>>,
}

impl TryFrom<SecretsRepr> for Secrets {
    type Error = String;

    fn try_from(repr: SecretsRepr) -> Result<Self, Self::Error> {
        match (repr.secret, repr.secrets) {
            (Some(one), None) => Ok(Secrets::One(one)),
            (None, Some(many)) => Ok(Secrets::Many(many)),
            (Some(_), Some(_)) => Err("give either `secret` or `secrets`, not both".to_owned()),
            (None, None) => Err("missing field `secret` (or `secrets`)".to_owned()),
        }
    }
}

impl From<Secrets> for SecretsRepr {
    fn from(secrets: Secrets) -> Self {
        match secrets {
            Secrets::One(one) => SecretsRepr {
                secret: Some(one),
                secrets: None,
            },
            Secrets::Many(many) => SecretsRepr {
                secret: None,
                secrets: Some(many),
            },
        }
    }
}

impl Secrets {
    pub fn iter(&self) -> std::slice::Iter<'_, Secret> {
        match self {
            Secrets::One(one) => std::slice::from_ref(one).iter(),
            Secrets::Many(many) => many.iter(),
        }
    }

    /// The current secret: the single one, or the first of the list.
    pub fn current(&self) -> Option<&Secret> {
        self.iter().next()
    }

    /// At least one secret, none empty.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.iter().next().is_none() {
            return Err(ConfigError(
                "secrets must list at least one secret".to_owned(),
            ));
        }
        self.iter()
            .try_for_each(|s| super::common::validate_secret("secret", s))
    }

    /// The same shape with every secret replaced by `***`.
    pub(crate) fn redacted(&self) -> Secrets {
        match self {
            Secrets::One(_) => Secrets::One(Secret::new(REDACTED)),
            Secrets::Many(many) => {
                Secrets::Many(many.iter().map(|_| Secret::new(REDACTED)).collect())
            }
        }
    }
}

impl From<Secret> for Secrets {
    fn from(secret: Secret) -> Self {
        Secrets::One(secret)
    }
}

impl From<&str> for Secrets {
    fn from(secret: &str) -> Self {
        Secrets::One(Secret::new(secret))
    }
}

impl From<Vec<Secret>> for Secrets {
    fn from(secrets: Vec<Secret>) -> Self {
        Secrets::Many(secrets)
    }
}

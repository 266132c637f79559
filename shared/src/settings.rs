//! Service settings from the environment, for the Lambda functions (and any process configured
//! the same way). Resource names (tables, queues) are read by [`crate::aws::AwsSettings`].
//!
//! | variable | read into | default |
//! | --- | --- | --- |
//! | `HOOKHUB_MAX_BODY_BYTES` | [`ReceiverConfig::max_body_bytes`] | 262144 |
//! | `HOOKHUB_MAX_HEADER_BYTES` | [`ReceiverConfig::max_header_bytes`] (names + values) | 65536 |
//! | `HOOKHUB_DEDUP_WINDOW` | [`ReceiverConfig::dedup_window`] (humantime: `24h`, `90m`) | `24h` |
//! | `HOOKHUB_PUBLIC_URL` | [`ReceiverConfig::public_url`] (`http(s)://…`) | none |
//! | `HOOKHUB_RETRY_SCHEDULE` | [`DispatcherConfig::retry`] (`5s,5m,30m`) | `5s,5m,30m,2h,5h,10h,10h` |
//! | `HOOKHUB_DISABLE_AFTER` | [`HealthPolicy::disable_after`] (humantime; `0` = never) | `5d` |
//! | `HOOKHUB_BREAKER_THRESHOLD` | [`HealthPolicy::breaker_threshold`] (`0` = no breaker) | 10 |
//! | `HOOKHUB_BREAKER_BACKOFF` | [`HealthPolicy::probe_backoff`] (humantime) | `30s` |
//! | `HOOKHUB_BREAKER_MAX_BACKOFF` | [`HealthPolicy::max_probe_backoff`] (humantime) | `10m` |
//! | `HOOKHUB_FAN_OUT_CONCURRENCY` | [`DispatcherConfig::fan_out_concurrency`] (1–1024) | 16 |
//! | `HOOKHUB_ALLOW_PRIVATE_TARGETS` | [`DeliveryOptions::allow_private_targets`] (`true`/`false`; the admin API's URL check follows it too) | `false` |
//! | `HOOKHUB_ADMIN_KEY_SHA256` | [`AdminKey`]: hex SHA-256 of the admin key (deployments) | — |
//! | `HOOKHUB_ADMIN_KEY` | [`AdminKey`]: the admin key itself (local development) | — |
//! | `HOOKHUB_CREATE_RESOURCES` | [`Env::create_resources`] (`true`/`false`) | `false` |
//! | `HOOKHUB_METRICS_NAMESPACE` | [`MetricsSettings::namespace`] (CloudWatch EMF) | `Hookhub` |
//! | `HOOKHUB_METRICS_MAX_SUBSCRIPTIONS` | [`MetricsSettings::max_subscriptions`] | 50 |
//!
//! A variable set to an empty string counts as unset.

use std::fmt;

pub mod parse;

use crate::decision::HealthPolicy;
use crate::delivery::DeliveryOptions;
use crate::dispatch::DispatcherConfig;
use crate::domain::Secret;
use crate::http::AppState;
use crate::ingest::{Ingestor, ReceiverConfig};
use crate::metrics::MetricsSettings;
use crate::ports::Backend;
use crate::retry::RetryPolicy;

/// Upper bound of `HOOKHUB_FAN_OUT_CONCURRENCY`: far above any sane value, low enough that a
/// typo cannot open thousands of connections from one function instance.
const MAX_FAN_OUT_CONCURRENCY: usize = 1024;

/// A missing or malformed variable, named so the operator knows what to fix. Values are not
/// echoed for the admin key variables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("missing configuration: set {0}")]
    Missing(&'static str),
    #[error("invalid {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
}

pub(crate) fn invalid(var: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        var,
        reason: reason.into(),
    }
}

/// Where variables come from: the process environment ([`Env::process`]) or, in tests, any
/// lookup function, so nothing has to mutate the (process-global) environment.
pub struct Env<F = fn(&str) -> Option<String>> {
    var: F,
}

fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Env {
    /// The process environment.
    pub fn process() -> Self {
        Self { var: process_var }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_lookup(var: F) -> Self {
        Self { var }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.var)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// `HOOKHUB_MAX_BODY_BYTES`, `HOOKHUB_MAX_HEADER_BYTES`, `HOOKHUB_DEDUP_WINDOW`,
    /// `HOOKHUB_PUBLIC_URL`.
    pub fn receiver_config(&self) -> Result<ReceiverConfig, SettingsError> {
        let defaults = ReceiverConfig::default();
        let max_body_bytes = self.bytes("HOOKHUB_MAX_BODY_BYTES", defaults.max_body_bytes)?;
        let max_header_bytes = self.bytes("HOOKHUB_MAX_HEADER_BYTES", defaults.max_header_bytes)?;
        let dedup_window = self.duration("HOOKHUB_DEDUP_WINDOW", defaults.dedup_window)?;
        let public_url = match self.get("HOOKHUB_PUBLIC_URL") {
            None => None,
            Some(v) => Some(public_url(&v)?),
        };
        Ok(ReceiverConfig {
            max_body_bytes,
            max_header_bytes,
            dedup_window,
            public_url,
        })
    }

    /// `HOOKHUB_RETRY_SCHEDULE`, `HOOKHUB_FAN_OUT_CONCURRENCY`.
    pub fn dispatcher_config(&self) -> Result<DispatcherConfig, SettingsError> {
        let defaults = DispatcherConfig::default();
        let retry = match self.get("HOOKHUB_RETRY_SCHEDULE") {
            None => defaults.retry,
            Some(v) => RetryPolicy::with_schedule(
                RetryPolicy::parse_schedule(&v)
                    .map_err(|e| invalid("HOOKHUB_RETRY_SCHEDULE", e.to_string()))?,
            ),
        };
        let fan_out_concurrency = match self.get("HOOKHUB_FAN_OUT_CONCURRENCY") {
            None => defaults.fan_out_concurrency,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_FAN_OUT_CONCURRENCY).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "HOOKHUB_FAN_OUT_CONCURRENCY",
                        format!("expected a number from 1 to {MAX_FAN_OUT_CONCURRENCY}, got {v:?}"),
                    ))
                }
            },
        };
        Ok(DispatcherConfig {
            retry,
            health: self.health_policy()?,
            fan_out_concurrency,
            ..defaults
        })
    }

    /// `HOOKHUB_DISABLE_AFTER`, `HOOKHUB_BREAKER_THRESHOLD`, `HOOKHUB_BREAKER_BACKOFF`,
    /// `HOOKHUB_BREAKER_MAX_BACKOFF`.
    pub fn health_policy(&self) -> Result<HealthPolicy, SettingsError> {
        let defaults = HealthPolicy::default();
        let disable_after = match self.get("HOOKHUB_DISABLE_AFTER") {
            None => defaults.disable_after,
            Some(v) => HealthPolicy::parse_disable_after(&v)
                .map_err(|e| invalid("HOOKHUB_DISABLE_AFTER", e))?,
        };
        let breaker_threshold = match self.get("HOOKHUB_BREAKER_THRESHOLD") {
            None => defaults.breaker_threshold,
            Some(v) => v.parse::<u32>().map_err(|_| {
                invalid(
                    "HOOKHUB_BREAKER_THRESHOLD",
                    format!("expected a number of failures (0 = no breaker), got {v:?}"),
                )
            })?,
        };
        Ok(HealthPolicy {
            breaker_threshold,
            probe_backoff: self.duration("HOOKHUB_BREAKER_BACKOFF", defaults.probe_backoff)?,
            max_probe_backoff: self
                .duration("HOOKHUB_BREAKER_MAX_BACKOFF", defaults.max_probe_backoff)?,
            disable_after,
        })
    }

    /// A positive humantime duration, or `default` when unset.
    fn duration(
        &self,
        var: &'static str,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, SettingsError> {
        self.get(var)
            .map_or(Ok(default), |v| parse::duration(var, &v))
    }

    /// `HOOKHUB_ALLOW_PRIVATE_TARGETS` (default false: the SSRF guard stays on).
    pub fn delivery_options(&self) -> Result<DeliveryOptions, SettingsError> {
        Ok(DeliveryOptions {
            allow_private_targets: self.flag("HOOKHUB_ALLOW_PRIVATE_TARGETS")?,
            ..DeliveryOptions::default()
        })
    }

    /// `HOOKHUB_ADMIN_KEY_SHA256` (preferred when both are set) or `HOOKHUB_ADMIN_KEY`; one of
    /// them is required, so an admin API is never started without a key.
    pub fn admin_key(&self) -> Result<AdminKey, SettingsError> {
        if let Some(hash) = self.get("HOOKHUB_ADMIN_KEY_SHA256") {
            return AdminKey::from_sha256_hex(&hash);
        }
        match self.get("HOOKHUB_ADMIN_KEY") {
            Some(key) => Ok(AdminKey::from_plain(key)),
            None => Err(SettingsError::Missing(
                "HOOKHUB_ADMIN_KEY_SHA256 (hex SHA-256 of the admin key) or HOOKHUB_ADMIN_KEY",
            )),
        }
    }

    /// `HOOKHUB_CREATE_RESOURCES`: create missing tables and queues at start-up. For local
    /// emulators only; deployed stacks create them with their infrastructure code.
    pub fn create_resources(&self) -> Result<bool, SettingsError> {
        self.flag("HOOKHUB_CREATE_RESOURCES")
    }

    /// `HOOKHUB_METRICS_NAMESPACE` (CloudWatch namespace of the EMF lines) and
    /// `HOOKHUB_METRICS_MAX_SUBSCRIPTIONS` (how many subscriptions get their own `subscription`
    /// dimension value; later ones are counted as `other`).
    pub fn metrics_settings(&self) -> Result<MetricsSettings, SettingsError> {
        let defaults = MetricsSettings::default();
        let namespace = match self.get("HOOKHUB_METRICS_NAMESPACE") {
            None => defaults.namespace,
            Some(ns) if ns.len() <= 255 && ns.chars().all(|c| c.is_ascii_graphic()) => ns,
            Some(ns) => {
                return Err(invalid(
                    "HOOKHUB_METRICS_NAMESPACE",
                    format!("expected at most 255 visible ASCII characters, got {ns:?}"),
                ))
            }
        };
        let max_subscriptions = match self.get("HOOKHUB_METRICS_MAX_SUBSCRIPTIONS") {
            None => defaults.max_subscriptions,
            Some(v) => v.parse::<usize>().map_err(|_| {
                invalid(
                    "HOOKHUB_METRICS_MAX_SUBSCRIPTIONS",
                    format!("expected a number, got {v:?}"),
                )
            })?,
        };
        Ok(MetricsSettings {
            namespace,
            max_subscriptions,
        })
    }

    /// A positive number of bytes, or `default` when unset.
    fn bytes(&self, var: &'static str, default: usize) -> Result<usize, SettingsError> {
        self.get(var).map_or(Ok(default), |v| parse::bytes(var, &v))
    }

    fn flag(&self, var: &'static str) -> Result<bool, SettingsError> {
        self.get(var).map_or(Ok(false), |v| parse::flag(var, &v))
    }
}

fn public_url(value: &str) -> Result<String, SettingsError> {
    let var = "HOOKHUB_PUBLIC_URL";
    let parsed = url::Url::parse(value)
        .map_err(|e| invalid(var, format!("expected an http(s) URL, got {value:?} ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(invalid(
            var,
            format!("expected an http(s) URL, got {value:?}"),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid(
            var,
            "a base URL has no query or fragment (the request path and query are appended)",
        ));
    }
    // Kept as written (less a trailing slash): signed URLs must match what providers call.
    Ok(value.trim_end_matches('/').to_string())
}

/// The admin API key, either as the hex SHA-256 of the key (deployments need not hold the key)
/// or as the key itself (local development). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKey(AdminKeyRepr);

#[derive(Clone, PartialEq, Eq)]
enum AdminKeyRepr {
    /// Validated: 64 hex digits.
    Sha256Hex(String),
    Plain(Secret),
}

impl AdminKey {
    /// From `HOOKHUB_ADMIN_KEY_SHA256`'s format: 64 hex digits (`sha256sum` output works).
    pub fn from_sha256_hex(hex_hash: &str) -> Result<Self, SettingsError> {
        // `sha256sum` prints "<hash>  -": accept its first field.
        let hash = hex_hash.split_whitespace().next().unwrap_or_default();
        match hex::decode(hash) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self(AdminKeyRepr::Sha256Hex(hash.to_string()))),
            _ => Err(invalid(
                "HOOKHUB_ADMIN_KEY_SHA256",
                "expected 64 hex digits: the SHA-256 of the admin key (e.g. `printf %s \"$KEY\" | sha256sum`)",
            )),
        }
    }

    pub fn from_plain(key: impl Into<String>) -> Self {
        Self(AdminKeyRepr::Plain(Secret::new(key)))
    }

    /// The HTTP state of a process serving the admin API with this key.
    pub fn app_state(&self, backend: Backend, ingestor: Ingestor) -> AppState {
        match &self.0 {
            AdminKeyRepr::Sha256Hex(hash) => {
                AppState::with_admin_key_sha256(backend, ingestor, hash)
                    .expect("the hash was checked to be 32 bytes of hex when read")
            }
            AdminKeyRepr::Plain(key) => AppState::new(backend, ingestor, Some(key.expose())),
        }
    }
}

impl AdminKey {
    /// The state of a process serving only the admin API with this key: no ingestor.
    pub fn admin_state(&self, backend: Backend) -> AppState {
        use sha2::{Digest, Sha256};
        let hash: [u8; 32] = match &self.0 {
            AdminKeyRepr::Sha256Hex(hex_hash) => hex::decode(hex_hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .expect("the hash was checked to be 32 bytes of hex when read"),
            AdminKeyRepr::Plain(key) => Sha256::digest(key.expose().as_bytes()).into(),
        };
        AppState::admin_only(backend, hash)
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            AdminKeyRepr::Sha256Hex(_) => f.write_str("AdminKey(sha256: ***)"),
            AdminKeyRepr::Plain(_) => f.write_str("AdminKey(***)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(move |name: &str| map.get(name).cloned())
    }

    fn invalid_var(err: SettingsError) -> &'static str {
        match err {
            SettingsError::Invalid { var, .. } => var,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let e = env(&[]);
        let r = e.receiver_config().unwrap();
        let defaults = ReceiverConfig::default();
        assert_eq!(r.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(r.max_header_bytes, 64 * 1024);
        assert_eq!(r.dedup_window, defaults.dedup_window);
        assert_eq!(r.public_url, None);
        let d = e.dispatcher_config().unwrap();
        assert_eq!(d.retry, RetryPolicy::default());
        assert_eq!(d.fan_out_concurrency, 16);
        assert!(!e.delivery_options().unwrap().allow_private_targets);
        assert!(!e.create_resources().unwrap());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let e = env(&[
            ("HOOKHUB_MAX_BODY_BYTES", ""),
            ("HOOKHUB_RETRY_SCHEDULE", "  "),
            ("HOOKHUB_ALLOW_PRIVATE_TARGETS", ""),
        ]);
        assert_eq!(e.receiver_config().unwrap().max_body_bytes, 256 * 1024);
        assert_eq!(e.dispatcher_config().unwrap().retry, RetryPolicy::default());
        assert!(!e.delivery_options().unwrap().allow_private_targets);
    }

    #[test]
    fn values_are_read() {
        let e = env(&[
            ("HOOKHUB_MAX_BODY_BYTES", "1048576"),
            ("HOOKHUB_MAX_HEADER_BYTES", "16384"),
            ("HOOKHUB_DEDUP_WINDOW", "90m"),
            ("HOOKHUB_PUBLIC_URL", "https://hooks.example.com/"),
            ("HOOKHUB_RETRY_SCHEDULE", "5s, 5m,30m"),
            ("HOOKHUB_FAN_OUT_CONCURRENCY", "4"),
            ("HOOKHUB_ALLOW_PRIVATE_TARGETS", "TRUE"),
            ("HOOKHUB_CREATE_RESOURCES", "1"),
        ]);
        let r = e.receiver_config().unwrap();
        assert_eq!(r.max_body_bytes, 1_048_576);
        assert_eq!(r.max_header_bytes, 16_384);
        assert_eq!(r.dedup_window, Duration::from_secs(90 * 60));
        assert_eq!(r.public_url.as_deref(), Some("https://hooks.example.com"));
        let d = e.dispatcher_config().unwrap();
        assert_eq!(
            d.retry.delays,
            [5, 300, 1800].map(Duration::from_secs).to_vec()
        );
        assert_eq!(d.retry.jitter, RetryPolicy::default().jitter);
        assert_eq!(d.fan_out_concurrency, 4);
        assert!(e.delivery_options().unwrap().allow_private_targets);
        assert!(e.create_resources().unwrap());
    }

    #[test]
    fn health_policy_is_read() {
        assert_eq!(env(&[]).health_policy().unwrap(), HealthPolicy::default());
        let e = env(&[
            ("HOOKHUB_DISABLE_AFTER", "0"),
            ("HOOKHUB_BREAKER_THRESHOLD", "3"),
            ("HOOKHUB_BREAKER_BACKOFF", "200ms"),
            ("HOOKHUB_BREAKER_MAX_BACKOFF", "2s"),
        ]);
        let p = e.dispatcher_config().unwrap().health;
        assert_eq!(
            p,
            HealthPolicy {
                breaker_threshold: 3,
                probe_backoff: std::time::Duration::from_millis(200),
                max_probe_backoff: std::time::Duration::from_secs(2),
                disable_after: None,
            }
        );
        let e = env(&[("HOOKHUB_DISABLE_AFTER", "36h")]);
        assert_eq!(
            e.health_policy().unwrap().disable_after,
            Some(std::time::Duration::from_secs(36 * 3600))
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: [(&str, &str); 18] = [
            ("HOOKHUB_DISABLE_AFTER", "a week"),
            ("HOOKHUB_BREAKER_THRESHOLD", "-1"),
            ("HOOKHUB_BREAKER_BACKOFF", "0s"),
            ("HOOKHUB_BREAKER_MAX_BACKOFF", "later"),
            ("HOOKHUB_MAX_BODY_BYTES", "0"),
            ("HOOKHUB_MAX_BODY_BYTES", "256k"),
            ("HOOKHUB_MAX_HEADER_BYTES", "0"),
            ("HOOKHUB_MAX_HEADER_BYTES", "-1"),
            ("HOOKHUB_DEDUP_WINDOW", "a day"),
            ("HOOKHUB_PUBLIC_URL", "hooks.example.com"),
            ("HOOKHUB_PUBLIC_URL", "ftp://hooks.example.com"),
            ("HOOKHUB_PUBLIC_URL", "https://hooks.example.com/?a=1"),
            ("HOOKHUB_RETRY_SCHEDULE", "5s,soon"),
            ("HOOKHUB_FAN_OUT_CONCURRENCY", "0"),
            ("HOOKHUB_FAN_OUT_CONCURRENCY", "100000"),
            ("HOOKHUB_ALLOW_PRIVATE_TARGETS", "maybe"),
            ("HOOKHUB_CREATE_RESOURCES", "y"),
            ("HOOKHUB_ADMIN_KEY_SHA256", "abc"),
        ];
        for (var, value) in cases {
            let e = env(&[(var, value)]);
            let err = match var {
                "HOOKHUB_MAX_BODY_BYTES"
                | "HOOKHUB_MAX_HEADER_BYTES"
                | "HOOKHUB_DEDUP_WINDOW"
                | "HOOKHUB_PUBLIC_URL" => e.receiver_config().map(drop).unwrap_err(),
                "HOOKHUB_RETRY_SCHEDULE"
                | "HOOKHUB_FAN_OUT_CONCURRENCY"
                | "HOOKHUB_DISABLE_AFTER"
                | "HOOKHUB_BREAKER_THRESHOLD"
                | "HOOKHUB_BREAKER_BACKOFF"
                | "HOOKHUB_BREAKER_MAX_BACKOFF" => e.dispatcher_config().map(drop).unwrap_err(),
                "HOOKHUB_ALLOW_PRIVATE_TARGETS" => e.delivery_options().map(drop).unwrap_err(),
                "HOOKHUB_CREATE_RESOURCES" => e.create_resources().map(drop).unwrap_err(),
                _ => e.admin_key().map(drop).unwrap_err(),
            };
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
            assert_eq!(invalid_var(err), var, "{var}={value}");
        }
    }

    #[test]
    fn admin_key_is_required() {
        let err = env(&[]).admin_key().unwrap_err();
        assert!(matches!(err, SettingsError::Missing(_)));
        let message = err.to_string();
        assert!(
            message.contains("HOOKHUB_ADMIN_KEY_SHA256") && message.contains("HOOKHUB_ADMIN_KEY")
        );
    }

    #[test]
    fn admin_key_forms_and_precedence() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // "test"
        assert_eq!(
            env(&[("HOOKHUB_ADMIN_KEY_SHA256", hash)])
                .admin_key()
                .unwrap(),
            AdminKey::from_sha256_hex(hash).unwrap()
        );
        // `sha256sum` output is accepted as is.
        assert_eq!(
            AdminKey::from_sha256_hex(&format!("{}  -", hash.to_uppercase())).unwrap(),
            AdminKey(AdminKeyRepr::Sha256Hex(hash.to_uppercase()))
        );
        let both = env(&[
            ("HOOKHUB_ADMIN_KEY_SHA256", hash),
            ("HOOKHUB_ADMIN_KEY", "other"),
        ]);
        assert_eq!(
            both.admin_key().unwrap(),
            AdminKey::from_sha256_hex(hash).unwrap()
        );
        let plain = env(&[("HOOKHUB_ADMIN_KEY", "dev-key")])
            .admin_key()
            .unwrap();
        assert_eq!(plain, AdminKey::from_plain("dev-key"));
        assert!(!format!("{plain:?}").contains("dev-key"));
    }

    /// The admin function's state: no ingestor, and the key (either form) still checked.
    #[cfg(feature = "sqlite")]
    #[test]
    fn admin_state_builds_no_ingestor() {
        let backend = crate::sqlite::SqliteBackend::open_in_memory()
            .unwrap()
            .into_backend();
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // "test"
        for key in [
            AdminKey::from_plain("test"),
            AdminKey::from_sha256_hex(hash).unwrap(),
        ] {
            let state = key.admin_state(backend.clone());
            assert!(state.ingestor.is_none(), "{key:?}");
            assert!(state.admin_key_matches("test"), "{key:?}");
            assert!(!state.admin_key_matches("other"), "{key:?}");
        }
    }

    #[test]
    fn admin_key_errors_do_not_echo_the_value() {
        let err = env(&[("HOOKHUB_ADMIN_KEY_SHA256", "not-a-hash-but-maybe-the-key")])
            .admin_key()
            .unwrap_err();
        assert!(!err.to_string().contains("not-a-hash"), "{err}");
    }

    #[test]
    fn metrics_settings() {
        let m = env(&[]).metrics_settings().unwrap();
        assert_eq!((m.namespace.as_str(), m.max_subscriptions), ("Hookhub", 50));
        let m = env(&[
            ("HOOKHUB_METRICS_NAMESPACE", "Acme/Hooks"),
            ("HOOKHUB_METRICS_MAX_SUBSCRIPTIONS", "0"),
        ])
        .metrics_settings()
        .unwrap();
        assert_eq!(
            (m.namespace.as_str(), m.max_subscriptions),
            ("Acme/Hooks", 0)
        );
        for (var, value) in [
            ("HOOKHUB_METRICS_NAMESPACE", "has space"),
            ("HOOKHUB_METRICS_MAX_SUBSCRIPTIONS", "-1"),
        ] {
            let err = env(&[(var, value)]).metrics_settings().unwrap_err();
            assert_eq!(invalid_var(err), var);
        }
    }
}

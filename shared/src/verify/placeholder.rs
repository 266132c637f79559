//! The redaction placeholder on the way back in.
//!
//! The admin API shows every secret of a `verify` config as `***` ([`REDACTED`]). A client doing
//! read-modify-write sends that config back with the placeholder in it; storing it would make
//! `***` the secret, which anyone can sign with. Rule: a secret field whose value is `***` keeps
//! the secret stored at the same place (same field, same list index); where nothing is stored
//! there (a new source, a field the stored config does not have), the write is refused.
//!
//! Secret places are found by redacting the config itself: whatever `redacted()` turns into `***`
//! is a secret, for every scheme and nested `auth`, so a new scheme needs nothing here.

use serde_json::Value;

use super::common::REDACTED;
use super::{ConfigError, VerifyConfig};

/// `new` with every placeholder secret replaced by the secret `stored` holds at the same place.
/// Fails when a placeholder has no stored secret to stand for.
pub fn resolve_placeholders(
    new: VerifyConfig,
    stored: Option<&VerifyConfig>,
) -> Result<VerifyConfig, ConfigError> {
    let mut json = to_json(&new);
    let marks = secret_marks(&json);
    let stored = stored.map(|s| {
        let json = to_json(s);
        let marks = secret_marks(&json);
        (json, marks)
    });
    let mut unresolved = Vec::new();
    replace(
        &mut json,
        &marks,
        stored.as_ref().map(|(v, m)| (v, m)),
        &mut String::new(),
        &mut unresolved,
    );
    if let Some(path) = unresolved.first() {
        return Err(ConfigError(format!(
            "{path} is the redaction placeholder {REDACTED:?}, and no secret is stored there to \
             keep: send the secret itself"
        )));
    }
    serde_json::from_value(json).map_err(|e| ConfigError(e.to_string()))
}

fn to_json(config: &VerifyConfig) -> Value {
    serde_json::to_value(config).expect("verify configs always serialise")
}

/// The config's JSON with `***` exactly at its secret places. Redaction alone cannot tell a
/// secret from a plain field whose value happens to be `***` (a header name), so such values are
/// swapped for a probe first: whatever redaction then turns into `***` is a secret.
fn secret_marks(json: &Value) -> Value {
    const PROBE: &str = "\u{1}hookhub-probe\u{1}";
    let mut probe = json.clone();
    swap_strings(&mut probe, REDACTED, PROBE);
    match serde_json::from_value::<VerifyConfig>(probe) {
        Ok(config) => to_json(&config.redacted()),
        // Unreachable for a config that parsed: `***` is nowhere an enum tag.
        Err(_) => json.clone(),
    }
}

fn swap_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Object(map) => map.values_mut().for_each(|v| swap_strings(v, from, to)),
        Value::Array(items) => items.iter_mut().for_each(|v| swap_strings(v, from, to)),
        _ => {}
    }
}

/// Walks `value` with its own redaction (`marks`) and the stored config with its redaction.
fn replace(
    value: &mut Value,
    marks: &Value,
    stored: Option<(&Value, &Value)>,
    path: &mut String,
    unresolved: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let Some(mark) = marks.get(k) else { continue };
                let child = stored.and_then(|(s, m)| Some((s.get(k)?, m.get(k)?)));
                let len = path.len();
                path.push('.');
                path.push_str(k);
                replace(v, mark, child, path, unresolved);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                let Some(mark) = marks.get(i) else { continue };
                let child = stored.and_then(|(s, m)| Some((s.get(i)?, m.get(i)?)));
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                replace(v, mark, child, path, unresolved);
                path.truncate(len);
            }
        }
        Value::String(s) if s == REDACTED && marks == REDACTED => match stored {
            Some((Value::String(old), mark)) if mark == REDACTED => *s = old.clone(),
            _ => unresolved.push(format!("verify{path}")),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> VerifyConfig {
        serde_json::from_str(json).unwrap()
    }

    fn resolve(new: &str, stored: Option<&str>) -> Result<String, String> {
        let stored = stored.map(config);
        resolve_placeholders(config(new), stored.as_ref())
            .map(|c| serde_json::to_string(&c).unwrap())
            .map_err(|e| e.0)
    }

    #[test]
    fn placeholders_keep_the_stored_secret_at_the_same_place() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"scheme":"github","secret":"***"}"#,
                r#"{"scheme":"github","secret":"gh"}"#,
                r#"{"scheme":"github","secret":"gh"}"#,
            ),
            // Rotation by read-modify-write: a new secret first, the old ones kept by index.
            (
                r#"{"scheme":"stripe","secrets":["whsec_new","***"]}"#,
                r#"{"scheme":"stripe","secrets":["whsec_old","whsec_older"]}"#,
                r#"{"scheme":"stripe","secrets":["whsec_new","whsec_older"]}"#,
            ),
            (
                r#"{"scheme":"meta","secret":"***","verify_token":"***"}"#,
                r#"{"scheme":"meta","secret":"app","verify_token":"tok"}"#,
                r#"{"scheme":"meta","secret":"app","verify_token":"tok"}"#,
            ),
            (
                r#"{"scheme":"token","header":"X-T","value":"***"}"#,
                r#"{"scheme":"token","header":"X-Old","value":"tok"}"#,
                r#"{"scheme":"token","header":"X-T","value":"tok"}"#,
            ),
            (
                r#"{"scheme":"basic","username":"u2","password":"***"}"#,
                r#"{"scheme":"basic","username":"u","password":"pw"}"#,
                r#"{"scheme":"basic","username":"u2","password":"pw"}"#,
            ),
            (
                r#"{"scheme":"outverse","auth":{"scheme":"token","header":"X","value":"***"}}"#,
                r#"{"scheme":"outverse","auth":{"scheme":"token","header":"X","value":"ov"}}"#,
                r#"{"scheme":"outverse","auth":{"scheme":"token","header":"X","value":"ov"}}"#,
            ),
            (
                r#"{"scheme":"featureos","auth":{"scheme":"hmac","header":"X-S","algorithm":"sha256","encoding":"hex","secrets":["***"]}}"#,
                r#"{"scheme":"featureos","auth":{"scheme":"hmac","header":"X-S","algorithm":"sha256","encoding":"hex","secrets":["fo"]}}"#,
                r#"{"scheme":"featureos","auth":{"scheme":"hmac","header":"X-S","algorithm":"sha256","encoding":"hex","secrets":["fo"]}}"#,
            ),
            // A real secret replaces the stored one.
            (
                r#"{"scheme":"github","secret":"fresh"}"#,
                r#"{"scheme":"github","secret":"gh"}"#,
                r#"{"scheme":"github","secret":"fresh"}"#,
            ),
            // `***` outside a secret field is an ordinary value, in the request as in the store.
            (
                r#"{"scheme":"token","header":"***","value":"***"}"#,
                r#"{"scheme":"token","header":"***","value":"tok"}"#,
                r#"{"scheme":"token","header":"***","value":"tok"}"#,
            ),
            (
                r#"{"scheme":"token","header":"***","value":"t"}"#,
                r#"{"scheme":"token","header":"X","value":"old"}"#,
                r#"{"scheme":"token","header":"***","value":"t"}"#,
            ),
        ];
        for (new, stored, expected) in cases {
            assert_eq!(
                resolve(new, Some(stored)).as_deref(),
                Ok(*expected),
                "{new}"
            );
        }
    }

    #[test]
    fn placeholders_without_a_stored_secret_are_refused() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                r#"{"scheme":"github","secret":"***"}"#,
                None,
                "verify.secret",
            ),
            (
                r#"{"scheme":"stripe","secrets":["***","***"]}"#,
                Some(r#"{"scheme":"stripe","secrets":["whsec_a"]}"#),
                "verify.secrets[1]",
            ),
            (
                r#"{"scheme":"github","secrets":["***"]}"#,
                Some(r#"{"scheme":"github","secret":"gh"}"#),
                "verify.secrets[0]",
            ),
            (
                r#"{"scheme":"spika","value":"***"}"#,
                Some(r#"{"scheme":"none"}"#),
                "verify.value",
            ),
            (
                r#"{"scheme":"featureos","auth":{"scheme":"basic","username":"u","password":"***"}}"#,
                Some(r#"{"scheme":"featureos","auth":{"scheme":"none"}}"#),
                "verify.auth.password",
            ),
        ];
        for (new, stored, path) in cases {
            let err = resolve(new, *stored).unwrap_err();
            assert!(err.starts_with(path), "{new}: {err}");
        }
    }

    #[test]
    fn every_catalog_example_round_trips_through_its_redaction() {
        for info in super::super::CATALOG {
            let stored = config(info.example);
            let shown = stored.redacted();
            let back = resolve_placeholders(shown, Some(&stored)).unwrap();
            assert_eq!(back, stored, "{}", info.scheme);
        }
    }
}

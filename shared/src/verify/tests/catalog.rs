//! The catalog table, the README beside the module, and properties every scheme shares.

use super::*;

const README: &str = include_str!("../README.md");

#[test]
fn catalog_examples_parse_validate_and_round_trip() {
    let mut seen = std::collections::BTreeSet::new();
    for info in CATALOG {
        assert!(seen.insert(info.scheme), "duplicate {}", info.scheme);
        let parsed: VerifyConfig = serde_json::from_str(info.example).unwrap();
        parsed
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", info.scheme));
        assert_eq!(parsed.scheme_name(), info.scheme);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), info.example);
        assert_eq!(scheme_info(info.scheme), Some(info));
    }
    assert_eq!(CATALOG.len(), 20);
}

#[test]
fn readme_documents_every_scheme_with_its_example() {
    for info in CATALOG {
        let row = format!("| `{}` |", info.scheme);
        assert!(
            README.contains(&row),
            "README lacks a row for {}",
            info.scheme
        );
        let dedup = format!("| `{}` |", info.default_dedup_key());
        let line = README.lines().find(|l| l.starts_with(&row)).unwrap();
        assert!(
            line.contains(&dedup),
            "README row of {} lacks its default dedup key {dedup}",
            info.scheme
        );
        let body = format!(r#"{{"id":"{}","verify":{}}}"#, info.scheme, info.example);
        assert!(
            README.contains(&body),
            "README lacks the example for {}:\n{body}",
            info.scheme
        );
    }
}

/// Every string under a credential key of a config's JSON.
fn credentials(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if ["secret", "secrets", "value", "password", "verify_token"].contains(&k.as_str())
                {
                    match v {
                        serde_json::Value::String(s) => out.push(s.clone()),
                        serde_json::Value::Array(a) => {
                            out.extend(a.iter().filter_map(|s| s.as_str().map(str::to_owned)))
                        }
                        _ => {}
                    }
                } else {
                    credentials(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| credentials(v, out)),
        _ => {}
    }
}

#[test]
fn no_secret_in_debug_or_redacted_output() {
    let mut examples: Vec<String> = CATALOG.iter().map(|i| i.example.to_owned()).collect();
    examples.push(r#"{"scheme":"github","secrets":["gh-new-secret","gh-old-secret"]}"#.to_owned());
    examples.push(
        r#"{"scheme":"meta","secrets":["meta-a","meta-b"],"verify_token":"meta-tok"}"#.to_owned(),
    );
    for example in &examples {
        let json: serde_json::Value = serde_json::from_str(example).unwrap();
        let mut secrets = Vec::new();
        credentials(&json, &mut secrets);
        let parsed: VerifyConfig = serde_json::from_value(json).unwrap();
        let debug = format!("{parsed:?} {parsed:#?}");
        let redacted = parsed.redacted();
        let shown = serde_json::to_string(&redacted).unwrap();
        for secret in &secrets {
            assert!(
                !debug.contains(secret.as_str()),
                "{example}: Debug shows {secret}"
            );
            assert!(
                !shown.contains(secret.as_str()),
                "{example}: redacted shows {secret}"
            );
        }
        // Redaction keeps the shape: the same scheme, and it still parses.
        assert_eq!(redacted.scheme_name(), parsed.scheme_name());
        assert_eq!(
            serde_json::from_str::<VerifyConfig>(&shown).unwrap(),
            redacted
        );
    }
}

#[test]
fn secret_or_secrets_but_not_both() {
    let one: VerifyConfig = serde_json::from_str(r#"{"scheme":"github","secret":"a"}"#).unwrap();
    let many: VerifyConfig =
        serde_json::from_str(r#"{"scheme":"github","secrets":["a","b"]}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&many).unwrap(),
        r#"{"scheme":"github","secrets":["a","b"]}"#
    );
    assert_ne!(one, many);
    for bad in [
        r#"{"scheme":"github","secret":"a","secrets":["b"]}"#,
        r#"{"scheme":"github"}"#,
        r#"{"scheme":"github","secret":"a","extra":1}"#,
        r#"{"scheme":"stripe","secret":"a","tolerance":5}"#,
        r#"{"scheme":"standard-webhooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","x":1}"#,
    ] {
        assert!(serde_json::from_str::<VerifyConfig>(bad).is_err(), "{bad}");
    }
    for invalid in [
        r#"{"scheme":"github","secrets":[]}"#,
        r#"{"scheme":"github","secrets":["a",""]}"#,
        r#"{"scheme":"slack","secret":"a","tolerance_seconds":0}"#,
        r#"{"scheme":"meta","secret":"a","verify_token":""}"#,
        r#"{"scheme":"standard-webhooks","secrets":["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","nope!"]}"#,
    ] {
        let parsed: VerifyConfig = serde_json::from_str(invalid).unwrap();
        assert!(parsed.validate().is_err(), "{invalid}");
    }
}

#[test]
fn handshakes_only_where_documented() {
    let get = TestRequest::get("challenge=x&hub.mode=subscribe&hub.challenge=x&hub.verify_token=x");
    for info in CATALOG {
        let parsed: VerifyConfig = serde_json::from_str(info.example).unwrap();
        let answers_get = parsed.get_handshake(&get.req()).is_some();
        assert_eq!(
            answers_get,
            ["meta", "dropbox"].contains(&info.scheme),
            "{}",
            info.scheme
        );
    }
}

/// A scheme that finds a delivery id in a request says so in the catalog, since the catalog
/// decides whether its sources deduplicate on it by default.
#[test]
fn schemes_that_report_delivery_ids_say_so_in_the_catalog() {
    let body = br#"{"id":"x1","event_id":"x2","type":"t","data":{"id":"x3","name":"n"},"webhookTimestamp":1}"#;
    let r = TestRequest::post(body)
        .header("X-GitHub-Delivery", "d")
        .header("X-GitHub-Event", "push")
        .header("X-Shopify-Webhook-Id", "d")
        .header("Linear-Delivery", "d")
        .header("I-Twilio-Idempotency-Token", "d")
        .header("webhook-id", "d")
        .header("svix-id", "d");
    for info in CATALOG {
        let parsed: VerifyConfig = serde_json::from_str(info.example).unwrap();
        let meta = parsed.describe(&r.req(), None);
        if meta.delivery_id.is_some() {
            assert!(
                info.has_delivery_id(),
                "{} reports a delivery id",
                info.scheme
            );
        }
    }
}

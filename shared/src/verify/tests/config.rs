//! Config parsing, validation, redaction and Debug output, across schemes.

use super::*;

const HMAC_JSON: &str = r#"{"scheme":"hmac","header":"X-Hub-Signature-256","algorithm":"sha256","encoding":"hex","prefix":"sha256=","secret":"hmac-secret-value"}"#;
const NONE_JSON: &str = r#"{"scheme":"none"}"#;
const TOKEN_JSON: &str =
    r#"{"scheme":"token","header":"Verification-Signature","value":"token-secret-value"}"#;
const STANDARD_JSON: &str =
    r#"{"scheme":"standard-webhooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#;

/// The secret inside each phase-one example, to look for in Debug output.
const EXAMPLES: [(&str, Option<&str>); 4] = [
    (HMAC_JSON, Some("hmac-secret-value")),
    (NONE_JSON, None),
    (TOKEN_JSON, Some("token-secret-value")),
    (STANDARD_JSON, Some("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
];

#[test]
fn serde_round_trips_exactly() {
    for (json, _) in EXAMPLES {
        let parsed: VerifyConfig = serde_json::from_str(json).unwrap();
        parsed.validate().unwrap();
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
    }
}

#[test]
fn parsed_shapes() {
    let parsed: VerifyConfig = serde_json::from_str(HMAC_JSON).unwrap();
    let VerifyConfig::Hmac(h) = parsed else {
        panic!("hmac expected")
    };
    assert_eq!(h.header, "X-Hub-Signature-256");
    assert_eq!(h.algorithm, HmacAlgorithm::Sha256);
    assert_eq!(h.encoding, SignatureEncoding::Hex);
    assert_eq!(h.prefix.as_deref(), Some("sha256="));
    let parsed: VerifyConfig = serde_json::from_str(TOKEN_JSON).unwrap();
    assert!(
        matches!(parsed, VerifyConfig::Token { ref header, .. } if header == "Verification-Signature")
    );
    let parsed: VerifyConfig = serde_json::from_str(STANDARD_JSON).unwrap();
    assert!(matches!(
        parsed,
        VerifyConfig::StandardWebhooks {
            tolerance_seconds: None,
            ..
        }
    ));
}

/// (`none` is a unit variant, so serde ignores extra keys next to it; nothing there is used.)
#[test]
fn unknown_schemes_and_fields_are_rejected() {
    for bad in [
        r#"{"scheme":"nope"}"#,
        r#"{"scheme":"token","header":"A","value":"b","extra":1}"#,
        r#"{"scheme":"hmac","header":"A","algorithm":"md5","encoding":"hex","secret":"s"}"#,
        r#"{"scheme":"hmac","header":"A","algorithm":"sha256","encoding":"hex","secret":"s","x":1}"#,
        r#"{"scheme":"token","header":"A"}"#,
        r#"{"header":"A","value":"b"}"#,
    ] {
        assert!(serde_json::from_str::<VerifyConfig>(bad).is_err(), "{bad}");
    }
}

#[test]
fn debug_never_shows_secrets() {
    for (json, secret) in EXAMPLES {
        let parsed: VerifyConfig = serde_json::from_str(json).unwrap();
        let debug = format!("{parsed:?} {parsed:#?}");
        if let Some(secret) = secret {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}

#[test]
fn redacted_replaces_every_secret() {
    for (json, secret) in EXAMPLES {
        let parsed: VerifyConfig = serde_json::from_str(json).unwrap();
        let shown = serde_json::to_string(&parsed.redacted()).unwrap();
        if let Some(secret) = secret {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("\"***\""), "{shown}");
        } else {
            assert_eq!(shown, json);
        }
        // Everything but the secrets survives.
        let scheme =
            |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["scheme"].clone();
        assert_eq!(scheme(&shown), scheme(json));
    }
    let VerifyConfig::Hmac(h) = serde_json::from_str::<VerifyConfig>(HMAC_JSON)
        .unwrap()
        .redacted()
    else {
        panic!("hmac expected")
    };
    assert_eq!(h.header, "X-Hub-Signature-256");
    assert_eq!(h.prefix.as_deref(), Some("sha256="));
}

#[test]
fn validate_rejects_unusable_configs() {
    for bad in [
        r#"{"scheme":"token","header":"","value":"v"}"#,
        r#"{"scheme":"token","header":"Bad Header","value":"v"}"#,
        r#"{"scheme":"token","header":"X-Token","value":""}"#,
        r#"{"scheme":"token","header":"X-Token","value":"line\nbreak"}"#,
        r#"{"scheme":"hmac","header":"","algorithm":"sha256","encoding":"hex","secret":"s"}"#,
        r#"{"scheme":"hmac","header":"X:Sig","algorithm":"sha256","encoding":"hex","secret":"s"}"#,
        r#"{"scheme":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","secret":""}"#,
        r#"{"scheme":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","prefix":"a, b","secret":"s"}"#,
        r#"{"scheme":"standard-webhooks","secret":""}"#,
        r#"{"scheme":"standard-webhooks","secret":"whsec_"}"#,
        r#"{"scheme":"standard-webhooks","secret":"whsec_!!!"}"#,
        r#"{"scheme":"standard-webhooks","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","tolerance_seconds":0}"#,
    ] {
        let parsed: VerifyConfig = serde_json::from_str(bad).unwrap();
        assert!(parsed.validate().is_err(), "{bad}");
    }
}

#[test]
fn credential_headers_per_scheme() {
    for (json, expected) in [
        (TOKEN_JSON, vec!["verification-signature".to_owned()]),
        (HMAC_JSON, vec![]),
        (NONE_JSON, vec![]),
        (STANDARD_JSON, vec![]),
    ] {
        let parsed: VerifyConfig = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.credential_headers(), expected, "{json}");
    }
}

#[test]
fn error_codes_and_statuses() {
    let cases = [
        (
            VerifyError::SignatureMissing("X".into()),
            "signature_missing",
            401,
        ),
        (
            VerifyError::SignatureMalformed("X".into()),
            "signature_malformed",
            401,
        ),
        (VerifyError::SignatureInvalid, "signature_invalid", 401),
        (
            VerifyError::TimestampOutOfRange,
            "timestamp_out_of_range",
            401,
        ),
        (VerifyError::HandshakeForbidden, "handshake_forbidden", 403),
        (VerifyError::AuthNotConfigured, "auth_not_configured", 401),
    ];
    for (err, code, status) in cases {
        assert_eq!((err.code(), err.http_status()), (code, status));
    }
}

#[test]
fn constant_time_eq_compares_lengths_and_bytes() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
    assert!(constant_time_eq(b"", b""));
}

#[test]
fn inbound_request_debug_hides_credentials() {
    let r = TestRequest::get("hub.verify_token=query-secret")
        .header("Verification-Signature", "header-secret")
        .url("https://hooks.example.com/webhooks/x?hub.verify_token=query-secret")
        .body("body-secret");
    let debug = format!("{:?}", r.req());
    for secret in ["query-secret", "header-secret", "body-secret"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(
        debug.contains("verification-signature") && debug.contains("body_len: 11"),
        "{debug}"
    );
}

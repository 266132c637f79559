//! `spika`, `outverse`, `featureos`.

use super::*;

const BODY: &[u8] = br#"{"type":"thread","action":"created","data":{"title":"Gr\u00fc\u00dfe"}}"#;

#[test]
fn spika_is_a_token_with_a_default_header() {
    let c = config(r#"{"scheme":"spika","value":"spika-secret"}"#);
    let ok = TestRequest::post(BODY).header("Verification-Signature", "spika-secret");
    assert_eq!(ok.verify(&c), Ok(()));
    assert_eq!(
        ok.body(tamper(BODY)).verify(&c),
        Ok(()),
        "a token does not cover the body"
    );
    let wrong = TestRequest::post(BODY).header("Verification-Signature", "spika-secreT");
    assert_eq!(wrong.verify(&c), INVALID);
    assert_eq!(
        TestRequest::post(BODY).verify(&c),
        missing("Verification-Signature")
    );
    assert_eq!(c.credential_headers(), vec!["verification-signature"]);
    let big = TestRequest::post(unicode_body()).header("Verification-Signature", "spika-secret");
    assert_eq!(big.verify(&c), Ok(()));

    let custom = config(r#"{"scheme":"spika","header":"X-Spika","value":"spika-secret"}"#);
    let r = TestRequest::post(BODY).header("x-spika", "spika-secret");
    assert_eq!(r.verify(&custom), Ok(()));
    assert_eq!(custom.credential_headers(), vec!["x-spika"]);
}

#[test]
fn outverse_nested_auth() {
    let token = config(
        r#"{"scheme":"outverse","auth":{"scheme":"token","header":"X-Outverse-Token","value":"ov"}}"#,
    );
    assert_eq!(
        TestRequest::post(BODY)
            .header("X-Outverse-Token", "ov")
            .verify(&token),
        Ok(())
    );
    assert_eq!(
        TestRequest::post(BODY)
            .header("X-Outverse-Token", "no")
            .verify(&token),
        INVALID
    );
    assert_eq!(
        TestRequest::post(BODY).verify(&token),
        missing("X-Outverse-Token")
    );
    assert_eq!(token.credential_headers(), vec!["x-outverse-token"]);

    let basic =
        config(r#"{"scheme":"outverse","auth":{"scheme":"basic","username":"u","password":"p"}}"#);
    let r = TestRequest::post(BODY).header("Authorization", format!("Basic {}", b64(b"u:p")));
    assert_eq!(r.verify(&basic), Ok(()));
    assert_eq!(basic.credential_headers(), vec!["authorization"]);

    // No auth is refused when written, and a config stored without one accepts nothing; only an
    // explicit `none` accepts unauthenticated requests.
    for scheme in ["outverse", "featureos"] {
        let open: VerifyConfig =
            serde_json::from_str(&format!(r#"{{"scheme":"{scheme}"}}"#)).unwrap();
        let message = open.validate().unwrap_err().0;
        assert!(message.contains("auth is required") && message.contains("\"none\""));
        assert_eq!(
            TestRequest::post(BODY).verify(&open),
            Err(VerifyError::AuthNotConfigured)
        );
        let explicit = config(&format!(
            r#"{{"scheme":"{scheme}","auth":{{"scheme":"none"}}}}"#
        ));
        assert_eq!(explicit.validate(), Ok(()));
        assert_eq!(TestRequest::post(BODY).verify(&explicit), Ok(()));
    }

    let meta = token.describe(&TestRequest::post(BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("thread.created"));
}

#[test]
fn featureos_nested_hmac_and_type() {
    let c = config(
        r#"{"scheme":"featureos","auth":{"scheme":"hmac","header":"X-Signature","algorithm":"sha256","encoding":"hex","secret":"fos"}}"#,
    );
    let body =
        br#"{"type":"postCompleted","data":{"id":80874,"object":"post"},"created":1651686939}"#;
    let r = TestRequest::post(body).header("X-Signature", hmac_sha256_hex(b"fos", body));
    assert_eq!(r.verify(&c), Ok(()));
    assert_eq!(r.body(tamper(body)).verify(&c), INVALID);
    let meta = c.describe(&TestRequest::post(body).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("postCompleted"));
    assert_eq!(meta.delivery_id, None);
}

#[test]
fn seeds_validate_and_redact_nested_secrets() {
    for bad in [
        r#"{"scheme":"spika","value":""}"#,
        r#"{"scheme":"spika","header":"bad header","value":"v"}"#,
        r#"{"scheme":"outverse","auth":{"scheme":"token","header":"","value":"v"}}"#,
        r#"{"scheme":"featureos","auth":{"scheme":"basic","username":"","password":"p"}}"#,
    ] {
        let parsed: VerifyConfig = serde_json::from_str(bad).unwrap();
        assert!(parsed.validate().is_err(), "{bad}");
    }
    assert!(serde_json::from_str::<VerifyConfig>(
        r#"{"scheme":"outverse","auth":{"scheme":"github","secret":"x"}}"#
    )
    .is_err());
    let c = config(
        r#"{"scheme":"featureos","auth":{"scheme":"basic","username":"fo","password":"hunter2"}}"#,
    );
    let shown = serde_json::to_string(&c.redacted()).unwrap();
    assert_eq!(
        shown,
        r#"{"scheme":"featureos","auth":{"scheme":"basic","username":"fo","password":"***"}}"#
    );
}

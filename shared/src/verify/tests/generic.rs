//! `none`, `token` and `hmac`.

use super::*;

const BODY: &[u8] = br#"{"type":"order.created","id":42}"#;

// ---- none -----------------------------------------------------------------------------------

#[test]
fn none_accepts_anything() {
    let c = config(r#"{"scheme":"none"}"#);
    assert_eq!(TestRequest::post(BODY).verify(&c), Ok(()));
    assert_eq!(TestRequest::post(tamper(BODY)).verify(&c), Ok(()));
    assert!(c.get_handshake(&TestRequest::get("a=b").req()).is_none());
    assert!(c.credential_headers().is_empty());
    let meta = c.describe(&TestRequest::post(BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("order.created"));
    assert_eq!(meta.delivery_id, None);
}

// ---- token ----------------------------------------------------------------------------------

fn token() -> VerifyConfig {
    config(r#"{"scheme":"token","header":"Verification-Signature","value":"tok_s3cret"}"#)
}

#[test]
fn token_valid() {
    let r = TestRequest::post(BODY).header("verification-signature", "tok_s3cret");
    assert_eq!(r.verify(&token()), Ok(()));
}

#[test]
fn token_does_not_cover_the_body() {
    // A token authenticates the sender only; documenting that a changed body still passes.
    let r = TestRequest::post(tamper(BODY)).header("Verification-Signature", "tok_s3cret");
    assert_eq!(r.verify(&token()), Ok(()));
}

#[test]
fn token_wrong_value() {
    for sent in ["tok_s3cre", "tok_s3cret ", "TOK_S3CRET", "tok_s3cret2"] {
        let r = TestRequest::post(BODY).header("Verification-Signature", sent);
        assert_eq!(r.verify(&token()), INVALID, "{sent}");
    }
    // Non-ASCII bytes are simply a different token, not a malformed one.
    let r = TestRequest::post(BODY).header("Verification-Signature", b"tok_\xffs3cret");
    assert_eq!(r.verify(&token()), INVALID);
}

#[test]
fn token_missing_header() {
    assert_eq!(
        TestRequest::post(BODY).verify(&token()),
        missing("Verification-Signature")
    );
    let r = TestRequest::post(BODY).header("Verification-Signature", "");
    assert_eq!(r.verify(&token()), missing("Verification-Signature"));
}

#[test]
fn token_credential_header_is_lowercase() {
    assert_eq!(token().credential_headers(), vec!["verification-signature"]);
}

#[test]
fn token_large_unicode_body() {
    let r = TestRequest::post(unicode_body()).header("Verification-Signature", "tok_s3cret");
    assert_eq!(r.verify(&token()), Ok(()));
}

// ---- hmac -----------------------------------------------------------------------------------

const HMAC_SECRET: &str = "It's a Secret to Everybody";

fn github_like() -> VerifyConfig {
    config(&format!(
        r#"{{"scheme":"hmac","header":"X-Hub-Signature-256","algorithm":"sha256","encoding":"hex","prefix":"sha256=","secret":"{HMAC_SECRET}"}}"#
    ))
}

fn sign_hex(body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(HMAC_SECRET.as_bytes(), body))
}

#[test]
fn hmac_matches_githubs_published_vector() {
    // docs.github.com, "Validating webhook deliveries": secret, payload and signature.
    let r = TestRequest::post("Hello, World!").header(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    assert_eq!(r.verify(&github_like()), Ok(()));
}

#[test]
fn hmac_valid_hex_and_uppercase_hex() {
    let sig = sign_hex(BODY);
    assert_eq!(
        TestRequest::post(BODY)
            .header("x-hub-signature-256", &sig)
            .verify(&github_like()),
        Ok(())
    );
    let upper = format!("sha256={}", sig["sha256=".len()..].to_ascii_uppercase());
    assert_eq!(
        TestRequest::post(BODY)
            .header("x-hub-signature-256", upper)
            .verify(&github_like()),
        Ok(())
    );
}

#[test]
fn hmac_tampered_body() {
    let r = TestRequest::post(tamper(BODY)).header("X-Hub-Signature-256", sign_hex(BODY));
    assert_eq!(r.verify(&github_like()), INVALID);
}

#[test]
fn hmac_wrong_secret() {
    let sig = format!("sha256={}", hmac_sha256_hex(b"another secret", BODY));
    let r = TestRequest::post(BODY).header("X-Hub-Signature-256", sig);
    assert_eq!(r.verify(&github_like()), INVALID);
}

#[test]
fn hmac_missing_header() {
    assert_eq!(
        TestRequest::post(BODY).verify(&github_like()),
        missing("X-Hub-Signature-256")
    );
}

#[test]
fn hmac_malformed_header() {
    let sig = sign_hex(BODY);
    for bad in [
        "sha256=zz".to_owned(),
        "sha256=abc".to_owned(),
        sig.replace("sha256=", "sha1="),
        sig.replace("sha256=", ""),
        format!("{}ab", sig),
    ] {
        let r = TestRequest::post(BODY).header("X-Hub-Signature-256", &bad);
        assert_eq!(
            r.verify(&github_like()),
            malformed("X-Hub-Signature-256"),
            "{bad}"
        );
    }
    let r = TestRequest::post(BODY).header("X-Hub-Signature-256", b"sha256=\xff");
    assert_eq!(r.verify(&github_like()), malformed("X-Hub-Signature-256"));
}

#[test]
fn hmac_any_of_several_signatures() {
    let good = sign_hex(BODY);
    let other = format!("sha256={}", hmac_sha256_hex(b"old secret", BODY));
    // Listed in one value…
    let r = TestRequest::post(BODY).header("X-Hub-Signature-256", format!("{other}, {good}"));
    assert_eq!(r.verify(&github_like()), Ok(()));
    let r = TestRequest::post(BODY).header("X-Hub-Signature-256", format!("{good} {other}"));
    assert_eq!(r.verify(&github_like()), Ok(()));
    // …or in repeated headers.
    let r = TestRequest::post(BODY)
        .header("X-Hub-Signature-256", &other)
        .header("X-Hub-Signature-256", &good);
    assert_eq!(r.verify(&github_like()), Ok(()));
    // None matching is invalid, not malformed.
    let r = TestRequest::post(BODY).header("X-Hub-Signature-256", format!("{other},{other}"));
    assert_eq!(r.verify(&github_like()), INVALID);
}

#[test]
fn hmac_base64_sha1_without_prefix() {
    let c = config(
        r#"{"scheme":"hmac","header":"X-Signature","algorithm":"sha1","encoding":"base64","secret":"k"}"#,
    );
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(b"k").unwrap();
    mac.update(BODY);
    let sig = b64(&mac.finalize().into_bytes());
    assert_eq!(
        TestRequest::post(BODY)
            .header("X-Signature", &sig)
            .verify(&c),
        Ok(())
    );
    assert_eq!(
        TestRequest::post(tamper(BODY))
            .header("X-Signature", &sig)
            .verify(&c),
        INVALID
    );
    // A SHA-256-sized MAC is not a SHA-1 signature at all.
    let long = hmac_sha256_b64(b"k", BODY);
    assert_eq!(
        TestRequest::post(BODY)
            .header("X-Signature", long)
            .verify(&c),
        malformed("X-Signature")
    );
}

#[test]
fn hmac_large_unicode_body_byte_for_byte() {
    let body = unicode_body();
    let r = TestRequest::post(&body).header("X-Hub-Signature-256", sign_hex(&body));
    assert_eq!(r.verify(&github_like()), Ok(()));
    let r = TestRequest::post(tamper(&body)).header("X-Hub-Signature-256", sign_hex(&body));
    assert_eq!(r.verify(&github_like()), INVALID);
}

#[test]
fn hmac_describe_uses_body_type() {
    let meta = github_like().describe(&TestRequest::post(BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("order.created"));
    assert_eq!(meta.delivery_id, None);
    let meta = github_like().describe(&TestRequest::post("not json").req(), None);
    assert_eq!(meta, EventMeta::default());
}

// ---- basic ----------------------------------------------------------------------------------

fn basic() -> VerifyConfig {
    config(r#"{"scheme":"basic","username":"hookhub","password":"p@ss:word"}"#)
}

fn authorization(user_pass: &[u8]) -> TestRequest {
    TestRequest::post(BODY).header("Authorization", format!("Basic {}", b64(user_pass)))
}

#[test]
fn basic_valid_and_wrong_credentials() {
    // The password may contain colons: only the first one separates.
    assert_eq!(authorization(b"hookhub:p@ss:word").verify(&basic()), Ok(()));
    let lower = TestRequest::post(BODY).header(
        "authorization",
        format!("basic {}", b64(b"hookhub:p@ss:word")),
    );
    assert_eq!(lower.verify(&basic()), Ok(()));
    for wrong in [
        &b"hookhub:p@ss:wor"[..],
        b"hookhub:",
        b"Hookhub:p@ss:word",
        b":p@ss:word",
        b"hookhub:p@ss:word ",
    ] {
        assert_eq!(
            authorization(wrong).verify(&basic()),
            INVALID,
            "{}",
            String::from_utf8_lossy(wrong)
        );
    }
    assert_eq!(basic().credential_headers(), vec!["authorization"]);
}

#[test]
fn basic_missing_and_malformed() {
    assert_eq!(
        TestRequest::post(BODY).verify(&basic()),
        missing("Authorization")
    );
    for bad in [
        "Bearer abc",
        "Basic",
        "Basic !!!",
        &format!("Basic {}", b64(b"no-colon")),
    ] {
        let r = TestRequest::post(BODY).header("Authorization", bad);
        assert_eq!(r.verify(&basic()), malformed("Authorization"), "{bad}");
    }
}

#[test]
fn basic_validation_and_redaction() {
    for bad in [
        r#"{"scheme":"basic","username":"","password":"p"}"#,
        r#"{"scheme":"basic","username":"a:b","password":"p"}"#,
        r#"{"scheme":"basic","username":"a","password":""}"#,
    ] {
        assert!(
            serde_json::from_str::<VerifyConfig>(bad)
                .unwrap()
                .validate()
                .is_err(),
            "{bad}"
        );
    }
    let shown = serde_json::to_string(&basic().redacted()).unwrap();
    assert_eq!(
        shown,
        r#"{"scheme":"basic","username":"hookhub","password":"***"}"#
    );
}

// ---- hmac with a signed timestamp, sha512 ---------------------------------------------------

fn timed() -> VerifyConfig {
    config(
        r#"{"scheme":"hmac","header":"X-Webhook-Signature","algorithm":"sha256","encoding":"hex","secret":"k","timestamp_header":"X-Webhook-Timestamp","template":"v1:{timestamp}:{body}"}"#,
    )
}

fn timed_request(t: &str, body: &[u8]) -> TestRequest {
    let mut msg = format!("v1:{t}:").into_bytes();
    msg.extend_from_slice(body);
    TestRequest::post(body)
        .header("X-Webhook-Signature", hmac_sha256_hex(b"k", &msg))
        .header("X-Webhook-Timestamp", t)
}

#[test]
fn hmac_template_with_timestamp() {
    assert_eq!(
        timed_request(&ts().to_string(), BODY).verify(&timed()),
        Ok(())
    );
    assert_eq!(
        timed_request(&ts().to_string(), BODY)
            .body(tamper(BODY))
            .verify(&timed()),
        INVALID
    );
    let moved = with_header(
        timed_request(&ts().to_string(), BODY),
        "X-Webhook-Timestamp",
        (ts() + 1).to_string(),
    );
    assert_eq!(moved.verify(&timed()), INVALID);
    for (offset, expected) in [(-301, OUT_OF_RANGE), (300, Ok(())), (301, OUT_OF_RANGE)] {
        assert_eq!(
            timed_request(&(ts() + offset).to_string(), BODY).verify(&timed()),
            expected,
            "{offset}"
        );
    }
    // Millisecond timestamps are recognised by size.
    let ms = now().timestamp_millis();
    assert_eq!(
        timed_request(&ms.to_string(), BODY).verify(&timed()),
        Ok(())
    );
    assert_eq!(
        timed_request(&(ms - 301_000).to_string(), BODY).verify(&timed()),
        OUT_OF_RANGE
    );
    assert_eq!(
        timed_request(&ts().to_string(), BODY)
            .without("X-Webhook-Timestamp")
            .verify(&timed()),
        missing("X-Webhook-Timestamp")
    );
    assert_eq!(
        timed_request("noon", BODY).verify(&timed()),
        malformed("X-Webhook-Timestamp")
    );
    let body = unicode_body();
    assert_eq!(
        timed_request(&ts().to_string(), &body).verify(&timed()),
        Ok(())
    );
}

#[test]
fn hmac_default_timestamp_template_and_sha512() {
    let c = config(
        r#"{"scheme":"hmac","header":"X-Sig","algorithm":"sha512","encoding":"base64","secrets":["old","new"],"timestamp_header":"X-Ts"}"#,
    );
    let t = ts().to_string();
    let mut mac = <Hmac<sha2::Sha512> as Mac>::new_from_slice(b"new").unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(BODY);
    let sig = b64(&mac.finalize().into_bytes());
    let r = TestRequest::post(BODY)
        .header("X-Sig", &sig)
        .header("X-Ts", &t);
    assert_eq!(r.verify(&c), Ok(()));
    assert_eq!(r.body(tamper(BODY)).verify(&c), INVALID);
}

#[test]
fn hmac_template_validation() {
    let base =
        r#""scheme":"hmac","header":"X-Sig","algorithm":"sha256","encoding":"hex","secret":"k""#;
    for bad in [
        r#""template":"{timestamp}.{body}""#,
        r#""timestamp_header":"X-Ts","template":"{body}""#,
        r#""template":"{body}{body}""#,
        r#""template":"{id}.{body}""#,
        r#""template":"{body""#,
        r#""template":"body}""#,
        r#""timestamp_header":"bad header""#,
    ] {
        let json = format!("{{{base},{bad}}}");
        assert!(
            serde_json::from_str::<VerifyConfig>(&json)
                .unwrap()
                .validate()
                .is_err(),
            "{json}"
        );
    }
    for good in [
        r#""template":"{body}""#,
        r#""timestamp_header":"X-Ts""#,
        r#""timestamp_header":"X-Ts","template":"{timestamp}{body}""#,
    ] {
        let json = format!("{{{base},{good}}}");
        serde_json::from_str::<VerifyConfig>(&json)
            .unwrap()
            .validate()
            .unwrap();
    }
}

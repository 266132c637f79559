//! `github`.

use super::*;

const BODY: &[u8] = br#"{"action":"opened","issue":{"number":1}}"#;
const SIG: &str = "X-Hub-Signature-256";

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    TestRequest::post(body).header(
        SIG,
        format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), body)),
    )
}

fn github() -> VerifyConfig {
    config(r#"{"scheme":"github","secret":"right-secret"}"#)
}

#[test]
fn github_published_vector() {
    // docs.github.com, "Validating webhook deliveries", test values.
    let c = config(r#"{"scheme":"github","secret":"It's a Secret to Everybody"}"#);
    let r = TestRequest::post("Hello, World!").header(
        SIG,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    assert_eq!(r.verify(&c), Ok(()));
}

#[test]
fn github_signature_battery() {
    hmac_battery(r#""scheme":"github""#, BODY, &unicode_body(), &sign);
}

#[test]
fn github_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(BODY).verify(&github()), missing(SIG));
    // The legacy SHA-1 header alone is not accepted.
    let legacy = TestRequest::post(BODY).header(
        "X-Hub-Signature",
        format!("sha1={}", hmac_sha1_hex(b"right-secret", BODY)),
    );
    assert_eq!(legacy.verify(&github()), missing(SIG));
    let good = hmac_sha256_hex(b"right-secret", BODY);
    for bad in [
        good.clone(),
        format!("sha1={good}"),
        "sha256=xyz".to_owned(),
        format!("sha256={}", &good[2..]),
    ] {
        let r = TestRequest::post(BODY).header(SIG, &bad);
        assert_eq!(r.verify(&github()), malformed(SIG), "{bad}");
    }
}

#[test]
fn github_form_encoded_body() {
    let json = r#"{"action":"opened","issue":{"title":"a+b & c=d é"}}"#;
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", json)
        .finish();
    let r = sign("right-secret", body.as_bytes())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-GitHub-Event", "issues");
    assert_eq!(r.verify(&github()), Ok(()));
    let parsed = github().json_for_typing(&r.req()).unwrap();
    assert_eq!(parsed["issue"]["title"], "a+b & c=d é");
    // The receiver passes no JSON for a form body; describe parses the payload itself.
    assert_eq!(
        github().describe(&r.req(), None).event_type.as_deref(),
        Some("issues.opened")
    );
}

#[test]
fn github_describe() {
    let r = sign("right-secret", BODY)
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    let meta = github().describe(&r.req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("issues.opened"));
    assert_eq!(
        meta.delivery_id.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    let ping = sign("right-secret", br#"{"zen":"Keep it logically awesome."}"#)
        .header("X-GitHub-Event", "ping");
    assert_eq!(
        github().describe(&ping.req(), None).event_type.as_deref(),
        Some("ping")
    );
    assert!(github().post_handshake(&ping.req(), None).is_none());
}

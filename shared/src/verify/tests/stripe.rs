//! `stripe`.

use chrono::Duration;

use super::*;

const BODY: &[u8] =
    br#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded"}"#;
const SIG: &str = "Stripe-Signature";
const SECRET: &str = "whsec_test_secret";

fn v1(secret: &str, t: i64, body: &[u8]) -> String {
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    hmac_sha256_hex(secret.as_bytes(), &msg)
}

fn sign_at(secret: &str, body: &[u8], t: i64) -> TestRequest {
    TestRequest::post(body).header(SIG, format!("t={t},v1={}", v1(secret, t, body)))
}

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    sign_at(secret, body, ts())
}

fn stripe() -> VerifyConfig {
    config(&format!(r#"{{"scheme":"stripe","secret":"{SECRET}"}}"#))
}

#[test]
fn stripe_signature_battery() {
    hmac_battery(r#""scheme":"stripe""#, BODY, &unicode_body(), &sign);
}

#[test]
fn stripe_any_v1_passes_and_v0_is_ignored() {
    let t = ts();
    let good = v1(SECRET, t, BODY);
    let other = v1("whsec_other", t, BODY);
    let header = format!("t={t},v1={other},v1={good},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39");
    assert_eq!(
        TestRequest::post(BODY)
            .header(SIG, header)
            .verify(&stripe()),
        Ok(())
    );
    let header = format!("t={t},v1={other},v0={good}");
    assert_eq!(
        TestRequest::post(BODY)
            .header(SIG, header)
            .verify(&stripe()),
        INVALID
    );
}

#[test]
fn stripe_key_is_the_whole_secret_string() {
    // Keyed with the base64-decoded part instead (the Standard Webhooks way) it must fail.
    use base64::Engine;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let c = config(&format!(r#"{{"scheme":"stripe","secret":"{secret}"}}"#));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&secret[6..])
        .unwrap();
    let mut msg = format!("{}.", ts()).into_bytes();
    msg.extend_from_slice(BODY);
    let wrong = hmac_sha256_hex(&decoded, &msg);
    let r = TestRequest::post(BODY).header(SIG, format!("t={},v1={wrong}", ts()));
    assert_eq!(r.verify(&c), INVALID);
    assert_eq!(sign(secret, BODY).verify(&c), Ok(()));
}

#[test]
fn stripe_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(BODY).verify(&stripe()), missing(SIG));
    let good = v1(SECRET, ts(), BODY);
    for bad in [
        format!("v1={good}"),
        format!("t=soon,v1={good}"),
        format!("t={}", ts()),
        format!("t={},v1=zz", ts()),
        format!("t={},v0={good}", ts()),
        "garbage".to_owned(),
    ] {
        let r = TestRequest::post(BODY).header(SIG, &bad);
        assert_eq!(r.verify(&stripe()), malformed(SIG), "{bad}");
    }
}

#[test]
fn stripe_stale_and_future_timestamps() {
    for (offset, expected) in [
        (-301, OUT_OF_RANGE),
        (-300, Ok(())),
        (300, Ok(())),
        (301, OUT_OF_RANGE),
    ] {
        let r = sign_at(SECRET, BODY, ts() + offset);
        assert_eq!(r.verify(&stripe()), expected, "offset {offset}");
    }
    let c = config(&format!(
        r#"{{"scheme":"stripe","secret":"{SECRET}","tolerance_seconds":600}}"#
    ));
    assert_eq!(
        sign(SECRET, BODY)
            .at(now() + Duration::seconds(599))
            .verify(&c),
        Ok(())
    );
}

#[test]
fn stripe_describe() {
    let meta = stripe().describe(&sign(SECRET, BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("payment_intent.succeeded"));
    assert_eq!(
        meta.delivery_id.as_deref(),
        Some("evt_1NG8Du2eZvKYlo2CUI79vXWy")
    );
}

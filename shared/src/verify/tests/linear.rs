//! `linear`.

use super::*;

const SIG: &str = "Linear-Signature";

fn body_at_ms(ms: i64) -> Vec<u8> {
    format!(r#"{{"action":"create","type":"Issue","data":{{"id":"iss_1","title":"Grüße 🚀"}},"url":"https://linear.app/x","webhookTimestamp":{ms}}}"#).into_bytes()
}

fn body() -> Vec<u8> {
    body_at_ms(now().timestamp_millis())
}

/// The unicode body with Linear's timestamp field added.
fn big_body() -> Vec<u8> {
    let mut big = unicode_body();
    big.pop();
    big.extend_from_slice(
        format!(r#","webhookTimestamp":{}}}"#, now().timestamp_millis()).as_bytes(),
    );
    big
}

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    TestRequest::post(body).header(SIG, hmac_sha256_hex(secret.as_bytes(), body))
}

fn linear() -> VerifyConfig {
    config(r#"{"scheme":"linear","secret":"right-secret"}"#)
}

#[test]
fn linear_signature_battery() {
    hmac_battery(r#""scheme":"linear""#, &body(), &big_body(), &sign);
}

#[test]
fn linear_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(body()).verify(&linear()), missing(SIG));
    let good = hmac_sha256_hex(b"right-secret", &body());
    for bad in [
        format!("sha256={good}"),
        good[..63].to_owned(),
        "zz".repeat(32),
    ] {
        let r = TestRequest::post(body()).header(SIG, &bad);
        assert_eq!(r.verify(&linear()), malformed(SIG), "{bad}");
    }
}

#[test]
fn linear_body_timestamp_within_a_minute() {
    let ms = now().timestamp_millis();
    for (offset_ms, expected) in [
        (-61_000, OUT_OF_RANGE),
        (-59_000, Ok(())),
        (59_000, Ok(())),
        (61_000, OUT_OF_RANGE),
    ] {
        let r = sign("right-secret", &body_at_ms(ms + offset_ms));
        assert_eq!(r.verify(&linear()), expected, "offset {offset_ms} ms");
    }
    // Signed, but with no timestamp to place it in time.
    let r = sign("right-secret", br#"{"action":"create","type":"Issue"}"#);
    assert_eq!(r.verify(&linear()), OUT_OF_RANGE);
    let c = config(r#"{"scheme":"linear","secret":"right-secret","tolerance_seconds":120}"#);
    assert_eq!(
        sign("right-secret", &body_at_ms(ms - 90_000)).verify(&c),
        Ok(())
    );
}

#[test]
fn linear_describe() {
    let r = sign("right-secret", &body())
        .header("Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72");
    let meta = linear().describe(&r.req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("Issue.create"));
    assert_eq!(
        meta.delivery_id.as_deref(),
        Some("234d1a4e-b617-4388-90fe-adc3633d6b72")
    );
}

//! `bettermode`.

use super::*;

const SIG: &str = "X-Bettermode-Signature";
const TS: &str = "X-Bettermode-Request-Timestamp";
const BODY: &[u8] = br#"{"networkId":"CAxOmI7I7X","context":"NETWORK","type":"SUBSCRIPTION","id":"whd_1","data":{"id":"evt_42","name":"post.published","noun":"POST","verb":"PUBLISHED"}}"#;

fn sign_at_ms(secret: &str, body: &[u8], ms: i64) -> TestRequest {
    let mut msg = format!("{ms}:").into_bytes();
    msg.extend_from_slice(body);
    TestRequest::post(body)
        .header(SIG, hmac_sha256_hex(secret.as_bytes(), &msg))
        .header(TS, ms.to_string())
}

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    sign_at_ms(secret, body, now().timestamp_millis())
}

/// The same signature under Tribe's header names.
fn sign_tribe(secret: &str, body: &[u8]) -> TestRequest {
    let r = sign(secret, body);
    let sig = r.headers[SIG].clone();
    let ts = r.headers[TS].clone();
    r.without(SIG)
        .without(TS)
        .header("X-Tribe-Signature", sig.as_bytes())
        .header("X-Tribe-Request-Timestamp", ts.as_bytes())
}

fn bettermode() -> VerifyConfig {
    config(r#"{"scheme":"bettermode","secret":"right-secret"}"#)
}

#[test]
fn bettermode_signature_battery() {
    hmac_battery(r#""scheme":"bettermode""#, BODY, &unicode_body(), &sign);
}

#[test]
fn bettermode_legacy_tribe_headers() {
    hmac_battery(
        r#""scheme":"bettermode""#,
        BODY,
        &unicode_body(),
        &sign_tribe,
    );
    let r = sign_tribe("right-secret", BODY).without("X-Tribe-Request-Timestamp");
    assert_eq!(
        r.verify(&bettermode()),
        missing("X-Tribe-Request-Timestamp")
    );
}

#[test]
fn bettermode_missing_and_malformed_headers() {
    assert_eq!(
        sign("right-secret", BODY)
            .without(SIG)
            .verify(&bettermode()),
        missing(SIG)
    );
    assert_eq!(
        sign("right-secret", BODY).without(TS).verify(&bettermode()),
        missing(TS)
    );
    let r = with_header(sign("right-secret", BODY), TS, "now");
    assert_eq!(r.verify(&bettermode()), malformed(TS));
    let r = with_header(sign("right-secret", BODY), SIG, "sha256=abc");
    assert_eq!(r.verify(&bettermode()), malformed(SIG));
}

#[test]
fn bettermode_timestamps_are_milliseconds() {
    let ms = now().timestamp_millis();
    for (offset_ms, expected) in [
        (-301_000, OUT_OF_RANGE),
        (-299_000, Ok(())),
        (299_000, Ok(())),
        (301_000, OUT_OF_RANGE),
    ] {
        let r = sign_at_ms("right-secret", BODY, ms + offset_ms);
        assert_eq!(r.verify(&bettermode()), expected, "offset {offset_ms} ms");
    }
    // A timestamp in seconds reads as January 1970 in milliseconds.
    let r = sign_at_ms("right-secret", BODY, ts());
    assert_eq!(r.verify(&bettermode()), OUT_OF_RANGE);
}

#[test]
fn bettermode_test_challenge_is_answered() {
    let body = br#"{"networkId":"CAxOmI7I7X","context":"NETWORK","currentSettings":[],"type":"TEST","data":{"challenge":"d77dae12ea612cf647d6e2e78dd2b7470e4e4358"}}"#;
    let r = sign("right-secret", body);
    assert_eq!(r.verify(&bettermode()), Ok(()));
    let answer = bettermode().post_handshake(&r.req(), None).unwrap();
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (200, "application/json")
    );
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type":"TEST","status":"SUCCEEDED","data":{"challenge":"d77dae12ea612cf647d6e2e78dd2b7470e4e4358"}})
    );
    assert!(bettermode()
        .post_handshake(&sign("right-secret", BODY).req(), None)
        .is_none());
}

#[test]
fn bettermode_describe() {
    let meta = bettermode().describe(&sign("right-secret", BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("post.published"));
    assert_eq!(meta.delivery_id.as_deref(), Some("evt_42"));
    let top_level_only = br#"{"id":"whd_2","data":{"name":"member.verified"}}"#;
    let meta = bettermode().describe(&TestRequest::post(top_level_only).req(), None);
    assert_eq!(meta.delivery_id.as_deref(), Some("whd_2"));
}

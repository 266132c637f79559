//! `zoom`.

use super::*;

const SIG: &str = "x-zm-signature";
const TS: &str = "x-zm-request-timestamp";
const BODY: &[u8] = br#"{"event":"meeting.started","event_ts":1626230691572,"payload":{"account_id":"AAAAAABBBB","object":{"id":"1234567890"}}}"#;

fn sign_at(secret: &str, body: &[u8], t: i64) -> TestRequest {
    let mut msg = format!("v0:{t}:").into_bytes();
    msg.extend_from_slice(body);
    TestRequest::post(body)
        .header(
            SIG,
            format!("v0={}", hmac_sha256_hex(secret.as_bytes(), &msg)),
        )
        .header(TS, t.to_string())
}

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    sign_at(secret, body, ts())
}

fn zoom() -> VerifyConfig {
    config(r#"{"scheme":"zoom","secret":"right-secret"}"#)
}

#[test]
fn zoom_signature_battery() {
    hmac_battery(r#""scheme":"zoom""#, BODY, &unicode_body(), &sign);
}

#[test]
fn zoom_missing_and_malformed_headers() {
    assert_eq!(
        sign("right-secret", BODY).without(SIG).verify(&zoom()),
        missing(SIG)
    );
    assert_eq!(
        sign("right-secret", BODY).without(TS).verify(&zoom()),
        missing(TS)
    );
    let r = with_header(sign("right-secret", BODY), TS, "12:00");
    assert_eq!(r.verify(&zoom()), malformed(TS));
    let bare = hmac_sha256_hex(b"right-secret", BODY);
    let r = with_header(sign("right-secret", BODY), SIG, bare);
    assert_eq!(r.verify(&zoom()), malformed(SIG));
}

#[test]
fn zoom_stale_and_future_timestamps() {
    for (offset, expected) in [
        (-301, OUT_OF_RANGE),
        (-300, Ok(())),
        (300, Ok(())),
        (301, OUT_OF_RANGE),
    ] {
        let r = sign_at("right-secret", BODY, ts() + offset);
        assert_eq!(r.verify(&zoom()), expected, "offset {offset}");
    }
}

#[test]
fn zoom_url_validation_is_answered_with_the_current_secret() {
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let c = config(r#"{"scheme":"zoom","secrets":["right-secret","old-secret"]}"#);
    let r = sign("old-secret", body);
    assert_eq!(r.verify(&c), Ok(()));
    let answer = c.post_handshake(&r.req(), None).unwrap();
    assert_eq!(answer.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        json["encryptedToken"],
        hmac_sha256_hex(b"right-secret", b"qgg8vlvZRS6UYooatFL8Aw")
    );
    assert!(zoom()
        .post_handshake(&sign("right-secret", BODY).req(), None)
        .is_none());
}

#[test]
fn zoom_describe() {
    let meta = zoom().describe(&sign("right-secret", BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("meeting.started"));
    assert_eq!(meta.delivery_id, None);
}

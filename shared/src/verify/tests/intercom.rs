//! `intercom`.

use super::*;

const SIG: &str = "X-Hub-Signature";
const BODY: &[u8] = br#"{"type":"notification_event","id":"notif_ccd8a4d2","topic":"conversation.user.created","data":{"item":{}}}"#;

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    TestRequest::post(body).header(
        SIG,
        format!("sha1={}", hmac_sha1_hex(secret.as_bytes(), body)),
    )
}

fn intercom() -> VerifyConfig {
    config(r#"{"scheme":"intercom","secret":"right-secret"}"#)
}

#[test]
fn intercom_signature_battery() {
    hmac_battery(r#""scheme":"intercom""#, BODY, &unicode_body(), &sign);
}

#[test]
fn intercom_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(BODY).verify(&intercom()), missing(SIG));
    // A SHA-256 signature in the SHA-1 header is malformed, as is a missing prefix.
    let sha256 = format!("sha256={}", hmac_sha256_hex(b"right-secret", BODY));
    let bare = hmac_sha1_hex(b"right-secret", BODY);
    for bad in [sha256, bare, "sha1=0123".to_owned()] {
        let r = TestRequest::post(BODY).header(SIG, &bad);
        assert_eq!(r.verify(&intercom()), malformed(SIG), "{bad}");
    }
}

#[test]
fn intercom_ping_is_an_event() {
    let body = br#"{"type":"notification_event","topic":"ping","id":"notif_ping","data":{"item":{"type":"ping","message":"Hello"}}}"#;
    let r = sign("right-secret", body);
    assert_eq!(r.verify(&intercom()), Ok(()));
    assert!(intercom().post_handshake(&r.req(), None).is_none());
    assert_eq!(
        intercom().describe(&r.req(), None).event_type.as_deref(),
        Some("ping")
    );
}

#[test]
fn intercom_describe() {
    let meta = intercom().describe(&sign("right-secret", BODY).req(), None);
    assert_eq!(
        meta.event_type.as_deref(),
        Some("conversation.user.created")
    );
    assert_eq!(meta.delivery_id.as_deref(), Some("notif_ccd8a4d2"));
}

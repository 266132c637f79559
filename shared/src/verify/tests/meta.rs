//! `meta`.

use super::*;

const SIG: &str = "X-Hub-Signature-256";
const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{}}]}]}"#;

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    TestRequest::post(body).header(
        SIG,
        format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), body)),
    )
}

fn meta() -> VerifyConfig {
    config(r#"{"scheme":"meta","secret":"right-secret","verify_token":"tok-123"}"#)
}

#[test]
fn meta_signature_battery() {
    hmac_battery(
        r#""scheme":"meta","verify_token":"tok-123""#,
        BODY,
        &unicode_body(),
        &sign,
    );
}

#[test]
fn meta_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(BODY).verify(&meta()), missing(SIG));
    let r = TestRequest::post(BODY).header(SIG, hmac_sha256_hex(b"right-secret", BODY));
    assert_eq!(r.verify(&meta()), malformed(SIG));
}

#[test]
fn meta_get_handshake() {
    let ok =
        TestRequest::get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok-123");
    let answer = meta().get_handshake(&ok.req()).unwrap().unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/plain"));
    assert_eq!(&answer.body[..], b"1158201444");
    for refused in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok-124",
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok-12",
        "hub.mode=subscribe&hub.challenge=1158201444",
        "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=tok-123",
        "hub.mode=subscribe&hub.verify_token=tok-123",
        "",
    ] {
        let r = TestRequest::get(refused);
        assert_eq!(
            meta().get_handshake(&r.req()),
            Some(Err(VerifyError::HandshakeForbidden)),
            "{refused}"
        );
    }
    assert_eq!(VerifyError::HandshakeForbidden.http_status(), 403);
    // Percent-encoded tokens are compared decoded.
    let c = config(r#"{"scheme":"meta","secret":"s","verify_token":"a b&c"}"#);
    let r = TestRequest::get("hub.mode=subscribe&hub.challenge=x&hub.verify_token=a+b%26c");
    assert!(matches!(c.get_handshake(&r.req()), Some(Ok(_))));
}

#[test]
fn meta_describe() {
    let meta_cfg = meta();
    let m = meta_cfg.describe(&sign("right-secret", BODY).req(), None);
    assert_eq!(
        m.event_type.as_deref(),
        Some("whatsapp_business_account.messages")
    );
    let messenger = br#"{"object":"page","entry":[{"id":"1","messaging":[{"message":{}}]}]}"#;
    let m = meta_cfg.describe(&TestRequest::post(messenger).req(), None);
    assert_eq!(m.event_type.as_deref(), Some("page.messaging"));
    let bare = br#"{"object":"instagram","entry":[]}"#;
    let m = meta_cfg.describe(&TestRequest::post(bare).req(), None);
    assert_eq!(m.event_type.as_deref(), Some("instagram"));
}

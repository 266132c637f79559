//! `dropbox`.

use super::*;

const SIG: &str = "X-Dropbox-Signature";
const BODY: &[u8] = br#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[12345678]}}"#;

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    TestRequest::post(body).header(SIG, hmac_sha256_hex(secret.as_bytes(), body))
}

fn dropbox() -> VerifyConfig {
    config(r#"{"scheme":"dropbox","secret":"right-secret"}"#)
}

#[test]
fn dropbox_signature_battery() {
    hmac_battery(r#""scheme":"dropbox""#, BODY, &unicode_body(), &sign);
}

#[test]
fn dropbox_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(BODY).verify(&dropbox()), missing(SIG));
    let r = TestRequest::post(BODY).header(SIG, "sha256=00");
    assert_eq!(r.verify(&dropbox()), malformed(SIG));
}

#[test]
fn dropbox_challenge_is_echoed() {
    let r = TestRequest::get("challenge=Z3r0%3Cscript%3E");
    let answer = dropbox().get_handshake(&r.req()).unwrap().unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/plain"));
    assert_eq!(&answer.body[..], b"Z3r0<script>");
    assert!(answer
        .headers
        .contains(&("X-Content-Type-Options".to_owned(), "nosniff".to_owned())));
    assert!(dropbox()
        .get_handshake(&TestRequest::get("other=1").req())
        .is_none());
}

#[test]
fn dropbox_describe() {
    let meta = dropbox().describe(&sign("right-secret", BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("list_folder"));
}

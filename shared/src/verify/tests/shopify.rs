//! `shopify`.

use super::*;

const SIG: &str = "X-Shopify-Hmac-Sha256";
const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;

fn sign(secret: &str, body: &[u8]) -> TestRequest {
    TestRequest::post(body).header(SIG, hmac_sha256_b64(secret.as_bytes(), body))
}

fn shopify() -> VerifyConfig {
    config(r#"{"scheme":"shopify","secret":"right-secret"}"#)
}

#[test]
fn shopify_signature_battery() {
    hmac_battery(r#""scheme":"shopify""#, BODY, &unicode_body(), &sign);
}

#[test]
fn shopify_missing_and_malformed_headers() {
    assert_eq!(TestRequest::post(BODY).verify(&shopify()), missing(SIG));
    // Hex is not what Shopify sends: it decodes as base64 of the wrong length.
    let hex_sig = hmac_sha256_hex(b"right-secret", BODY);
    for bad in [hex_sig, "not base64!".to_owned(), "c2hvcnQ=".to_owned()] {
        let r = TestRequest::post(BODY).header(SIG, &bad);
        assert_eq!(r.verify(&shopify()), malformed(SIG), "{bad}");
    }
}

#[test]
fn shopify_describe() {
    let r = sign("right-secret", BODY)
        .header("X-Shopify-Topic", "orders/create")
        .header(
            "X-Shopify-Webhook-Id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        );
    let meta = shopify().describe(&r.req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("orders/create"));
    assert_eq!(
        meta.delivery_id.as_deref(),
        Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    );
}

//! `twilio`.

use sha2::Digest;

use super::*;

const SIG: &str = "X-Twilio-Signature";
const URL: &str = "https://hooks.example.com/webhooks/twilio";

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Twilio's algorithm, written out independently: URL + sorted name/value pairs, HMAC-SHA1.
fn signature(token: &str, url: &str, body: &[u8]) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    pairs.sort();
    let mut data = url.to_owned();
    for (k, v) in pairs {
        data.push_str(&k);
        data.push_str(&v);
    }
    b64(&hex::decode(hmac_sha1_hex(token.as_bytes(), data.as_bytes())).unwrap())
}

/// Form bodies are signed through their params; JSON bodies through `bodySHA256`.
fn sign(token: &str, body: &[u8]) -> TestRequest {
    if body.starts_with(b"{") {
        let url = format!(
            "{URL}?bodySHA256={}",
            hex::encode(sha2::Sha256::digest(body))
        );
        TestRequest::post(body)
            .header(SIG, signature(token, &url, b""))
            .header("Content-Type", "application/json")
            .url(&url)
    } else {
        TestRequest::post(body)
            .header(SIG, signature(token, URL, body))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .url(URL)
    }
}

fn sms() -> Vec<u8> {
    form(&[
        ("MessageSid", "SM1"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
        ("Body", "Grüße + 🚀 & more=yes"),
        ("SmsStatus", "received"),
    ])
    .into_bytes()
}

fn twilio() -> VerifyConfig {
    config(r#"{"scheme":"twilio","secret":"right-secret"}"#)
}

#[test]
fn twilio_published_vector() {
    // Twilio's request-validation example (TwilioDevEd api-snippets): token, URL, params, signature.
    let c = config(r#"{"scheme":"twilio","secret":"12345"}"#);
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let body = form(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675310"),
        ("Digits", "1234"),
        ("From", "+14158675310"),
        ("To", "+18005551212"),
    ]);
    let r = TestRequest::post(&body)
        .header(SIG, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .url(url);
    assert_eq!(r.verify(&c), Ok(()));
    assert_eq!(
        r.url("https://mycompany.com/myapp.php?foo=1&bar=3")
            .verify(&c),
        INVALID
    );
}

#[test]
fn twilio_signature_battery() {
    // The form body covers the form-params path, the unicode JSON body the bodySHA256 path.
    hmac_battery(r#""scheme":"twilio""#, &sms(), &unicode_body(), &sign);
}

#[test]
fn twilio_json_body_must_match_body_sha256() {
    let body = br#"{"type":"com.twilio.messaging.message.delivered"}"#;
    assert_eq!(sign("right-secret", body).verify(&twilio()), Ok(()));
    // A different body under the same signed URL fails on the hash.
    assert_eq!(
        sign("right-secret", body)
            .body(br#"{"type":"x"}"#)
            .verify(&twilio()),
        INVALID
    );
    // A JSON body without bodySHA256 is not covered by any signature.
    let r = TestRequest::post(body)
        .header(SIG, signature("right-secret", URL, b""))
        .url(URL);
    assert_eq!(r.verify(&twilio()), INVALID);
}

#[test]
fn twilio_signs_the_url() {
    let r = sign("right-secret", &sms());
    assert_eq!(
        r.url("https://hooks.example.com/webhooks/other")
            .verify(&twilio()),
        INVALID
    );
    // Without a public URL nothing can be checked.
    let mut r = sign("right-secret", &sms());
    r.public_url = None;
    assert_eq!(r.verify(&twilio()), INVALID);
}

#[test]
fn twilio_default_port_either_way() {
    let body = sms();
    let signed_with_port = signature(
        "right-secret",
        "https://hooks.example.com:443/webhooks/twilio",
        &body,
    );
    let r = TestRequest::post(&body)
        .header(SIG, &signed_with_port)
        .url(URL);
    assert_eq!(r.verify(&twilio()), Ok(()));
    let r = TestRequest::post(&body)
        .header(SIG, signature("right-secret", URL, &body))
        .url("https://hooks.example.com:443/webhooks/twilio");
    assert_eq!(r.verify(&twilio()), Ok(()));
}

#[test]
fn twilio_repeated_params_and_order() {
    // Field order in the body does not matter; repeated names are all signed, sorted.
    let body = "To=%2B1&MediaUrl=b&From=%2B2&MediaUrl=a";
    let r = sign("right-secret", body.as_bytes());
    assert_eq!(r.verify(&twilio()), Ok(()));
    let reordered = "MediaUrl=a&MediaUrl=b&From=%2B2&To=%2B1";
    assert_eq!(
        sign("right-secret", body.as_bytes())
            .body(reordered)
            .verify(&twilio()),
        Ok(())
    );
    let dropped = "MediaUrl=a&From=%2B2&To=%2B1";
    assert_eq!(
        sign("right-secret", body.as_bytes())
            .body(dropped)
            .verify(&twilio()),
        INVALID
    );
}

#[test]
fn twilio_missing_and_malformed_headers() {
    assert_eq!(
        sign("right-secret", &sms()).without(SIG).verify(&twilio()),
        missing(SIG)
    );
    let hex_sig = hmac_sha1_hex(b"right-secret", URL.as_bytes());
    for bad in [hex_sig.as_str(), "***", "c2hvcnQ="] {
        let r = with_header(sign("right-secret", &sms()), SIG, bad);
        assert_eq!(r.verify(&twilio()), malformed(SIG), "{bad}");
    }
}

#[test]
fn twilio_describe() {
    let r = sign("right-secret", &sms()).header("I-Twilio-Idempotency-Token", "a1b2c3");
    let meta = twilio().describe(&r.req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("message.received"));
    assert_eq!(meta.delivery_id.as_deref(), Some("a1b2c3"));
    let call = form(&[("CallSid", "CA1"), ("CallStatus", "completed")]);
    let meta = twilio().describe(&sign("right-secret", call.as_bytes()).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("call.completed"));
    let json = twilio()
        .json_for_typing(&sign("right-secret", &sms()).req())
        .unwrap();
    assert_eq!(json["Body"], "Grüße + 🚀 & more=yes");
}

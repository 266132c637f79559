//! `standard-webhooks` (and Svix's header names).

use chrono::Duration;

use super::*;
use crate::signing::signature_header;

// Published test vector of the Standard Webhooks specification.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: i64 = 1614265330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn standard() -> VerifyConfig {
    config(&format!(
        r#"{{"scheme":"standard-webhooks","secret":"{SPEC_SECRET}"}}"#
    ))
}

fn spec_time() -> DateTime<Utc> {
    Utc.timestamp_opt(SPEC_TS, 0).unwrap()
}

/// A request signed now, with `webhook-*` names.
fn signed(body: &[u8]) -> TestRequest {
    let sig = signature_header(&Secret::new(SPEC_SECRET), "msg_1", ts(), body).unwrap();
    TestRequest::post(body)
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", ts().to_string())
        .header("webhook-signature", sig)
}

#[test]
fn standard_spec_vector() {
    let r = TestRequest::post(SPEC_BODY)
        .header("webhook-id", SPEC_ID)
        .header("webhook-timestamp", SPEC_TS.to_string())
        .header("webhook-signature", SPEC_SIG)
        .at(spec_time() + Duration::seconds(3));
    assert_eq!(r.verify(&standard()), Ok(()));
}

#[test]
fn standard_svix_header_names() {
    let r = TestRequest::post(SPEC_BODY)
        .header("svix-id", SPEC_ID)
        .header("svix-timestamp", SPEC_TS.to_string())
        .header("svix-signature", SPEC_SIG)
        .at(spec_time());
    assert_eq!(r.verify(&standard()), Ok(()));
    let meta = standard().describe(&r.req(), None);
    assert_eq!(meta.delivery_id.as_deref(), Some(SPEC_ID));
}

#[test]
fn standard_valid_now() {
    assert_eq!(signed(BODY).verify(&standard()), Ok(()));
}

#[test]
fn standard_tampered_body() {
    let r = signed(BODY).body(tamper(BODY));
    assert_eq!(r.verify(&standard()), INVALID);
}

#[test]
fn standard_signed_id_and_timestamp() {
    let r = signed(BODY)
        .without("webhook-id")
        .header("webhook-id", "msg_2");
    assert_eq!(r.verify(&standard()), INVALID);
    let r = signed(BODY)
        .without("webhook-timestamp")
        .header("webhook-timestamp", (ts() + 1).to_string());
    assert_eq!(r.verify(&standard()), INVALID);
}

#[test]
fn standard_wrong_secret() {
    let other = crate::signing::generate_secret();
    let c = config(&format!(
        r#"{{"scheme":"standard-webhooks","secret":"{}"}}"#,
        other.expose()
    ));
    assert_eq!(signed(BODY).verify(&c), INVALID);
}

#[test]
fn standard_missing_headers() {
    for name in ["webhook-signature", "webhook-id", "webhook-timestamp"] {
        assert_eq!(
            signed(BODY).without(name).verify(&standard()),
            missing(name),
            "{name}"
        );
    }
    assert_eq!(
        TestRequest::post(BODY).verify(&standard()),
        missing("webhook-signature")
    );
}

#[test]
fn standard_malformed_headers() {
    for bad in ["garbage", "v1,!!!notbase64", "v1,", ",abc", ""] {
        let r = signed(BODY)
            .without("webhook-signature")
            .header("webhook-signature", bad);
        let expected = if bad.is_empty() {
            missing("webhook-signature")
        } else {
            malformed("webhook-signature")
        };
        assert_eq!(r.verify(&standard()), expected, "{bad:?}");
    }
    for bad in ["yesterday", "1.5", "12e3", ""] {
        let r = signed(BODY)
            .without("webhook-timestamp")
            .header("webhook-timestamp", bad);
        let expected = if bad.is_empty() {
            missing("webhook-timestamp")
        } else {
            malformed("webhook-timestamp")
        };
        assert_eq!(r.verify(&standard()), expected, "{bad:?}");
    }
}

#[test]
fn standard_unknown_versions_are_well_formed_but_do_not_match() {
    let r = signed(BODY)
        .without("webhook-signature")
        .header("webhook-signature", "v1a,c2lnbmF0dXJl");
    assert_eq!(r.verify(&standard()), INVALID);
}

#[test]
fn standard_stale_and_future_timestamps() {
    let c = standard();
    for (offset, expected) in [
        (-301, OUT_OF_RANGE),
        (-300, Ok(())),
        (300, Ok(())),
        (301, OUT_OF_RANGE),
        (-86_400, OUT_OF_RANGE),
        (86_400, OUT_OF_RANGE),
    ] {
        // Signed at now+offset, so only the window can fail.
        let at = ts() + offset;
        let sig = signature_header(&Secret::new(SPEC_SECRET), "msg_1", at, BODY).unwrap();
        let r = TestRequest::post(BODY)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", at.to_string())
            .header("webhook-signature", sig);
        assert_eq!(r.verify(&c), expected, "offset {offset}");
    }
}

#[test]
fn standard_custom_tolerance() {
    let c = config(&format!(
        r#"{{"scheme":"standard-webhooks","secret":"{SPEC_SECRET}","tolerance_seconds":10}}"#
    ));
    let r = signed(BODY).at(now() + Duration::seconds(11));
    assert_eq!(r.verify(&c), OUT_OF_RANGE);
    let r = signed(BODY).at(now() + Duration::seconds(10));
    assert_eq!(r.verify(&c), Ok(()));
}

#[test]
fn standard_any_of_several_signatures() {
    let good = signature_header(&Secret::new(SPEC_SECRET), "msg_1", ts(), BODY).unwrap();
    let old = signature_header(&crate::signing::generate_secret(), "msg_1", ts(), BODY).unwrap();
    for header in [
        format!("{old} {good}"),
        format!("{good} {old}"),
        format!("v1a,c2ln {good}"),
    ] {
        let r = signed(BODY)
            .without("webhook-signature")
            .header("webhook-signature", &header);
        assert_eq!(r.verify(&standard()), Ok(()), "{header}");
    }
    let r = signed(BODY)
        .without("webhook-signature")
        .header("webhook-signature", format!("{old} {old}"));
    assert_eq!(r.verify(&standard()), INVALID);
}

#[test]
fn standard_large_unicode_body() {
    let body = unicode_body();
    assert_eq!(signed(&body).verify(&standard()), Ok(()));
    assert_eq!(
        signed(&body).body(tamper(&body)).verify(&standard()),
        INVALID
    );
}

#[test]
fn standard_describe() {
    let meta = standard().describe(&signed(BODY).req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(meta.delivery_id.as_deref(), Some("msg_1"));
    let meta = standard().describe(&TestRequest::post("[]").req(), None);
    assert_eq!(meta, EventMeta::default());
}

const BODY: &[u8] = br#"{"type":"invoice.paid","data":{"id":"in_1"}}"#;

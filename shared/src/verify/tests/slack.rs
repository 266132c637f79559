//! `slack`.

use chrono::Duration;

use super::*;

const SIG: &str = "X-Slack-Signature";
const TS: &str = "X-Slack-Request-Timestamp";
const BODY: &[u8] = br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{"type":"app_mention","text":"hi"}}"#;

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

fn slack() -> VerifyConfig {
    config(r#"{"scheme":"slack","secret":"right-secret"}"#)
}

#[test]
fn slack_published_vector() {
    // api.slack.com, "Verifying requests from Slack": the worked example.
    let c = config(r#"{"scheme":"slack","secret":"8f742231b10e8888abcd99yyyzzz85a5"}"#);
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let r = TestRequest::post(body)
        .header(
            SIG,
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        )
        .header(TS, "1531420618")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .at(Utc.timestamp_opt(1531420618 + 60, 0).unwrap());
    assert_eq!(r.verify(&c), Ok(()));
    assert_eq!(
        c.describe(&r.req(), None).event_type.as_deref(),
        Some("slash_command")
    );
    // The same request an hour later is a replay.
    assert_eq!(
        r.at(Utc.timestamp_opt(1531420618 + 3600, 0).unwrap())
            .verify(&c),
        OUT_OF_RANGE
    );
}

#[test]
fn slack_signature_battery() {
    hmac_battery(r#""scheme":"slack""#, BODY, &unicode_body(), &sign);
}

#[test]
fn slack_missing_and_malformed_headers() {
    assert_eq!(
        sign("right-secret", BODY).without(SIG).verify(&slack()),
        missing(SIG)
    );
    assert_eq!(
        sign("right-secret", BODY).without(TS).verify(&slack()),
        missing(TS)
    );
    let r = with_header(sign("right-secret", BODY), TS, "yesterday");
    assert_eq!(r.verify(&slack()), malformed(TS));
    let good = hmac_sha256_hex(b"right-secret", BODY);
    for bad in [
        format!("v1={good}"),
        good.clone(),
        "v0=".to_owned(),
        "v0=xyz".to_owned(),
    ] {
        let r = with_header(sign("right-secret", BODY), SIG, &bad);
        assert_eq!(r.verify(&slack()), malformed(SIG), "{bad}");
    }
}

#[test]
fn slack_signed_timestamp() {
    // Moving the timestamp header without re-signing breaks the signature.
    let r = with_header(sign("right-secret", BODY), TS, (ts() + 1).to_string());
    assert_eq!(r.verify(&slack()), INVALID);
}

#[test]
fn slack_stale_and_future_timestamps() {
    for (offset, expected) in [
        (-301, OUT_OF_RANGE),
        (-300, Ok(())),
        (300, Ok(())),
        (301, OUT_OF_RANGE),
    ] {
        let r = sign_at("right-secret", BODY, ts() + offset);
        assert_eq!(r.verify(&slack()), expected, "offset {offset}");
    }
    let c = config(r#"{"scheme":"slack","secret":"right-secret","tolerance_seconds":30}"#);
    assert_eq!(
        sign("right-secret", BODY)
            .at(now() + Duration::seconds(31))
            .verify(&c),
        OUT_OF_RANGE
    );
}

#[test]
fn slack_url_verification_is_answered() {
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let r = sign("right-secret", body);
    assert_eq!(r.verify(&slack()), Ok(()));
    let answer = slack().post_handshake(&r.req(), None).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/json");
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    // Ordinary events are not handshakes.
    assert!(slack()
        .post_handshake(&sign("right-secret", BODY).req(), None)
        .is_none());
}

#[test]
fn slack_describe() {
    let r = sign("right-secret", BODY).header("X-Slack-Retry-Num", "1");
    let meta = slack().describe(&r.req(), None);
    assert_eq!(meta.event_type.as_deref(), Some("app_mention"));
    assert_eq!(meta.delivery_id.as_deref(), Some("Ev08MFMKH6"));
    // Interactivity: JSON in a form `payload` field.
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", r#"{"type":"block_actions","trigger_id":"1"}"#)
        .finish();
    let r = sign("right-secret", body.as_bytes())
        .header("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(r.verify(&slack()), Ok(()));
    assert_eq!(
        slack().describe(&r.req(), None).event_type.as_deref(),
        Some("block_actions")
    );
}

//! Outbound signing per the Standard Webhooks specification.
//!
//! `webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>` where the key is
//! the base64-decoded part of the `whsec_…` secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::Secret;

const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("a signing secret must look like whsec_<base64>")]
    MalformedSecret,
}

/// A fresh secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> Secret {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    Secret::new(format!("{SECRET_PREFIX}{}", B64.encode(key)))
}

/// The raw HMAC key inside a `whsec_…` secret.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SigningError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = B64
        .decode(encoded)
        .map_err(|_| SigningError::MalformedSecret)?;
    if key.is_empty() {
        return Err(SigningError::MalformedSecret);
    }
    Ok(key)
}

/// HMAC-SHA256 of `"{msg_id}.{timestamp}.{body}"`, fed in pieces so the body is not copied.
fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Signs with a raw key, returning the base64 MAC (without the `v1,` prefix).
pub fn sign_with_key(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    B64.encode(mac(key, msg_id, timestamp, body))
}

/// The `webhook-signature` header value for a delivery.
pub fn signature_header(
    secret: &Secret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let key = decode_secret(secret.expose())?;
    Ok(format!(
        "v1,{}",
        sign_with_key(&key, msg_id, timestamp, body)
    ))
}

/// The `webhook-signature` header value signed with each secret in turn, space-separated (how
/// Standard Webhooks carries several signatures while a secret is being rotated).
pub fn signature_header_all<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let mut header = String::new();
    for secret in secrets {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(&signature_header(secret, msg_id, timestamp, body)?);
    }
    Ok(header)
}

/// Whether any `v1,` entry of a space-separated `webhook-signature` header matches, compared in
/// constant time. Timestamp tolerance is the caller's business.
pub fn signature_matches(
    key: &[u8],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let expected = mac(key, msg_id, timestamp, body);
    header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|sig| B64.decode(sig).ok())
        .any(|sig| crate::verify::constant_time_eq(&sig, &expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published test vector of the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_spec_test_vector() {
        let header =
            signature_header(&Secret::new(SPEC_SECRET), SPEC_ID, SPEC_TS, SPEC_BODY).unwrap();
        assert_eq!(header, SPEC_SIG);
    }

    #[test]
    fn verifies_any_of_several_signatures() {
        let key = decode_secret(SPEC_SECRET).unwrap();
        let header = format!("v1,bm90IGl0 {SPEC_SIG} v2,whatever");
        assert!(signature_matches(
            &key, SPEC_ID, SPEC_TS, SPEC_BODY, &header
        ));
        assert!(!signature_matches(
            &key,
            SPEC_ID,
            SPEC_TS + 1,
            SPEC_BODY,
            &header
        ));
        assert!(!signature_matches(
            &key,
            SPEC_ID,
            SPEC_TS,
            b"{\"test\": 2432232315}",
            &header
        ));
        assert!(!signature_matches(&key, SPEC_ID, SPEC_TS, SPEC_BODY, "v1,"));
    }

    #[test]
    fn several_secrets_sign_one_entry_each() {
        let other = generate_secret();
        let spec = Secret::new(SPEC_SECRET);
        let header = signature_header_all([&spec, &other], SPEC_ID, SPEC_TS, SPEC_BODY).unwrap();
        let (first, second) = header.split_once(' ').unwrap();
        assert_eq!(first, SPEC_SIG);
        let other_key = decode_secret(other.expose()).unwrap();
        assert!(signature_matches(
            &other_key, SPEC_ID, SPEC_TS, SPEC_BODY, second
        ));
        assert_eq!(
            signature_header_all([&spec], SPEC_ID, SPEC_TS, SPEC_BODY).unwrap(),
            SPEC_SIG
        );
    }

    #[test]
    fn generated_secrets_have_32_byte_keys() {
        let s = generate_secret();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(decode_secret(s.expose()).unwrap().len(), 32);
        assert_ne!(generate_secret(), s);
    }

    #[test]
    fn malformed_secrets_are_rejected() {
        assert_eq!(
            decode_secret("whsec_!!!"),
            Err(SigningError::MalformedSecret)
        );
        assert_eq!(decode_secret("whsec_"), Err(SigningError::MalformedSecret));
    }
}

//! Static headers a subscription adds to each of its deliveries (`headers`).

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::domain::Subscription;

/// Most headers one subscription may set.
pub const MAX_HEADERS: usize = 20;
/// Longest header value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// What the API shows instead of the value of a header whose name suggests a credential, and
/// what a client may send back to keep the stored value.
pub const REDACTED: &str = "***";

/// Names Hookhub sets itself (signature, framing) or that only make sense hop by hop.
fn reserved(name: &str) -> bool {
    name.starts_with("webhook-")
        || matches!(
            name,
            "host"
                | "content-length"
                | "content-type"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "te"
                | "trailer"
                | "upgrade"
                | "proxy-connection"
        )
}

/// Checks and normalises (lowercase names) a subscription's headers.
pub fn validate(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!("at most {MAX_HEADERS} headers"));
    }
    let mut normalised = BTreeMap::new();
    for (name, value) in headers {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        let lower = parsed.as_str().to_string();
        if reserved(&lower) {
            return Err(format!(
                "header {lower:?} is set by Hookhub or the HTTP connection and cannot be overridden"
            ));
        }
        if value.len() > MAX_VALUE_BYTES || HeaderValue::from_str(&value).is_err() {
            return Err(format!(
                "the value of header {lower:?} must be visible ASCII or spaces, at most {MAX_VALUE_BYTES} bytes"
            ));
        }
        if normalised.insert(lower.clone(), value).is_some() {
            return Err(format!("header {lower:?} is given twice"));
        }
    }
    Ok(normalised)
}

/// Whether a header's value is shown redacted by the API (it likely carries a credential).
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "cookie",
        "token",
        "secret",
        "key",
        "password",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The headers as the API shows them: sensitive values replaced by [`REDACTED`].
pub fn redacted(headers: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_sensitive(name) { REDACTED } else { value };
            (name.clone(), shown.to_string())
        })
        .collect()
}

/// `new` with each [`REDACTED`] value of a sensitive header replaced by the stored value.
pub fn resolve_placeholders(
    new: BTreeMap<String, String>,
    stored: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    new.into_iter()
        .map(|(name, value)| {
            if value != REDACTED || !is_sensitive(&name) {
                return Ok((name, value));
            }
            match stored.get(&name.to_ascii_lowercase()) {
                Some(kept) => Ok((name, kept.clone())),
                None => Err(format!(
                    "header {name:?} has the placeholder {REDACTED} but no stored value to keep"
                )),
            }
        })
        .collect()
}

/// Adds the subscription's headers to a delivery's. Reserved names are skipped even if stored
/// (the admin API refuses them), so the signature headers cannot be replaced.
pub fn apply(headers: &mut HeaderMap, subscription: &Subscription) {
    for (name, value) in &subscription.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if !reserved(name.as_str()) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation() {
        let ok = validate(map(&[
            ("X-Team", "payments"),
            ("Authorization", "Bearer t"),
        ]))
        .unwrap();
        assert_eq!(
            ok,
            map(&[("x-team", "payments"), ("authorization", "Bearer t")])
        );
        for bad in [
            "webhook-id",
            "Webhook-Signature",
            "host",
            "Content-Length",
            "content-type",
            "transfer-encoding",
            "bad name",
            "",
        ] {
            assert!(validate(map(&[(bad, "x")])).is_err(), "{bad}");
        }
        assert!(validate(map(&[("x-a", "line\nbreak")])).is_err());
        assert!(validate(map(&[("x-a", &"v".repeat(MAX_VALUE_BYTES + 1))])).is_err());
        assert!(validate(map(&[("X-A", "1"), ("x-a", "2")])).is_err());
        let many: BTreeMap<String, String> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".to_string()))
            .collect();
        assert!(validate(many).is_err());
    }

    #[test]
    fn redaction_and_placeholders() {
        let stored = map(&[("authorization", "Bearer t"), ("x-team", "payments")]);
        assert_eq!(
            redacted(&stored),
            map(&[("authorization", "***"), ("x-team", "payments")])
        );
        let back = resolve_placeholders(redacted(&stored), &stored).unwrap();
        assert_eq!(back, stored);
        // A placeholder for a non-sensitive header is taken literally.
        let literal = resolve_placeholders(map(&[("x-team", "***")]), &stored).unwrap();
        assert_eq!(literal["x-team"], "***");
        assert!(resolve_placeholders(map(&[("x-api-key", "***")]), &stored).is_err());
    }
}

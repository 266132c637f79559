//! One log line and one metric sample per webhook request the receiver answers.

use std::time::Duration;

use axum::response::Response;

use super::error::ErrorCode;
use crate::metrics::{self, WebhookOutcome};

/// The `source` value of requests refused before their source was looked up (an oversized
/// head or body, an unknown source): the path's segment is the caller's choice, so it must not
/// become a dimension value.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// What the receiver learnt about a request while answering it.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The source exists (its name is safe as a dimension value).
    pub source_known: bool,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub delivery_id: Option<String>,
    pub duplicate: bool,
    pub handshake: bool,
}

/// The outcome and, for a rejection, its reason (the answer's error code).
pub(super) fn outcome(seen: &Seen, response: &Response) -> (WebhookOutcome, Option<String>) {
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        return (WebhookOutcome::Rejected, Some(code.clone()));
    }
    if !response.status().is_success() && !seen.handshake {
        let code = super::code_for_status(response.status());
        return (WebhookOutcome::Rejected, Some(code.to_string()));
    }
    let outcome = match (seen.handshake, seen.duplicate) {
        (true, _) => WebhookOutcome::Handshake,
        (false, true) => WebhookOutcome::Duplicate,
        (false, false) => WebhookOutcome::Accepted,
    };
    (outcome, None)
}

/// Records the answer: the `webhooks_received` and `ingest_duration` metrics and one log line
/// (never a header value or the body).
pub(super) fn webhook_answered(source: &str, seen: &Seen, response: &Response, took: Duration) {
    let (outcome, reason) = outcome(seen, response);
    let label = if seen.source_known {
        source
    } else {
        UNKNOWN_SOURCE
    };
    metrics::webhook_received(label, outcome, reason.clone(), took);
    let duration_ms = took.as_secs_f64() * 1000.0;
    tracing::info!(
        source = label,
        event_id = seen.event_id.as_deref(),
        event_type = seen.event_type.as_deref(),
        delivery_id = seen.delivery_id.as_deref(),
        outcome = outcome.code(),
        reason = reason.as_deref(),
        status = response.status().as_u16(),
        duration_ms,
        "webhook"
    );
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;
    use crate::http::ApiError;

    fn seen(duplicate: bool, handshake: bool) -> Seen {
        Seen {
            source_known: true,
            duplicate,
            handshake,
            ..Seen::default()
        }
    }

    #[test]
    fn outcomes_and_reasons() {
        let ok = || StatusCode::OK.into_response();
        let error = |status, code| ApiError::new(status, code, "m").into_response();
        let cases = [
            (seen(false, false), ok(), "accepted", None),
            (seen(true, false), ok(), "duplicate", None),
            (seen(false, true), ok(), "handshake", None),
            // A handshake may answer with any status the provider expects.
            (
                seen(false, true),
                StatusCode::ACCEPTED.into_response(),
                "handshake",
                None,
            ),
            (
                seen(false, false),
                error(StatusCode::UNAUTHORIZED, "signature_invalid"),
                "rejected",
                Some("signature_invalid"),
            ),
            (
                Seen::default(),
                error(StatusCode::NOT_FOUND, "source_not_found"),
                "rejected",
                Some("source_not_found"),
            ),
            // An error answer without an ApiError: its status's code.
            (
                Seen::default(),
                StatusCode::PAYLOAD_TOO_LARGE.into_response(),
                "rejected",
                Some("payload_too_large"),
            ),
        ];
        for (seen, response, expected, reason) in cases {
            let (outcome, got) = outcome(&seen, &response);
            assert_eq!(outcome.code(), expected, "{seen:?}");
            assert_eq!(got.as_deref(), reason, "{seen:?}");
        }
    }
}

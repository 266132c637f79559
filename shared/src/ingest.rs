//! The receiver service: authenticate a provider's request, answer handshakes, deduplicate,
//! store the event and enqueue its dispatch task.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, Method};

use crate::dedup::{dedup_key, DedupInput};
use crate::domain::Event;
pub use crate::intake::StoreThenEnqueue;
use crate::ports::{Backend, StoreError};
use crate::verify::{HandshakeResponse, InboundRequest, VerifyError};

/// Receiver settings.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Largest accepted body; larger requests get 413.
    pub max_body_bytes: usize,
    /// Largest accepted request headers, counted as the sum of every name and value (the
    /// headers are stored with the event); larger requests get 431.
    pub max_header_bytes: usize,
    /// A second request with the same dedup key within this window is not stored again; the
    /// default of sources whose `dedup` sets no window.
    pub dedup_window: Duration,
    /// Public base URL of the deployment (e.g. `https://hooks.example.com`), for schemes that
    /// sign the full URL.
    pub public_url: Option<String>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_header_bytes: 64 * 1024,
            dedup_window: Duration::from_secs(24 * 3600),
            public_url: None,
        }
    }
}

impl ReceiverConfig {
    /// What can be refused from the request head alone, before any of the body is read:
    /// headers over `max_header_bytes`, or a `Content-Length` over `max_body_bytes`.
    pub fn check_head(&self, headers: &HeaderMap) -> Result<(), IngestError> {
        if header_bytes(headers) > self.max_header_bytes {
            return Err(IngestError::HeadersTooLarge {
                limit: self.max_header_bytes,
            });
        }
        if declared_length(headers).is_some_and(|len| len > self.max_body_bytes as u64) {
            return Err(IngestError::PayloadTooLarge {
                limit: self.max_body_bytes,
            });
        }
        Ok(())
    }
}

/// The size of a request's headers as stored: every name and value, repeated ones included.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// The body length the client declared, when it declared one that parses.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A webhook request as it reached the edge.
#[derive(Debug, Clone)]
pub struct IncomingWebhook {
    pub method: Method,
    /// Path as called, e.g. `/webhooks/github`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    /// Stored and enqueued (or a duplicate of an event that is).
    Accepted {
        event_id: String,
        duplicate: bool,
        event_type: String,
        /// The provider's own id of the delivery, when it sends one.
        delivery_id: Option<String>,
    },
    /// A provider handshake, answered without storing anything.
    Handshake(HandshakeResponse),
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no source named {0:?}")]
    UnknownSource(String),
    #[error("webhooks must be sent with POST")]
    MethodNotAllowed,
    #[error("the body is larger than the {limit} byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("the request headers are larger than the {limit} byte limit (names and values)")]
    HeadersTooLarge { limit: usize },
    #[error(transparent)]
    Verification(#[from] VerifyError),
    #[error("the event could not be stored or enqueued")]
    Unavailable(#[source] StoreError),
}

/// Headers never kept with a stored event, whatever the scheme.
const ALWAYS_STRIPPED: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

#[derive(Clone)]
pub struct Ingestor {
    backend: Backend,
    config: ReceiverConfig,
}

impl Ingestor {
    pub fn new(backend: Backend, config: ReceiverConfig) -> Self {
        Self { backend, config }
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    pub async fn handle(
        &self,
        source_id: &str,
        request: IncomingWebhook,
    ) -> Result<IngestOutcome, IngestError> {
        // Operational events come from Hookhub only: nobody may post one, whatever is stored.
        if crate::operational::is_reserved_source(source_id) {
            return Err(IngestError::UnknownSource(source_id.to_string()));
        }
        let source = self
            .backend
            .sources
            .get_source(source_id)
            .await
            .map_err(IngestError::Unavailable)?
            .ok_or_else(|| IngestError::UnknownSource(source_id.to_string()))?;

        let public_url = self.config.public_url.as_deref().map(|base| {
            let base = base.trim_end_matches('/');
            match &request.query {
                Some(q) => format!("{base}{}?{q}", request.path),
                None => format!("{base}{}", request.path),
            }
        });
        let inbound = InboundRequest {
            method: &request.method,
            headers: &request.headers,
            query: request.query.as_deref(),
            body: &request.body,
            public_url: public_url.as_deref(),
            now: Utc::now(),
        };

        if request.method == Method::GET {
            return match source.verify.get_handshake(&inbound) {
                Some(answer) => Ok(IngestOutcome::Handshake(answer?)),
                None => Err(IngestError::MethodNotAllowed),
            };
        }
        if request.method != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        // The HTTP edge enforces the limit while reading; Lambda hands over whole bodies.
        if request.body.len() > self.config.max_body_bytes {
            return Err(IngestError::PayloadTooLarge {
                limit: self.config.max_body_bytes,
            });
        }

        source.verify.verify(&inbound)?;
        let json = source.verify.json_for_typing(&inbound);
        if let Some(answer) = source.verify.post_handshake(&inbound, json.as_ref()) {
            return Ok(IngestOutcome::Handshake(answer));
        }
        let meta = source.verify.describe(&inbound, json.as_ref());
        let event_type = meta
            .event_type
            .or_else(|| json_type(json.as_ref()))
            .or_else(|| header_str(&request.headers, "x-event-type"))
            .unwrap_or_else(|| "unknown".to_string());
        let dedup = source.dedup();
        let id = self.backend.intake.new_event_id();
        let dedup_key = dedup_key(
            &dedup.key,
            DedupInput {
                delivery_id: meta.delivery_id.as_deref(),
                headers: &request.headers,
                json: json.as_ref(),
                body: &request.body,
            },
        )
        .unwrap_or_else(|| format!("once:{id}"));

        let mut stripped: Vec<String> = source.verify.credential_headers();
        stripped.extend(ALWAYS_STRIPPED.iter().map(|h| h.to_string()));
        let event = Event {
            id,
            source_id: source.id.clone(),
            event_type: event_type.clone(),
            received_at: inbound.now,
            content_type: header_str(&request.headers, "content-type"),
            dedup_key,
            headers: keep_headers(&request.headers, &stripped),
            body: request.body.clone(),
            enqueued: false,
        };

        // Storing and enqueueing run on their own task: if the provider disconnects, the
        // request future is dropped, but this work still finishes, so no event is left stored
        // and not enqueued (the sweep covers crashes).
        let intake = self.backend.intake.clone();
        let window = dedup.window_or(self.config.dedup_window);
        let stored = tokio::spawn(async move { intake.store_and_enqueue(&event, window).await })
            .await
            .map_err(|e| IngestError::Unavailable(StoreError::Unavailable(e.to_string())))?
            .map_err(IngestError::Unavailable)?;
        Ok(IngestOutcome::Accepted {
            event_id: stored.event_id,
            duplicate: stored.duplicate,
            event_type,
            delivery_id: meta.delivery_id,
        })
    }
}

/// Enqueues events that were stored but never confirmed enqueued (process crash between the two
/// steps) and are older than `grace`, so in-flight requests are left alone. Returns how many.
pub async fn sweep_unenqueued(backend: &Backend, grace: Duration) -> Result<usize, StoreError> {
    let cutoff = Utc::now() - chrono::Duration::from_std(grace).unwrap_or_default();
    let stragglers = backend.events.list_unenqueued(cutoff, 100).await?;
    let mut enqueued = 0;
    for event in &stragglers {
        tracing::warn!(event_id = %event.id, "enqueueing an event left unenqueued");
        match crate::intake::enqueue_dispatch(&*backend.events, &*backend.queue, event).await {
            Ok(_) => enqueued += 1,
            // Gone between the listing and its mark (expired, or a duplicate's copy deleted):
            // the others are still swept.
            Err(StoreError::NotFound(what)) => {
                tracing::warn!(event_id = %event.id, what, "an unenqueued event vanished");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(enqueued)
}

fn json_type(json: Option<&serde_json::Value>) -> Option<String> {
    json?
        .get("type")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Headers kept with the event: lowercase names, repeated values joined with `, `, values that
/// are not visible ASCII skipped, credentials removed.
fn keep_headers(headers: &HeaderMap, stripped: &[String]) -> BTreeMap<String, String> {
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if stripped.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        kept.entry(name.to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_string());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_kept() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("verification-signature", "tok".parse().unwrap());
        h.append("x-multi", "a".parse().unwrap());
        h.append("x-multi", "b".parse().unwrap());
        let kept = keep_headers(
            &h,
            &["Verification-Signature".to_string(), "authorization".into()],
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept["x-multi"], "a, b");
    }

    #[test]
    fn json_type_only_takes_non_empty_strings() {
        let v: serde_json::Value = serde_json::json!({"type": "a.b"});
        assert_eq!(json_type(Some(&v)).as_deref(), Some("a.b"));
        assert_eq!(json_type(Some(&serde_json::json!({"type": 3}))), None);
        assert_eq!(json_type(Some(&serde_json::json!({"type": ""}))), None);
        assert_eq!(json_type(None), None);
    }

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn the_head_is_checked_against_both_limits() {
        let config = ReceiverConfig {
            max_body_bytes: 100,
            max_header_bytes: 20,
            ..ReceiverConfig::default()
        };
        // (headers, expected): "x-a: 0123456789" counts 3 + 10 bytes.
        let cases: [(Headers, Result<(), &str>); 8] = [
            (&[], Ok(())),
            (&[("x-a", "0123456789")], Ok(())),
            // Exactly at the limit is accepted; every repeated value counts.
            (&[("x-a", "0123456789"), ("x-b", "0123")], Ok(())),
            (&[("x-a", "0123456789"), ("x-a", "01234")], Err("headers")),
            (&[("content-length", "100")], Ok(())),
            (&[("content-length", "101")], Err("body")),
            // Unparseable lengths are left to the body reader (which counts the bytes).
            (&[("content-length", "lots")], Ok(())),
            // Headers are checked first: their size is known, the body's only declared.
            (
                &[("x-long", "0123456789abcdef"), ("content-length", "9")],
                Err("headers"),
            ),
        ];
        for (headers, expected) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
                map.append(name, value.parse().unwrap());
            }
            let got = match config.check_head(&map) {
                Ok(()) => Ok(()),
                Err(IngestError::HeadersTooLarge { limit: 20 }) => Err("headers"),
                Err(IngestError::PayloadTooLarge { limit: 100 }) => Err("body"),
                Err(other) => panic!("{headers:?}: {other}"),
            };
            assert_eq!(got, expected, "{headers:?}");
        }
    }
}

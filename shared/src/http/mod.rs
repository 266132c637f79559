//! HTTP routes: one `axum::Router` served by the Lambda functions (through `lambda_http`) and
//! by the local dev server alike.
//!
//! Every error is JSON: `{"error": {"code": "…", "message": "…"}}`.

mod admin;
pub mod body;
mod console;
mod error;
mod extract;
#[cfg(feature = "prometheus")]
mod metrics;
mod observe;
pub mod openapi;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use sha2::{Digest, Sha256};

use crate::admin::Admin;
use crate::ingest::{IncomingWebhook, IngestError, IngestOutcome, Ingestor};
use crate::ports::Backend;
use crate::verify::constant_time_eq;

pub use error::{code_for_status, ApiError};
use extract::ApiPath;
#[cfg(feature = "prometheus")]
pub use metrics::{metrics_router, MetricsOptions, QueueStats};

/// What the routes need. Built once per process (Lambda init or server start).
#[derive(Clone)]
pub struct AppState {
    /// `None` in a state built for the admin routes alone ([`AppState::admin_only`]).
    pub ingestor: Option<Ingestor>,
    pub admin: Admin,
    admin_key_hash: Option<[u8; 32]>,
}

impl AppState {
    /// `admin_key`: the bearer token of the admin API; `None` refuses every admin request.
    pub fn new(backend: Backend, ingestor: Ingestor, admin_key: Option<&str>) -> Self {
        Self {
            ingestor: Some(ingestor),
            admin: Admin::new(backend),
            admin_key_hash: admin_key.map(|k| Sha256::digest(k.as_bytes()).into()),
        }
    }

    /// Like `new`, with the admin key given as the hex SHA-256 of the key, so deployments
    /// need not hold the key itself. Returns `None` when the hex is not 32 bytes.
    pub fn with_admin_key_sha256(
        backend: Backend,
        ingestor: Ingestor,
        hex_hash: &str,
    ) -> Option<Self> {
        let bytes = hex::decode(hex_hash.trim()).ok()?;
        let hash: [u8; 32] = bytes.try_into().ok()?;
        Some(Self {
            ingestor: Some(ingestor),
            admin: Admin::new(backend),
            admin_key_hash: Some(hash),
        })
    }

    /// For [`admin_router`] alone (the admin function): no ingestor is built. `admin_key_hash`
    /// is the SHA-256 of the admin key.
    pub fn admin_only(backend: Backend, admin_key_hash: [u8; 32]) -> Self {
        Self {
            ingestor: None,
            admin: Admin::new(backend),
            admin_key_hash: Some(admin_key_hash),
        }
    }

    /// Whether subscription URLs may name non-public IP literals: the SSRF guard setting of the
    /// process's deliveries ([`Admin::allow_private_targets`]).
    pub fn allow_private_targets(mut self, allow: bool) -> Self {
        self.admin = self.admin.allow_private_targets(allow);
        self
    }

    /// Compares hashes so the comparison is constant-time and independent of key length.
    pub(crate) fn admin_key_matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.admin_key_hash
            .is_some_and(|expected| constant_time_eq(&expected, &presented))
    }
}

/// Receiver and admin routes together (the dev server).
pub fn router(state: AppState) -> Router {
    let mut app = Router::new();
    if let Some(ingestor) = state.ingestor.clone() {
        app = app.merge(receiver_routes().with_state(ingestor));
    }
    app.merge(admin::routes(state.clone()))
        .merge(console::routes())
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(not_found)
        .layer(middleware::map_response(error::json_errors))
        .with_state(state)
}

/// Only the webhook ingest routes (the receiver function): no admin service is built.
pub fn receiver_router(ingestor: Ingestor) -> Router {
    receiver_routes()
        .fallback(not_found)
        .layer(middleware::map_response(error::json_errors))
        .with_state(ingestor)
}

/// Only the admin routes (the admin function).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .merge(admin::routes(state.clone()))
        .merge(console::routes())
        .fallback(not_found)
        .layer(middleware::map_response(error::json_errors))
        .with_state(state)
}

fn receiver_routes() -> Router<Ingestor> {
    Router::new().route("/webhooks/{source}", any(receive_webhook))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn receive_webhook(
    State(ingestor): State<Ingestor>,
    ApiPath(source): ApiPath<String>,
    request: Request,
) -> Response {
    let started = std::time::Instant::now();
    let mut seen = observe::Seen::default();
    let response = answer_webhook(&ingestor, &source, request, &mut seen).await;
    observe::webhook_answered(&source, &seen, &response, started.elapsed());
    response
}

async fn answer_webhook(
    ingestor: &Ingestor,
    source: &str,
    request: Request,
    seen: &mut observe::Seen,
) -> Response {
    let config = ingestor.config();
    let (parts, request_body) = request.into_parts();
    // Refused on the head alone (nothing is stored); the body is still read off the socket so
    // the client, busy sending it, gets the answer.
    if let Err(refused) = config.check_head(&parts.headers) {
        let drained = body::discard(&parts.headers, request_body).await;
        return body::close_unless(drained, refused.into_response_json());
    }
    let limit = config.max_body_bytes;
    let body = match body::read_limited(&parts.headers, request_body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(limit),
    };
    let incoming = IncomingWebhook {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    };
    let result = ingestor.handle(source, incoming).await;
    seen.source_known = !matches!(
        result,
        Err(IngestError::UnknownSource(_) | IngestError::Unavailable(_))
    );
    match result {
        Ok(IngestOutcome::Accepted {
            event_id,
            duplicate,
            event_type,
            delivery_id,
        }) => {
            let answer = Json(serde_json::json!({"id": event_id, "duplicate": duplicate}));
            seen.event_id = Some(event_id);
            seen.event_type = Some(event_type);
            seen.delivery_id = delivery_id;
            seen.duplicate = duplicate;
            answer.into_response()
        }
        Ok(IngestOutcome::Handshake(answer)) => {
            seen.handshake = true;
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            let headers = response.headers_mut();
            if let Ok(ct) = HeaderValue::from_str(&answer.content_type) {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(name, value);
                }
            }
            response
        }
        Err(e) => e.into_response_json(),
    }
}

impl IngestError {
    fn into_response_json(self) -> Response {
        let (status, code) = match &self {
            IngestError::UnknownSource(_) => (StatusCode::NOT_FOUND, "source_not_found"),
            IngestError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            IngestError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            IngestError::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            IngestError::Verification(v) => (
                StatusCode::from_u16(v.http_status()).unwrap_or(StatusCode::UNAUTHORIZED),
                v.code(),
            ),
            IngestError::Unavailable(e) => {
                tracing::error!(error = %e, "ingest failed; answering 503 so the provider retries");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        let mut response = ApiError::new(status, code, self.to_string()).into_response();
        match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

//! The receiver function: `POST /webhooks/{source}` behind an API Gateway HTTP API (payload
//! v2), served by the same axum router as the dev server. `main.rs` only reads the
//! configuration and hands [`app`] to `lambda_http::run`; tests call [`app`] directly.

use axum::Router;
use hookhub::http::receiver_router;
use hookhub::ingest::{Ingestor, ReceiverConfig};
use hookhub::ports::Backend;

/// The receiver's HTTP service on `backend`. Built once per process (Lambda init).
pub fn app(backend: Backend, config: ReceiverConfig) -> Router {
    // The ingestor alone: no admin service, no admin key, no admin routes.
    receiver_router(Ingestor::new(backend, config))
        .layer(axum::middleware::map_response(flush_metrics))
}

/// One invocation, one request: its metrics go out as EMF lines once it is answered (a no-op
/// unless `main` installed the EMF recorder).
async fn flush_metrics(response: axum::response::Response) -> axum::response::Response {
    hookhub::metrics::emf::flush();
    response
}

//! The admin function: the `/v1/…` admin API behind an API Gateway HTTP API (payload v2),
//! served by the same axum router as the dev server. `main.rs` only reads the configuration
//! and hands [`app`] to `lambda_http::run`; tests call [`app`] directly.

use axum::Router;
use hookhub::http::admin_router;
use hookhub::ports::Backend;
use hookhub::settings::AdminKey;

/// The admin API on `backend`, answering only requests bearing `key`. Built once per process.
/// The SSRF guard is on: subscription URLs naming non-public IP addresses are refused.
pub fn app(backend: Backend, key: &AdminKey) -> Router {
    app_with_targets(backend, key, false)
}

/// Like [`app`], with the guard as `HOOKHUB_ALLOW_PRIVATE_TARGETS` sets it for the dispatcher
/// (`Env::delivery_options`), so the admin API accepts exactly the literal targets the
/// dispatcher would deliver to.
pub fn app_with_targets(backend: Backend, key: &AdminKey, allow_private_targets: bool) -> Router {
    // The admin routes never ingest: the state has no ingestor.
    admin_router(
        key.admin_state(backend)
            .allow_private_targets(allow_private_targets),
    )
}

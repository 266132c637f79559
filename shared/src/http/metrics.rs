//! `GET /metrics` of the dev server: Prometheus text exposition format, behind the admin key
//! unless the server runs with `--metrics-public`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use super::AppState;
use crate::ports::StoreResult;

/// Queue figures a backend can tell (SQLite); refreshed on every scrape.
#[async_trait::async_trait]
pub trait QueueStats: Send + Sync {
    /// Tasks on the queue, and the age of the oldest one.
    async fn queue_stats(&self) -> StoreResult<(usize, Option<Duration>)>;
}

/// How `/metrics` is served.
#[derive(Clone, Default)]
pub struct MetricsOptions {
    /// Scrapes need no admin key.
    pub public: bool,
    /// Queue depth and oldest task age, where the backend can tell.
    pub queue: Option<Arc<dyn QueueStats>>,
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    queue: Option<Arc<dyn QueueStats>>,
}

/// The `/metrics` route on its own (merged into the dev server's router).
pub fn metrics_router(
    state: AppState,
    handle: PrometheusHandle,
    options: MetricsOptions,
) -> Router {
    let scrape = Scrape {
        handle,
        queue: options.queue,
    };
    let mut route = Router::new().route("/metrics", get(render).with_state(scrape));
    if !options.public {
        route = route.route_layer(middleware::from_fn_with_state(
            state,
            super::admin::require_admin_key,
        ));
    }
    // Its errors (405 on another method) are JSON like every other route's.
    route.layer(middleware::map_response(super::error::json_errors))
}

async fn render(State(scrape): State<Scrape>) -> Response {
    if let Some(queue) = &scrape.queue {
        match queue.queue_stats().await {
            Ok((depth, oldest)) => crate::metrics::queue(depth, oldest),
            // The rest of the page is still worth serving.
            Err(e) => tracing::warn!(error = %e, "queue stats unavailable for /metrics"),
        }
    }
    let mut response = scrape.handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

//! The local server: the same router as the Lambda functions, plus a worker polling the queue,
//! in one process. Used by `hookhub dev` (SQLite or AWS backend) and by end-to-end tests.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::delivery::{DeliveryClient, DeliveryOptions};
use crate::dispatch::{Dispatcher, DispatcherConfig};
use crate::http::{router, AppState};
use crate::ingest::{Ingestor, ReceiverConfig};
use crate::ports::Backend;
use crate::server::{self, ServerOptions};
use crate::worker::{Worker, WorkerOptions};

#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub listen: SocketAddr,
    pub admin_key: String,
    pub receiver: ReceiverConfig,
    pub dispatcher: DispatcherConfig,
    pub worker: WorkerOptions,
    pub delivery: DeliveryOptions,
    /// Timeouts and the connection limit of the HTTP server.
    pub server: ServerOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How the dev server serves `GET /metrics` (Prometheus text; feature `prometheus`).
#[cfg(feature = "prometheus")]
pub type LocalMetrics = crate::http::MetricsOptions;
/// Without the `prometheus` feature there is no `/metrics`; `public` is ignored.
#[cfg(not(feature = "prometheus"))]
#[derive(Debug, Clone, Default)]
pub struct LocalMetrics {
    pub public: bool,
}

#[cfg(feature = "prometheus")]
fn with_metrics(routes: axum::Router, state: AppState, metrics: LocalMetrics) -> axum::Router {
    let handle = crate::metrics::prometheus::install();
    routes.merge(crate::http::metrics_router(state, handle, metrics))
}

#[cfg(not(feature = "prometheus"))]
fn with_metrics(routes: axum::Router, _: AppState, _: LocalMetrics) -> axum::Router {
    routes
}

/// A running server; dropping it without `shutdown` leaves its tasks running.
pub struct LocalServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    http: JoinHandle<()>,
    worker: JoinHandle<()>,
}

impl LocalServer {
    /// Binds, then serves and dispatches in background tasks. `wake` lets the worker start as
    /// soon as a task is sent (SQLite) instead of on its next poll.
    pub async fn start(
        backend: Backend,
        wake: Option<Arc<Notify>>,
        config: LocalConfig,
    ) -> Result<Self, LocalError> {
        Self::start_observed(backend, wake, config, LocalMetrics::default()).await
    }

    /// Like [`LocalServer::start`], with `GET /metrics` served as `metrics` says.
    pub async fn start_observed(
        backend: Backend,
        wake: Option<Arc<Notify>>,
        config: LocalConfig,
        metrics: LocalMetrics,
    ) -> Result<Self, LocalError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| LocalError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| LocalError::Bind {
            addr: config.listen,
            source,
        })?;
        let client = DeliveryClient::new(&config.delivery)?;
        let ingestor = Ingestor::new(backend.clone(), config.receiver.clone());
        let state = AppState::new(backend.clone(), ingestor, Some(&config.admin_key))
            .allow_private_targets(config.delivery.allow_private_targets);
        let routes = with_metrics(router(state.clone()), state, metrics);
        let dispatcher = Dispatcher::new(backend, client, config.dispatcher.clone());
        let mut worker = Worker::new(dispatcher, config.worker.clone());
        if let Some(wake) = wake {
            worker = worker.with_wake(wake);
        }

        let (shutdown, signal) = watch::channel(false);
        let http = tokio::spawn(server::serve(
            listener,
            routes,
            config.server.clone(),
            config.receiver.max_header_bytes,
            signal.clone(),
        ));
        let worker = tokio::spawn(worker.run(signal));
        Ok(Self {
            addr,
            shutdown,
            http,
            worker,
        })
    }

    /// Stops accepting requests, lets requests and deliveries in flight finish, then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.http.await;
        let _ = self.worker.await;
    }
}

//! The dev server's recorder: Prometheus text exposition of the same metrics.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's recorder, once; every server of the
/// process renders the same registry.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; this handle then renders nothing.
            if metrics::set_global_recorder(recorder).is_ok() {
                super::describe();
                // Histogram samples are folded into their summaries by upkeep.
                let upkeep = handle.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let mut every = tokio::time::interval(Duration::from_secs(5));
                        loop {
                            every.tick().await;
                            upkeep.run_upkeep();
                        }
                    });
                }
            }
            handle
        })
        .clone()
}

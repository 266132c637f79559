//! Log setup shared by the binaries. Filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Lambda functions: JSON lines without colours (CloudWatch shows escape codes verbatim) and
/// without timestamps (CloudWatch stamps every line).
pub fn init_lambda() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_ansi(false)
        .with_target(false)
        // Each line lists its spans (the runtime's has the request id); not the innermost twice.
        .with_current_span(false)
        .without_time()
        .init();
}

/// The CLI: readable lines on stderr, or JSON lines with `HOOKHUB_LOG_FORMAT=json`.
pub fn init_cli() {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_writer(std::io::stderr);
    if std::env::var("HOOKHUB_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

//! Receiver Lambda: configuration and AWS clients are built once at init, then every API
//! Gateway event goes through the shared axum router.

use hookhub::aws::Aws;
use hookhub::metrics::emf::Output;
use hookhub::settings::Env;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    hookhub::telemetry::init_lambda();
    let app = init().await.inspect_err(|e| {
        tracing::error!(error = %e, "receiver cannot start");
    })?;
    lambda_http::run(app).await
}

async fn init() -> Result<axum::Router, Error> {
    let env = Env::process();
    let config = env.receiver_config()?;
    let metrics = env.metrics_settings()?;
    hookhub::metrics::emf::install(&metrics.namespace, Output::Stdout);
    let aws = Aws::from_env().await?;
    if env.create_resources()? {
        aws.ensure_resources().await?;
    }
    let backend = aws.backend().await?;
    Ok(hookhub_receiver::app(backend, config))
}

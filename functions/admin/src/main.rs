//! Admin Lambda: configuration and AWS clients are built once at init, then every API Gateway
//! event goes through the shared axum admin router.

use hookhub::aws::Aws;
use hookhub::settings::Env;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    hookhub::telemetry::init_lambda();
    let app = init().await.inspect_err(|e| {
        tracing::error!(error = %e, "admin API cannot start");
    })?;
    lambda_http::run(app).await
}

async fn init() -> Result<axum::Router, Error> {
    let env = Env::process();
    // First, so a function deployed without a key fails at once, before any AWS call.
    let key = env.admin_key()?;
    let allow_private_targets = env.delivery_options()?.allow_private_targets;
    let aws = Aws::from_env().await?;
    if env.create_resources()? {
        aws.ensure_resources().await?;
    }
    // Uncached: what the admin API shows is what is stored.
    let backend = aws.uncached_backend().await?;
    Ok(hookhub_admin::app_with_targets(
        backend,
        &key,
        allow_private_targets,
    ))
}

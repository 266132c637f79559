//! Dispatcher Lambda: configuration, AWS clients and the delivery HTTP client are built once
//! at init; each SQS batch is settled record by record by `hookhub_dispatcher::handle_batch`.

use hookhub::aws::Aws;
use hookhub::metrics::emf::Output;
use hookhub::settings::Env;
use hookhub_dispatcher::{
    handle_batch, sweep, DispatcherContext, DispatcherInput, SqsBatchResponse,
};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    hookhub::telemetry::init_lambda();
    let ctx = init().await.inspect_err(|e| {
        tracing::error!(error = %e, "dispatcher cannot start");
    })?;
    let ctx = &ctx;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<DispatcherInput>| async move {
            match event.payload {
                // Never an error: failures are reported per record in the response.
                DispatcherInput::Tasks(batch) => Ok::<_, Error>(handle_batch(ctx, batch).await),
                DispatcherInput::Sweep(_) => {
                    sweep(ctx).await?;
                    Ok(SqsBatchResponse::default())
                }
            }
        },
    ))
    .await
}

async fn init() -> Result<DispatcherContext, Error> {
    let env = Env::process();
    let config = env.dispatcher_config()?;
    let delivery = env.delivery_options()?;
    let metrics = env.metrics_settings()?;
    hookhub::metrics::set_max_subscriptions(metrics.max_subscriptions);
    hookhub::metrics::emf::install(&metrics.namespace, Output::Stdout);
    let aws = Aws::from_env().await?;
    if env.create_resources()? {
        aws.ensure_resources().await?;
    }
    Ok(DispatcherContext::from_aws(&aws, config, &delivery).await?)
}

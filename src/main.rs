//! Cold start: configuration, logging, the AWS clients, then serve.

// The concurrent runtime's future nests deeper than the compiler's default
// layout query limit (128).
#![recursion_limit = "256"]

use std::sync::Arc;

use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::log::Stdout;
use kinesis_firehose_bridge::store::S3Store;
use kinesis_firehose_bridge::{Bridge, Config, clients, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init(|name| std::env::var(name).ok());
    // Bad configuration stops the function at init, with the variable named.
    let config = Config::from_env().inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
    let contract = Contract::load(config.event_schema_file.as_deref(), config.event_schema_formats)
        .inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
    let sdk = clients::sdk_config().await;
    let firehose = clients::firehose(&sdk);
    // A bucket that is missing or not writable is not an init error: S3 may
    // come back, and until then what it cannot take is handed back.
    let s3 = clients::s3(&sdk);
    let store = config
        .undelivered_bucket
        .as_ref()
        .map(|bucket| S3Store::new(s3.clone(), bucket));
    let bridge = Arc::new(Bridge::new(config, contract, firehose, store));
    // One invocation at a time, unless the platform sets
    // AWS_LAMBDA_MAX_CONCURRENCY above 1 (Lambda Managed Instances); the
    // bridge holds no state between invocations but a warning flag.
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<_>| {
        let bridge = bridge.clone();
        async move { bridge.handle(event, &Stdout).await }
    }))
    .await
}

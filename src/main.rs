//! Cold start: configuration, logging, the AWS clients, then serve.

// The concurrent runtime's future nests deeper than the compiler's default
// layout query limit (128).
#![recursion_limit = "256"]

use std::sync::Arc;

use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::report::Stdout;
use kinesis_firehose_bridge::store::S3Store;
use kinesis_firehose_bridge::{Bridge, Config, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init(|name| std::env::var(name).ok());
    // Bad configuration stops the function at init, with the variable named.
    let config = Config::from_env().inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
    let contract = Contract::load(config.event_schema_file.as_deref(), config.event_schema_formats)
        .inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
    // Region, credentials and `AWS_ENDPOINT_URL` come from the environment.
    let sdk_config = aws_config::load_from_env().await;
    let firehose = SdkFirehose::new(aws_sdk_firehose::Client::new(&sdk_config));
    // A bucket that is missing or not writable is not an init error: S3 may
    // come back, and until then the undelivered records stay in the log.
    // Path-style addressing only against a local endpoint, where a bucket
    // cannot be a subdomain of 127.0.0.1.
    let local_endpoint = sdk_config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let store = config.undelivered_bucket.as_ref().map(|bucket| {
        let s3 = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(local_endpoint)
            .build();
        S3Store::new(aws_sdk_s3::Client::from_conf(s3), bucket)
    });
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

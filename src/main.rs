//! Cold start: configuration, logging, the AWS clients, then serve.

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
    let contract = Contract::load(config.event_schema_file.as_deref())
        .inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
    // Region, credentials and `AWS_ENDPOINT_URL` come from the environment.
    let sdk_config = aws_config::load_from_env().await;
    let firehose = SdkFirehose::new(aws_sdk_firehose::Client::new(&sdk_config));
    // A bucket that is missing or not writable is not an init error: S3 may
    // come back, and until then the undelivered records stay in the log.
    let store = config.undelivered_bucket.as_ref().map(|bucket| {
        let s3 = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(true)
            .build();
        S3Store::new(aws_sdk_s3::Client::from_conf(s3), bucket)
    });
    let bridge = Bridge::new(config, contract, firehose, store);
    lambda_runtime::run(service_fn(|event: LambdaEvent<_>| bridge.handle(event, &Stdout))).await
}

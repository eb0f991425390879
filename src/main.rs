//! Cold start: configuration, logging, the AWS clients, then serve.

// The concurrent runtime's future nests deeper than the compiler's default
// layout query limit (128).
#![recursion_limit = "256"]

use std::sync::Arc;

use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::cold_start::ColdStart;
use kinesis_firehose_bridge::log::Stdout;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = ColdStart::from_env().await?;
    let store = start.store();
    let bridge = Arc::new(Bridge::new(start.config, start.contract, start.firehose, store));
    // One invocation at a time, unless the platform sets
    // AWS_LAMBDA_MAX_CONCURRENCY above 1 (Lambda Managed Instances); the
    // bridge holds no state between invocations but a warning flag.
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<_>| {
        let bridge = bridge.clone();
        async move { bridge.handle(event, &Stdout).await }
    }))
    .await
}

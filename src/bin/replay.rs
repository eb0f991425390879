//! The replay function's cold start: the bridge's own configuration (the
//! same variables, set by the same template parameters), then serve replay
//! requests (`{"prefix": "dead-letters/", "bucket": "…", "dry_run": true}`).

use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::bridge::deadline_from_epoch_ms;
use kinesis_firehose_bridge::cold_start::ColdStart;
use kinesis_firehose_bridge::log::Stdout;
use kinesis_firehose_bridge::replay::{self, Answer, Request, RequestError};
use kinesis_firehose_bridge::store::S3Store;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let start = ColdStart::from_env().await?;
    let store = start.store();
    let stack_bucket = start.config.undelivered_bucket.clone();
    let s3 = start.s3;
    let bridge = Bridge::new(replay::settings(start.config), start.contract, start.firehose, store);
    let (bridge, s3, stack_bucket) = (&bridge, &s3, &stack_bucket);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Request>| async move {
        let bucket = event
            .payload
            .bucket
            .as_ref()
            .or(stack_bucket.as_ref())
            .ok_or(RequestError::NoBucket)
            .map_err(|e| diagnostic("BadRequest", e.to_string()))?;
        let bucket = S3Store::new(s3.clone(), bucket);
        let deadline = deadline_from_epoch_ms(event.context.deadline);
        let id = &event.context.request_id;
        let answer = replay::run(bridge, &bucket, &event.payload, deadline, id, &Stdout)
            .await
            .map_err(|e| diagnostic("BadRequest", e.to_string()))?;
        answered(answer)
    }))
    .await
}

/// The answer, or an error naming the objects that could not be read (the
/// rest was replayed; the answer is in the message).
fn answered(answer: Answer) -> Result<Answer, Diagnostic> {
    if answer.unreadable.is_empty() {
        return Ok(answer);
    }
    let keys: Vec<&str> = answer.unreadable.iter().map(|u| u.key.as_str()).collect();
    let json = serde_json::to_string(&answer).unwrap_or_default();
    Err(diagnostic(
        "UnreadableObjects",
        format!(
            "{} objects could not be read and were left as they are: {keys:?}; {json}",
            keys.len()
        ),
    ))
}

fn diagnostic(error_type: &str, error_message: String) -> Diagnostic {
    Diagnostic {
        error_type: error_type.to_owned(),
        error_message,
    }
}

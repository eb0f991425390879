//! The one seam to Amazon Data Firehose.
//!
//! Delivery logic calls [`Firehose::put_record_batch`]; [`SdkFirehose`] is
//! the adapter over the AWS SDK, mapping `RequestResponses[i]` back to input
//! record `i`. Behaviour tests script a fake of their own behind the trait.

use std::future::Future;

use aws_sdk_firehose::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use thiserror::Error;

/// Why one entry of an otherwise answered call was not accepted, as
/// Firehose reports it (e.g. `ServiceUnavailableException`, "Slow down.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub code: String,
    pub message: String,
}

/// Why a whole call failed: nothing in it was accepted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CallError {
    #[error("Firehose refused the call: {code}: {message}")]
    Service { code: String, message: String },
    #[error("Firehose could not be reached: {0}")]
    Transport(String),
    #[error("no answer from Firehose before the invocation deadline")]
    DeadlineExceeded,
}

impl CallError {
    /// The error code for a dead letter.
    pub fn code(&self) -> &str {
        match self {
            CallError::Service { code, .. } => code,
            CallError::Transport(_) => "TransportError",
            CallError::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    pub fn message(&self) -> String {
        match self {
            CallError::Service { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Per-entry answers of one call: `None` accepted, `Some` refused.
pub type EntryResults = Vec<Option<EntryError>>;

/// What the delivery logic needs from Firehose.
pub trait Firehose: Send + Sync {
    /// Sends `records` to `stream` in one `PutRecordBatch` call. On success
    /// the result has exactly one entry per input record, in input order.
    fn put_record_batch(
        &self,
        stream: &str,
        records: &[&[u8]],
    ) -> impl Future<Output = Result<EntryResults, CallError>> + Send;
}

/// Firehose through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkFirehose {
    client: aws_sdk_firehose::Client,
}

impl SdkFirehose {
    pub fn new(client: aws_sdk_firehose::Client) -> Self {
        SdkFirehose { client }
    }
}

impl Firehose for SdkFirehose {
    async fn put_record_batch(&self, stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        let entries = records
            .iter()
            .map(|data| Record::builder().data(Blob::new(*data)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CallError::Transport(format!("could not build the request: {e}")))?;
        let output = self
            .client
            .put_record_batch()
            .delivery_stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .map_err(call_error)?;
        Ok(entry_results(records.len(), output.request_responses()))
    }
}

/// Maps answers to inputs by index. An entry without an answer, or with an
/// answer that neither accepts nor refuses it, counts as refused: it is
/// resent, never assumed delivered.
fn entry_results(sent: usize, responses: &[aws_sdk_firehose::types::PutRecordBatchResponseEntry]) -> EntryResults {
    (0..sent)
        .map(|i| match responses.get(i) {
            None => Some(EntryError {
                code: "MissingResponseEntry".to_owned(),
                message: format!("Firehose answered {} entries for {sent} records", responses.len()),
            }),
            Some(entry) => match (entry.error_code(), entry.record_id()) {
                (Some(code), _) => Some(EntryError {
                    code: code.to_owned(),
                    message: entry.error_message().unwrap_or_default().to_owned(),
                }),
                (None, Some(_)) => None,
                (None, None) => Some(EntryError {
                    code: "MissingRecordId".to_owned(),
                    message: "Firehose answered the entry with neither a record id nor an error".to_owned(),
                }),
            },
        })
        .collect()
}

fn call_error<E, R>(err: SdkError<E, R>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            CallError::Service {
                code: e.code().unwrap_or("Unknown").to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            }
        }
        other => CallError::Transport(DisplayErrorContext(&other).to_string()),
    }
}

//! The event source mapping's S3 on-failure objects: what Lambda writes
//! when it gives up on a batch, read back strictly so replay can send the
//! batch again.
//!
//! Lambda developer guide, "Retaining discarded batches for a Kinesis Data
//! Streams event source": "For Amazon S3 destinations, Lambda also sends the
//! entire invocation record along with the metadata", with "the `payload`
//! field [containing] the original invocation record as an escaped JSON
//! string", in an object named
//! `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`.
//! Fields may come in any order and unknown ones are ignored; the payload's
//! records must agree with `KinesisBatchInfo` (count and sequence range).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::batch::{KinesisBatch, SourceRecord};

/// Where Lambda writes on-failure objects in the destination bucket.
pub const PREFIX: &str = "aws/lambda/";

/// Why a batch was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// One on-failure object, as Lambda writes it to S3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    #[serde(rename = "requestContext")]
    pub request_context: RequestContext,
    #[serde(rename = "responseContext")]
    pub response_context: ResponseContext,
    pub version: String,
    pub timestamp: String,
    #[serde(rename = "KinesisBatchInfo")]
    pub batch_info: KinesisBatchInfo,
    /// The invocation event, as an escaped JSON string.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub request_id: String,
    pub function_arn: String,
    pub condition: Condition,
    pub approximate_invoke_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    pub status_code: u16,
    pub executed_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisBatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub approximate_arrival_of_first_record: String,
    pub approximate_arrival_of_last_record: String,
    pub batch_size: usize,
    pub stream_arn: String,
}

/// Why an object is not an on-failure record that can be replayed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum NotOnFailure {
    #[error(
        "not a Lambda on-failure record ({0}); expected the JSON object Lambda writes to an S3 on-failure \
         destination, with requestContext, KinesisBatchInfo and payload"
    )]
    NotTheRecord(String),
    #[error("the on-failure record of shard {shard} ({start}..{end}) has a payload that is not a Kinesis event: {why}")]
    NotAnEvent {
        shard: String,
        start: String,
        end: String,
        why: String,
    },
    #[error("the payload disagrees with KinesisBatchInfo: {0}")]
    Mismatch(String),
}

impl InvocationRecord {
    /// Reads an on-failure object and the batch it carries; an error says
    /// why it is not one.
    pub fn parse(bytes: &[u8]) -> Result<(Self, KinesisBatch), NotOnFailure> {
        let record: InvocationRecord =
            serde_json::from_slice(bytes).map_err(|e| NotOnFailure::NotTheRecord(e.to_string()))?;
        let batch = record.batch()?;
        record.check(&batch)?;
        Ok((record, batch))
    }

    /// The batch the function was given.
    pub fn batch(&self) -> Result<KinesisBatch, NotOnFailure> {
        let not_an_event = |why: String| NotOnFailure::NotAnEvent {
            shard: self.batch_info.shard_id.clone(),
            start: self.batch_info.start_sequence_number.clone(),
            end: self.batch_info.end_sequence_number.clone(),
            why,
        };
        let value: serde_json::Value = serde_json::from_str(&self.payload).map_err(|e| not_an_event(e.to_string()))?;
        if !value.get("Records").is_some_and(serde_json::Value::is_array) {
            return Err(not_an_event("no Records array".to_owned()));
        }
        serde_json::from_value(value).map_err(|e| not_an_event(e.to_string()))
    }

    /// Whether `batch` is the one `KinesisBatchInfo` describes.
    fn check(&self, batch: &KinesisBatch) -> Result<(), NotOnFailure> {
        let info = &self.batch_info;
        let first = batch.records.first().map(|r| r.sequence_number()).unwrap_or_default();
        let last = batch.records.last().map(|r| r.sequence_number()).unwrap_or_default();
        let disagreement = if batch.records.len() != info.batch_size {
            Some("its record count")
        } else if first != info.start_sequence_number {
            Some("its first sequence number")
        } else if last != info.end_sequence_number {
            Some("its last sequence number")
        } else {
            None
        };
        match disagreement {
            None => Ok(()),
            Some(payload) => Err(NotOnFailure::Mismatch(format!(
                "{payload} (records {}, first {first}, last {last}) against batchSize {}, {}..{}",
                batch.records.len(),
                info.batch_size,
                info.start_sequence_number,
                info.end_sequence_number
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(payload: &str, batch_size: usize, start: &str, end: &str) -> String {
        serde_json::json!({
            "requestContext": {"requestId": "r", "functionArn": "arn:f", "condition": "RetryAttemptsExhausted",
                               "approximateInvokeCount": 3},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2026-11-25T12:00:00Z",
            "KinesisBatchInfo": {"shardId": "shardId-000000000003", "startSequenceNumber": start,
                                 "endSequenceNumber": end, "approximateArrivalOfFirstRecord": "x",
                                 "approximateArrivalOfLastRecord": "x", "batchSize": batch_size,
                                 "streamArn": "arn:s"},
            "payload": payload,
        })
        .to_string()
    }

    const EVENT: &str = r#"{"Records":[{"kinesis":{"partitionKey":"k","sequenceNumber":"1","data":"e30="}},{"kinesis":{"partitionKey":"k","sequenceNumber":"2","data":"e30="}}]}"#;

    #[test]
    fn reads_the_batch_it_carries() {
        let (_, batch) = InvocationRecord::parse(object(EVENT, 2, "1", "2").as_bytes()).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[1].data(), b"{}");
    }

    #[test]
    fn a_payload_that_disagrees_with_its_batch_info_is_refused() {
        for (size, start, end, what) in [
            (3, "1", "2", "record count"),
            (2, "0", "2", "first sequence"),
            (2, "1", "9", "last sequence"),
        ] {
            let error = InvocationRecord::parse(object(EVENT, size, start, end).as_bytes()).unwrap_err();
            assert!(error.to_string().contains(what), "{error}");
        }
    }

    #[test]
    fn something_else_is_refused_with_a_reason() {
        let error = InvocationRecord::parse(br#"{"kind":"dead_letter"}"#).unwrap_err();
        assert!(error.to_string().contains("not a Lambda on-failure record"), "{error}");
        let error = InvocationRecord::parse(object("[]", 0, "", "").as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("payload that is not a Kinesis event"),
            "{error}"
        );
    }
}

//! The event source mapping's S3 on-failure destination: what Lambda writes
//! when it gives up on a batch, as the local event source
//! mapping writes it (the library's `on_failure` reads it back).
//!
//! Lambda developer guide, "Retaining discarded batches for a Kinesis Data
//! Streams event source": "For Amazon S3 destinations, Lambda also sends the
//! entire invocation record along with the metadata", with "the `payload`
//! field [containing] the original invocation record as an escaped JSON
//! string", in an object named
//! `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`.
//! The local event source mapping writes exactly that to moto's S3; the
//! verifier counts the events in such objects as given up but kept, and
//! replay sends them again.

pub use kinesis_firehose_bridge::on_failure::{
    Condition, InvocationRecord, KinesisBatchInfo, PREFIX, RequestContext, ResponseContext,
};
use rand::RngExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the mapping knows of a batch it gives up on.
pub struct GivenUp<'a> {
    pub shard_id: &'a str,
    pub stream_arn: &'a str,
    pub function_arn: &'a str,
    pub condition: Condition,
    pub invocations: u64,
    pub last_request_id: &'a str,
    /// The batch's sequence numbers, first and last.
    pub first_sequence: &'a str,
    pub last_sequence: &'a str,
    /// Arrival times of the first and last records, seconds since the epoch.
    pub first_arrival: f64,
    pub last_arrival: f64,
    pub records: usize,
    /// The invocation event the function was given.
    pub event: &'a [u8],
}

/// The on-failure object Lambda writes for `given_up`.
pub fn record(given_up: &GivenUp<'_>) -> InvocationRecord {
    InvocationRecord {
        request_context: RequestContext {
            request_id: given_up.last_request_id.to_owned(),
            function_arn: given_up.function_arn.to_owned(),
            condition: given_up.condition,
            approximate_invoke_count: given_up.invocations,
        },
        response_context: ResponseContext {
            status_code: 200,
            executed_version: "$LATEST".to_owned(),
            function_error: Some("Unhandled".to_owned()),
        },
        version: "1.0".to_owned(),
        timestamp: rfc3339(OffsetDateTime::now_utc()),
        batch_info: KinesisBatchInfo {
            shard_id: given_up.shard_id.to_owned(),
            start_sequence_number: given_up.first_sequence.to_owned(),
            end_sequence_number: given_up.last_sequence.to_owned(),
            approximate_arrival_of_first_record: seconds_rfc3339(given_up.first_arrival),
            approximate_arrival_of_last_record: seconds_rfc3339(given_up.last_arrival),
            batch_size: given_up.records,
            stream_arn: given_up.stream_arn.to_owned(),
        },
        payload: String::from_utf8_lossy(given_up.event).into_owned(),
    }
}

/// The object's key: `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`.
pub fn key(record: &InvocationRecord, mapping_uuid: &str) -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "{PREFIX}{mapping_uuid}/{}/{:04}/{:02}/{:02}/{:04}-{:02}-{:02}T{:02}.{:02}.{:02}-{}",
        record.batch_info.shard_id,
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        uuid()
    )
}

/// A random UUID (version 4), as Lambda names objects and mappings.
pub fn uuid() -> String {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn seconds_rfc3339(seconds: f64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos((seconds * 1e9) as i128)
        .map(rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"Records":[{"kinesis":{"partitionKey":"k","sequenceNumber":"1","data":"e30=","approximateArrivalTimestamp":1764072000.5}}]}"#;

    fn given_up() -> InvocationRecord {
        record(&GivenUp {
            shard_id: "shardId-000000000003",
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f",
            condition: Condition::RetryAttemptsExhausted,
            invocations: 3,
            last_request_id: "r-3",
            first_sequence: "1",
            last_sequence: "1",
            first_arrival: 1764072000.5,
            last_arrival: 1764072000.5,
            records: 1,
            event: EVENT.as_bytes(),
        })
    }

    #[test]
    fn writes_what_lambda_writes_and_reads_it_back() {
        let record = given_up();
        let json: serde_json::Value = serde_json::to_value(&record).unwrap();
        assert_eq!(json["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(json["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(json["KinesisBatchInfo"]["batchSize"], 1);
        assert_eq!(
            json["KinesisBatchInfo"]["approximateArrivalOfFirstRecord"],
            "2025-11-25T12:00:00.5Z"
        );
        assert!(json["payload"].is_string(), "the payload is an escaped JSON string");
        let (_, batch) = InvocationRecord::parse(&serde_json::to_vec(&record).unwrap()).unwrap();
        assert_eq!(batch.records.len(), 1);
    }

    #[test]
    fn names_objects_as_lambda_does() {
        let key = key(&given_up(), "0f2a9f3c-1111-4222-8333-444455556666");
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(
            &parts[..4],
            [
                "aws",
                "lambda",
                "0f2a9f3c-1111-4222-8333-444455556666",
                "shardId-000000000003"
            ]
        );
        assert_eq!(parts.len(), 8);
        assert_eq!(parts[7].len(), "YYYY-MM-DDTHH.MM.SS-".len() + 36);
    }
}

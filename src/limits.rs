//! The limits the bridge must stay inside: AWS service limits, each with
//! the sentence of the documentation it comes from, and the bounds the
//! bridge sets itself, each with the reason for its value.
//!
//! Sources: Amazon Data Firehose API Reference (`PutRecordBatch`) and its
//! developer guide's "Amazon Data Firehose Quota" page; the Kinesis Data
//! Streams API Reference and quotas page; the Lambda and CloudWatch Logs
//! quotas pages.
//!
//! The per-second quotas (Firehose Direct PUT, Kinesis shard writes) are
//! not checked by the function: the local fault proxy enforces them
//! (`local/src/quota.rs`) and the capacity plan sizes a deployment by them
//! (`make plan`). They live here so that every AWS limit is stated once.

use std::time::Duration;

// ------------------------------------------------------------ Firehose --

/// "The maximum size of a record sent to Amazon Data Firehose, before
/// base64-encoding, is 1,000 KiB."
pub const MAX_RECORD_SIZE: usize = 1_024_000;

/// "Each PutRecordBatch request supports up to 500 records."
pub const MAX_RECORDS_PER_REQUEST: usize = 500;

/// "... up to a limit of 4 MiB for the entire request." Counted as the
/// request is sent: the JSON body with each record's data base64-encoded.
pub const MAX_REQUEST_SIZE: usize = 4 * 1024 * 1024;

/// Firehose bills ingestion per record, "rounded up to the nearest 5KB
/// (5120 bytes)" (Amazon Data Firehose pricing, Direct PUT).
pub const BILLING_INCREMENT: usize = 5 * 1024;

/// Bytes a JSON request spends around each record's base64 data:
/// `{"Data":"` and `"},`.
pub const REQUEST_BYTES_PER_RECORD: usize = r#"{"Data":""},"#.len();

/// Bytes a JSON request spends around the records, before the stream name:
/// `{"DeliveryStreamName":"","Records":[]}`.
pub const REQUEST_BYTES_FIXED: usize = r#"{"DeliveryStreamName":"","Records":[]}"#.len();

/// `DeliveryStreamName`: "Minimum length of 1. Maximum length of 64.
/// Pattern: `[a-zA-Z0-9_.-]+`" (Firehose API Reference).
pub const MAX_DELIVERY_STREAM_NAME: usize = 64;

/// The most events one packed record holds by default (the bridge's own
/// bound): the number of lines Firehose dynamic partitioning can split out
/// of one record, so that a stream with it can read every line.
pub const DEFAULT_MAX_EVENTS_PER_RECORD: usize = 500;

/// The least time a `PutRecordBatch` call is started with. A call given
/// less is likely to be abandoned at the deadline after Firehose took its
/// records, which turns into a duplicate (the batch is retried) or a dead
/// letter for an event that was in fact delivered; better not to start it.
///
/// No public figure of `PutRecordBatch` latency exists (Firehose reports
/// it as the CloudWatch metric `PutRecordBatch.Latency`, per stream). The
/// value covers a full request, 4 MiB as sent, at the 5 MiB/s a delivery
/// stream ingests in the largest regions (0.8 s), with the SDK's signing
/// and one TLS handshake on top; a healthy call is tens of milliseconds.
/// Watch `PutRecordBatch.Latency` (p99) after deploying and keep this above
/// it.
pub const MIN_CALL_TIME: Duration = Duration::from_millis(1_000);

/// A Firehose delivery stream's Direct PUT quota: what it takes in a
/// second, `PutRecord` and `PutRecordBatch` together. Over it, Firehose
/// refuses entries with `ServiceUnavailableException` "Slow down."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectPutQuota {
    pub records_per_second: u64,
    pub requests_per_second: u64,
    pub bytes_per_second: u64,
}

/// "When Direct PUT is configured as the data source, each Firehose stream
/// provides the following combined quota for PutRecord and PutRecordBatch
/// requests: For US East (N. Virginia), US West (Oregon), and Europe
/// (Ireland): 500,000 records/second, 2,000 requests/second, and 5
/// MiB/second." (Amazon Data Firehose Developer Guide, "Amazon Data
/// Firehose Quota".) The quota is per stream: streams add up.
pub const DIRECT_PUT_QUOTA: DirectPutQuota = DirectPutQuota {
    records_per_second: 500_000,
    requests_per_second: 2_000,
    bytes_per_second: 5 * 1024 * 1024,
};

/// The Regions of [`DIRECT_PUT_QUOTA`].
pub const DIRECT_PUT_QUOTA_REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];

/// "For other AWS Regions: 100,000 records/second, 1,000
/// requests/second, and 1 MiB/second." (the same page). "The three quota
/// scale proportionally": an increase raises all three by one factor.
pub const DIRECT_PUT_QUOTA_OTHER_REGIONS: DirectPutQuota = DirectPutQuota {
    records_per_second: 100_000,
    requests_per_second: 1_000,
    bytes_per_second: 1024 * 1024,
};

// ------------------------------------------------------------- Kinesis --

/// "Each shard can support up to five read transactions per second"
/// (Kinesis Data Streams quotas, `GetRecords`): the local event source
/// mapping polls a shard at most this often.
pub const GET_RECORDS_PER_SHARD_PER_SECOND: u32 = 5;

/// `PartitionKey`: "Minimum length of 1. Maximum length of 256." (Kinesis
/// API Reference, `PutRecord`). KPL user records carry keys Kinesis never
/// checked, so a rejected record's line keeps at most this many bytes of
/// its key.
pub const MAX_PARTITION_KEY: usize = 256;

/// `SequenceNumber`: "Pattern: `0|([1-9]\d{0,128})`" (Kinesis API
/// Reference, `Record`).
pub const MAX_SEQUENCE_NUMBER: usize = 129;

/// "A single shard can ingest up to 1 MB of data per second (including
/// partition keys) or 1,000 records per second for writes." (Kinesis Data
/// Streams Developer Guide, "Quotas and limits"; provisioned mode.) The MB
/// read as 2^20 bytes, as the template's `ShardCount` says (1 MiB/s).
pub const SHARD_WRITE_RECORDS_PER_SECOND: u64 = 1_000;
pub const SHARD_WRITE_BYTES_PER_SECOND: u64 = 1024 * 1024;

// -------------------------------------------------------------- Lambda --

/// "Invocation payload (request and response): 6 MB each for request and
/// response (synchronous)" (Lambda quotas). The event source mapping ends
/// a batch before the record that would pass it.
pub const MAX_INVOCATION_PAYLOAD: usize = 6 * 1024 * 1024;

/// Lambda's longest invocation: "The maximum timeout is 900 seconds (15
/// minutes)" (Lambda quotas). A runtime deadline further away than this is
/// no deadline.
pub const MAX_INVOCATION: Duration = Duration::from_secs(900);

// ------------------------------------------------------------------ S3 --

/// "Bucket names must be between 3 (min) and 63 (max) characters long"
/// (S3 User Guide, "General purpose bucket naming rules").
pub const BUCKET_NAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=63;

// ------------------------------------------------------ CloudWatch Logs --

/// "Event size: 256 KB (maximum). This quota can't be changed."
/// (CloudWatch Logs quotas). A longer line is cut, and what it carried is
/// gone; every line the bridge writes stays below it.
pub const CLOUDWATCH_MAX_EVENT_SIZE: usize = 256 * 1024;

// ------------------------------------------------ the bridge's own bounds --

/// Raw bytes of payload one line may carry: a log line's base64 of this
/// (218,456 bytes), plus its bounded fields, stays below
/// [`CLOUDWATCH_MAX_EVENT_SIZE`], and so below [`MAX_RECORD_SIZE`] too.
/// Larger payloads are written in numbered parts (`part.rs`).
pub const MAX_DATA_PER_LINE: usize = 160 * 1024;

/// User records one invocation takes out of KPL aggregates. An aggregate
/// of empty user records costs 6 bytes each, so one 1 MiB record could
/// become 170,000 events, each with its own reject line, and a 6 MB payload
/// of them would need gigabytes. An aggregate that would take the
/// invocation past this count waits for the next invocation: it and the
/// records after it are handed back to Kinesis (`batchItemFailures`), which
/// sends them again, so an invocation never holds more. An aggregate that
/// alone holds more is rejected whole, its bytes kept, without its user
/// records being decoded.
///
/// The value keeps the worst invocation within 64 MiB (docs/performance.md, Memory).
/// Real traffic rarely meets it: a 6 MB payload holds about 4.5 MB of
/// records, so 25,000 user records means events of 180 bytes on average;
/// smaller events take two invocations per batch.
pub const MAX_USER_RECORDS_PER_INVOCATION: usize = 25_000;

/// Bytes one aggregate may expand to: its user records' data plus, for each,
/// its partition key and explicit hash key, as the events would carry them
/// downstream. A real aggregate is at most 1 MiB of data with keys of at
/// most 256 characters; a hostile one shares a 60,000-byte key among 5,000
/// user records (300 MB). Rejected whole beyond this.
pub const MAX_AGGREGATE_EXPANSION: usize = 4 * 1024 * 1024;

// A line part leaves 24 KiB in a CloudWatch event for the line's other,
// bounded, fields; and what fits a CloudWatch event fits a Firehose record.
const _: () = assert!(base64_len(MAX_DATA_PER_LINE) + 24 * 1024 < CLOUDWATCH_MAX_EVENT_SIZE);
const _: () = assert!(CLOUDWATCH_MAX_EVENT_SIZE < MAX_RECORD_SIZE);

/// Bytes of reject lines sent to the rejects stream at a time: two full
/// requests' worth, so that a batch of many small rejects never holds all
/// of its lines at once.
pub const REJECTS_CHUNK: usize = 2 * MAX_REQUEST_SIZE * 3 / 4;

// ----------------------------------------------------------- arithmetic --

/// Length of `n` bytes once base64-encoded (padded), as Firehose receives them.
pub const fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Bytes Firehose bills for one record of `n` bytes.
pub const fn billed_bytes(n: usize) -> usize {
    if n == 0 {
        BILLING_INCREMENT
    } else {
        n.div_ceil(BILLING_INCREMENT) * BILLING_INCREMENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_length_rounds_up_to_whole_quads() {
        assert_eq!(base64_len(0), 0);
        assert_eq!(base64_len(1), 4);
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        assert_eq!(base64_len(MAX_RECORD_SIZE), 1_365_336);
    }

    #[test]
    fn billing_rounds_each_record_up_to_five_kib() {
        assert_eq!(billed_bytes(1), 5120);
        assert_eq!(billed_bytes(5120), 5120);
        assert_eq!(billed_bytes(5121), 10240);
    }
}

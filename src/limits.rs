//! Amazon Data Firehose service limits the bridge must stay inside.
//!
//! Source: Amazon Data Firehose API Reference, `PutRecordBatch`, and the
//! developer guide's "Amazon Data Firehose Quota" page.

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

//! Rejected records: what the rejects stream receives and the log keeps.
//!
//! A rejected record never fails the invocation. It is written, with its
//! reason and original bytes, as one JSON line to `REJECTS_DELIVERY_STREAM`
//! when that is set, and always logged with `kind: "rejected"`. The log line
//! carries the payload only when it is the only copy: no rejects stream, the
//! line was too large for a Firehose record, or its delivery failed.

use base64_simd::STANDARD;
use serde::{Deserialize, Serialize};

use crate::event::Reason;
use crate::limits::{MAX_RECORD_SIZE, base64_len};

pub const KIND: &str = "rejected";

/// One line of the rejects stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectLine {
    pub reason: String,
    pub detail: String,
    pub sequence_number: String,
    pub sub_sequence_number: Option<u64>,
    pub partition_key: String,
    /// Seconds since the epoch, as Kinesis reports it.
    pub approximate_arrival_timestamp: f64,
    /// Base64 of the original bytes; absent when that would not fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// The log line for one rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectLog {
    pub kind: String,
    pub reason: String,
    pub detail: String,
    pub sequence_number: String,
    pub sub_sequence_number: Option<u64>,
    /// Only when this log line is the only copy of the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Where a rejected payload came from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub sequence_number: &'a str,
    pub sub_sequence_number: Option<u64>,
    pub partition_key: &'a str,
    pub approximate_arrival_timestamp: f64,
}

/// The rejects-stream line for `data`, newline not included, and whether it
/// kept the payload: it does not when the base64 would push the line past
/// the size of a Firehose record.
pub fn line(source: Source<'_>, reason: &Reason, data: &[u8]) -> (Vec<u8>, bool) {
    let mut line = RejectLine {
        reason: reason.code().to_owned(),
        detail: reason.to_string(),
        sequence_number: source.sequence_number.to_owned(),
        sub_sequence_number: source.sub_sequence_number,
        partition_key: source.partition_key.to_owned(),
        approximate_arrival_timestamp: source.approximate_arrival_timestamp,
        data: None,
    };
    // Serialising a struct of strings and numbers cannot fail.
    let bare = serde_json::to_vec(&line).unwrap_or_default();
    // `,"data":""` plus the base64 and the newline.
    if bare.len() + 10 + base64_len(data.len()) < MAX_RECORD_SIZE {
        line.data = Some(STANDARD.encode_to_string(data));
        if let Ok(full) = serde_json::to_vec(&line) {
            return (full, true);
        }
    }
    (bare, false)
}

pub fn log(source: Source<'_>, reason: &Reason, data: Option<&[u8]>) -> RejectLog {
    RejectLog {
        kind: KIND.to_owned(),
        reason: reason.code().to_owned(),
        detail: reason.to_string(),
        sequence_number: source.sequence_number.to_owned(),
        sub_sequence_number: source.sub_sequence_number,
        data: data.map(|d| STANDARD.encode_to_string(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: Source = Source {
        sequence_number: "4959",
        sub_sequence_number: Some(2),
        partition_key: "pk",
        approximate_arrival_timestamp: 1764072000.5,
    };

    #[test]
    fn line_carries_reason_origin_and_original_bytes() {
        let (line, kept) = line(SOURCE, &Reason::MissingTimestamp, b"{\"x\":1}");
        assert!(kept);
        let parsed: RejectLine = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed.reason, "missing_timestamp");
        assert_eq!(parsed.sequence_number, "4959");
        assert_eq!(parsed.sub_sequence_number, Some(2));
        assert_eq!(parsed.partition_key, "pk");
        assert_eq!(parsed.approximate_arrival_timestamp, 1764072000.5);
        assert_eq!(STANDARD.decode_to_vec(parsed.data.unwrap()).unwrap(), b"{\"x\":1}");
        assert!(!line.contains(&b'\n'));
    }

    #[test]
    fn line_drops_data_that_would_not_fit_a_record() {
        let big = vec![b'x'; 800_000];
        let (line, kept) = line(SOURCE, &Reason::TooLarge(800_001), &big);
        assert!(line.len() < MAX_RECORD_SIZE);
        assert!(!kept);
        assert!(serde_json::from_slice::<RejectLine>(&line).unwrap().data.is_none());
        let (_, kept) = super::line(SOURCE, &Reason::NotAnObject, b"[]");
        assert!(kept);
    }

    #[test]
    fn largest_payload_that_fits_keeps_the_line_within_a_record() {
        // Find the boundary: the line with data must never exceed the limit.
        for len in [760_000, 767_000, 767_500, 768_000] {
            let (line, _) = line(SOURCE, &Reason::NotAnObject, &vec![b'x'; len]);
            assert!(line.len() < MAX_RECORD_SIZE, "{len}");
        }
    }

    #[test]
    fn log_line_has_payload_only_when_asked() {
        let without = log(SOURCE, &Reason::NotAnObject, None);
        assert!(!serde_json::to_string(&without).unwrap().contains("\"data\""));
        let with = log(SOURCE, &Reason::NotAnObject, Some(b"[]"));
        assert_eq!(with.data.as_deref(), Some("W10="));
        assert_eq!(with.kind, "rejected");
    }
}

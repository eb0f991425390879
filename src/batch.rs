//! The invocation payload: a Kinesis batch as the event source mapping sends
//! it, read with only the fields the bridge uses.
//!
//! `aws_lambda_events::KinesisEvent` reads every field of every record into
//! owned strings and parses a date per record; for a 500-record batch that
//! costs more than all the bridge's own work (see docs/performance.md). This
//! view skips what the bridge does not use and base64-decodes `data` once,
//! straight from the payload. Both shapes implement [`SourceRecord`], so the
//! bridge takes either.

use std::fmt;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use base64_simd::STANDARD;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// What the bridge reads of a Kinesis record.
pub trait SourceRecord {
    fn sequence_number(&self) -> &str;
    fn partition_key(&self) -> &str;
    /// The record's bytes, base64-decoded.
    fn data(&self) -> &[u8];
    /// Seconds since the epoch.
    fn approximate_arrival_timestamp(&self) -> f64;
}

#[cfg(any(test, feature = "builders"))]
pub mod build;

/// A Lambda `KinesisEvent` document, lean.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct KinesisBatch {
    #[serde(rename = "Records", default)]
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    pub kinesis: Payload,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    #[serde(default)]
    pub sequence_number: String,
    #[serde(default)]
    pub partition_key: String,
    #[serde(default, deserialize_with = "seconds")]
    pub approximate_arrival_timestamp: f64,
    #[serde(deserialize_with = "base64_data")]
    pub data: Vec<u8>,
}

impl SourceRecord for Record {
    fn sequence_number(&self) -> &str {
        &self.kinesis.sequence_number
    }
    fn partition_key(&self) -> &str {
        &self.kinesis.partition_key
    }
    fn data(&self) -> &[u8] {
        &self.kinesis.data
    }
    fn approximate_arrival_timestamp(&self) -> f64 {
        self.kinesis.approximate_arrival_timestamp
    }
}

impl SourceRecord for KinesisEventRecord {
    fn sequence_number(&self) -> &str {
        &self.kinesis.sequence_number
    }
    fn partition_key(&self) -> &str {
        &self.kinesis.partition_key
    }
    fn data(&self) -> &[u8] {
        &self.kinesis.data.0
    }
    fn approximate_arrival_timestamp(&self) -> f64 {
        self.kinesis.approximate_arrival_timestamp.0.timestamp_millis() as f64 / 1000.0
    }
}

/// Decodes a base64 string field, borrowing it from the payload when it
/// has no JSON escapes (base64 never needs any).
fn base64_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Base64Visitor;
    impl Visitor<'_> for Base64Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a base64 string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            STANDARD
                .decode_to_vec(v)
                .map_err(|e| E::custom(format!("record data is not base64: {e}")))
        }
    }
    deserializer.deserialize_str(Base64Visitor)
}

/// Seconds since the epoch: a number as Lambda sends it, or a string as
/// `aws_lambda_events` writes it back out.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    struct SecondsVisitor;
    impl Visitor<'_> for SecondsVisitor {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("seconds since the epoch")
        }
        fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            v.parse()
                .map_err(|_| E::custom(format!("approximateArrivalTimestamp {v:?} is not a number")))
        }
    }
    deserializer.deserialize_any(SecondsVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"Records":[{
        "kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"pk","sequenceNumber":"4959",
                   "data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1764072000.123},
        "eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000000:4959",
        "eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::1:role/r",
        "awsRegion":"us-east-1","eventSourceARN":"arn:aws:kinesis:us-east-1:1:stream/s"}]}"#;

    #[test]
    fn reads_what_the_bridge_uses_and_skips_the_rest() {
        let batch: KinesisBatch = serde_json::from_str(EVENT).unwrap();
        let r = &batch.records[0];
        assert_eq!(r.sequence_number(), "4959");
        assert_eq!(r.partition_key(), "pk");
        assert_eq!(r.data(), br#"{"a":1}"#);
        assert_eq!(r.approximate_arrival_timestamp(), 1764072000.123);
    }

    #[test]
    fn agrees_with_aws_lambda_events() {
        let lean: KinesisBatch = serde_json::from_str(EVENT).unwrap();
        let full: aws_lambda_events::event::kinesis::KinesisEvent = serde_json::from_str(EVENT).unwrap();
        let (a, b) = (&lean.records[0], &full.records[0]);
        assert_eq!(a.sequence_number(), b.sequence_number());
        assert_eq!(a.partition_key(), b.partition_key());
        assert_eq!(a.data(), b.data());
        assert_eq!(a.approximate_arrival_timestamp(), b.approximate_arrival_timestamp());
    }

    #[test]
    fn reads_arrival_time_written_as_a_string() {
        let event = EVENT.replace("1764072000.123", "\"1764072000.5\"");
        let batch: KinesisBatch = serde_json::from_str(&event).unwrap();
        assert_eq!(batch.records[0].approximate_arrival_timestamp(), 1764072000.5);
    }

    #[test]
    fn escaped_base64_still_decodes() {
        let event = EVENT.replace("eyJhIjoxfQ==", r"eyJhIjoxfQ\u003d\u003d");
        let batch: KinesisBatch = serde_json::from_str(&event).unwrap();
        assert_eq!(batch.records[0].data(), br#"{"a":1}"#);
    }

    #[test]
    fn data_that_is_not_base64_fails_the_payload_with_a_reason() {
        let event = EVENT.replace("eyJhIjoxfQ==", "***");
        let err = serde_json::from_str::<KinesisBatch>(&event).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}

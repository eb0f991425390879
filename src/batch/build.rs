//! Kinesis records as Lambda's `KinesisEvent` JSON carries them: for tests,
//! benchmarks and the local event source mapping (the `builders` feature).
//! The function only reads them ([`super::KinesisBatch`]).

use serde_json::{Value, json};

/// One Kinesis record of an invocation.
#[derive(Debug, Clone, Copy)]
pub struct EventRecord<'a> {
    pub shard_id: &'a str,
    /// `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`: the record's Region
    /// and the function's role account come from it.
    pub stream_arn: &'a str,
    pub partition_key: &'a str,
    pub sequence_number: &'a str,
    pub data: &'a [u8],
    /// Seconds since the epoch.
    pub arrival: f64,
}

impl EventRecord<'_> {
    /// The record in its exact `KinesisEvent` JSON shape.
    pub fn json(&self) -> Value {
        let mut arn = self.stream_arn.split(':');
        let region = arn.nth(3).unwrap_or("us-east-1");
        let account = arn.next().unwrap_or("123456789012");
        json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": self.partition_key,
                "sequenceNumber": self.sequence_number,
                "data": base64_simd::STANDARD.encode_to_string(self.data),
                "approximateArrivalTimestamp": self.arrival,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{}:{}", self.shard_id, self.sequence_number),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": format!("arn:aws:iam::{account}:role/kinesis-firehose-bridge"),
            "awsRegion": region,
            "eventSourceARN": self.stream_arn,
        })
    }
}

/// A `KinesisEvent` document of these records.
pub fn event(records: impl IntoIterator<Item = Value>) -> Value {
    json!({ "Records": records.into_iter().collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{KinesisBatch, SourceRecord};

    #[test]
    fn the_function_reads_what_it_builds() {
        let record = EventRecord {
            shard_id: "shardId-000000000001",
            stream_arn: "arn:aws:kinesis:eu-west-1:111122223333:stream/s",
            partition_key: "pk",
            sequence_number: "4959",
            data: b"{\"a\":1}",
            arrival: 1764072000.5,
        };
        let json = record.json();
        assert_eq!(json["awsRegion"], "eu-west-1");
        assert_eq!(
            json["invokeIdentityArn"],
            "arn:aws:iam::111122223333:role/kinesis-firehose-bridge"
        );
        let batch: KinesisBatch = serde_json::from_value(event([json])).unwrap();
        let read = &batch.records[0];
        assert_eq!((read.sequence_number(), read.data()), ("4959", &b"{\"a\":1}"[..]));
        assert_eq!(read.approximate_arrival_timestamp(), 1764072000.5);
    }
}

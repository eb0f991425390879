//! The benchmark batches and the bridge they run through, shared by
//! `invocation` and `cost`.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, Config, kpl};

/// One analytics event of about `size` bytes, shaped like real traffic.
pub fn event(i: usize, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"event_id":"0193a5c2-7d4e-7a8b-9c1d-{i:012}","event_type":"page_view","timestamp":"2026-11-25T12:00:00.123Z","user_id":"user-{}","session_id":"s-{}","properties":{{"path":"/products/{i}","referrer":"https://search.example/?q=shoes","pad":""#,
        i % 977,
        i % 131
    );
    let pad = size.saturating_sub(head.len() + 3);
    let mut e = head.into_bytes();
    e.extend(std::iter::repeat_n(b'x', pad));
    e.extend_from_slice(b"\"}}");
    e
}

/// A `KinesisEvent` document as Lambda sends it, with these record payloads.
pub fn payload(records: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<serde_json::Value> = records
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let seq = format!("49658000000000000000000000000000000000000000000000{i:06}");
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": format!("user-{i}"),
                    "sequenceNumber": seq,
                    "data": STANDARD.encode(data),
                    "approximateArrivalTimestamp": 1764072000.123
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000003:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/kinesis-firehose-bridge",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/analytics-events"
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
}

pub struct Batch {
    pub name: &'static str,
    pub payload: Vec<u8>,
    /// Bytes of event payload (user records), for MB/s.
    pub event_bytes: u64,
    pub events: u64,
}

pub fn batches() -> Vec<Batch> {
    let plain = |name, n: usize, size: usize| {
        let records: Vec<Vec<u8>> = (0..n).map(|i| event(i, size)).collect();
        Batch {
            name,
            event_bytes: records.iter().map(|r| r.len() as u64).sum(),
            events: n as u64,
            payload: payload(&records),
        }
    };
    let kpl = {
        let events: Vec<Vec<u8>> = (0..500).map(|i| event(i, 200)).collect();
        let aggregates: Vec<Vec<u8>> = events
            .chunks(100)
            .map(|chunk| {
                kpl::aggregate(
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (if i % 2 == 0 { "a" } else { "b" }, &e[..])),
                )
            })
            .collect();
        Batch {
            name: "kpl_5x100x200B",
            event_bytes: events.iter().map(|e| e.len() as u64).sum(),
            events: 500,
            payload: payload(&aggregates),
        }
    };
    let invalid = {
        let records: Vec<Vec<u8>> = (0..500)
            .map(|i| {
                if i % 10 == 0 {
                    br#"{"event_type":"page_view"}"#.to_vec()
                } else {
                    event(i, 1024)
                }
            })
            .collect();
        Batch {
            name: "500x1KB_10pct_invalid",
            event_bytes: records.iter().map(|r| r.len() as u64).sum(),
            events: 500,
            payload: payload(&records),
        }
    };
    vec![
        plain("500x200B", 500, 200),
        plain("500x1KB", 500, 1024),
        plain("100x10KB", 100, 10 * 1024),
        kpl,
        invalid,
    ]
}

/// Firehose that accepts every record at once and keeps nothing.
pub struct Accepting;

impl Firehose for Accepting {
    async fn put_record_batch(&self, _stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        Ok(vec![None; std::hint::black_box(records).len()])
    }
}

/// The bridge over two delivery streams, packing or not.
pub fn bridge<F: Firehose>(firehose: F, pack: bool) -> Bridge<F, NoStore> {
    let pack = if pack { "true" } else { "false" };
    let config = Config::from_lookup(|name| match name {
        "DELIVERY_STREAMS" => Some("events-0,events-1".to_owned()),
        "PACK_EVENTS" => Some(pack.to_owned()),
        _ => None,
    })
    .unwrap();
    Bridge::new(config, Contract::Default, firehose, NoStore)
}

//! One Kinesis record's data through `record::unpack`, then through the
//! bridge. Holds: a record rejected whole (a corrupt aggregate, one beyond
//! the bounds) keeps its bytes, and they come back whole from the rejects
//! stream's lines; every user record of an opened aggregate is a slice of
//! the record.
#![no_main]

use std::sync::Mutex;

use kinesis_firehose_bridge::batch::KinesisBatch;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::record::{self, Unpacked};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, Config};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Keeping {
    reject_lines: Mutex<Vec<RejectLine>>,
}

impl Firehose for Keeping {
    async fn put_record_batch(&self, stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        if stream == "rejects" {
            let mut lines = self.reject_lines.lock().unwrap();
            for record in records {
                for line in record.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    lines.push(serde_json::from_slice(line).unwrap());
                }
            }
        }
        Ok(vec![None; records.len()])
    }
}

fuzz_target!(|data: &[u8]| {
    let event = serde_json::json!({"Records": [{"kinesis": {
        "partitionKey": "pk",
        "sequenceNumber": "49590000000000000000000000000000000000000000000000000001",
        "data": base64(data),
        "approximateArrivalTimestamp": 1764072000.5
    }}]});
    let batch: KinesisBatch = serde_json::from_value(event).unwrap();
    let rejected_whole = match record::unpack(0, &batch.records[0], usize::MAX) {
        Unpacked::Rejected(incoming, _) => {
            assert_eq!(incoming.data, data);
            true
        }
        Unpacked::Events(events) => {
            let own = batch.records[0].kinesis.data.as_ptr_range();
            for e in &events {
                assert!(e.data.is_empty() || own.contains(&e.data.as_ptr()), "borrowed from the record");
            }
            false
        }
        Unpacked::Event(e) => {
            assert_eq!(e.data, data);
            false
        }
        Unpacked::Deferred => unreachable!("an invocation of one record defers nothing"),
    };

    let config = Config::from_lookup(|name| match name {
        "DELIVERY_STREAMS" => Some("s".to_owned()),
        "REJECTS_DELIVERY_STREAM" => Some("rejects".to_owned()),
        _ => None,
    })
    .unwrap();
    let bridge = Bridge::new(config, Contract::Default, Keeping::default(), NoStore);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let processed = runtime.block_on(bridge.process(&batch.records, None, "fuzz"));
    assert!(processed.summary.is_balanced());
    if rejected_whole {
        let lines = bridge.firehose.reject_lines.lock().unwrap().clone();
        let recovered = reject::recover(lines).unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].payload, data, "a rejected aggregate keeps its bytes");
    }
});

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

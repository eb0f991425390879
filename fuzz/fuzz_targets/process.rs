//! The invocation payload through `Bridge::process`, configured as deployed
//! (two delivery streams, a rejects stream), against a Firehose that accepts
//! everything and checks every request against the service's limits.
//!
//! Holds: the summary balances; no request breaks a Firehose limit; every
//! line sent to the rejects stream parses, and the rejected payloads put back
//! together from them are records of the batch or user records of its
//! aggregates.
#![no_main]

use std::sync::Mutex;

use kinesis_firehose_bridge::batch::{KinesisBatch, SourceRecord};
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::limits::{MAX_RECORD_SIZE, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_SIZE};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use kinesis_firehose_bridge::request::request_size;
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, Config};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Checking {
    reject_lines: Mutex<Vec<RejectLine>>,
}

impl Firehose for Checking {
    async fn put_record_batch(&self, stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        assert!(!records.is_empty() && records.len() <= MAX_RECORDS_PER_REQUEST);
        assert!(records.iter().all(|r| r.len() <= MAX_RECORD_SIZE));
        let lengths: Vec<usize> = records.iter().map(|r| r.len()).collect();
        assert!(request_size(stream, &lengths) <= MAX_REQUEST_SIZE);
        if stream == "rejects" {
            let mut lines = self.reject_lines.lock().unwrap();
            for record in records {
                for line in record.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    lines.push(serde_json::from_slice(line).expect("a reject line parses"));
                }
            }
        }
        Ok(vec![None; records.len()])
    }
}

fuzz_target!(|payload: &[u8]| {
    let Ok(batch) = serde_json::from_slice::<KinesisBatch>(payload) else {
        return; // the runtime fails such an invocation before the handler
    };
    let config = Config::from_lookup(|name| match name {
        "DELIVERY_STREAMS" => Some("s0,s1".to_owned()),
        "REJECTS_DELIVERY_STREAM" => Some("rejects".to_owned()),
        _ => None,
    })
    .unwrap();
    let bridge = Bridge::new(config, Contract::Default, Checking::default(), NoStore);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let processed = runtime.block_on(bridge.process(&batch.records, None, "fuzz"));
    assert!(processed.summary.is_balanced(), "{:?}", processed.summary);
    assert!(processed.verdict.is_ok());

    let lines = bridge.firehose.reject_lines.lock().unwrap().clone();
    let recovered = reject::recover(lines).expect("every rejected payload is whole");
    let mut known: Vec<&[u8]> = batch.records.iter().map(|r| r.data()).collect();
    let users: Vec<Vec<u8>> = batch
        .records
        .iter()
        .filter_map(|r| kinesis_firehose_bridge::kpl::deaggregate(r.data(), kinesis_firehose_bridge::kpl::Bounds::NONE).ok())
        .flatten()
        .map(|u| u.data.to_vec())
        .collect();
    known.extend(users.iter().map(Vec::as_slice));
    for r in &recovered {
        assert!(known.contains(&&r.payload[..]), "a rejected payload that came in");
    }
});

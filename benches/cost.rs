//! What Firehose bills for each benchmark batch, packed and unpacked: billed
//! bytes (each record rounded up to 5 KiB) per event byte, and records per
//! 1,000 events. Computed, not timed. `cargo bench --bench cost`

mod batches;

use kinesis_firehose_bridge::batch::KinesisBatch;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::{Bridge, Config};

struct Accepting;

impl Firehose for Accepting {
    async fn put_record_batch(&self, _stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        Ok(vec![None; records.len()])
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    println!("| batch | mode | Firehose records per 1,000 events | billed bytes / bytes delivered |");
    println!("|---|---|---:|---:|");
    for batch in batches::batches() {
        let event: KinesisBatch = serde_json::from_slice(&batch.payload).unwrap();
        for pack in [true, false] {
            let config = Config::from_lookup(|name| match name {
                "DELIVERY_STREAMS" => Some("a,b".to_owned()),
                "PACK_EVENTS" => Some(pack.to_string()),
                _ => None,
            })
            .unwrap();
            let bridge = Bridge {
                config,
                contract: Contract::Default,
                firehose: Accepting,
            };
            let summary = runtime.block_on(bridge.process(&event.records, None, "cost")).summary;
            let records_per_1000 = summary.firehose_records as f64 * 1000.0 / summary.events_delivered as f64;
            let billed_ratio = summary.firehose_billed_bytes as f64 / summary.firehose_bytes as f64;
            println!(
                "| {} | {} | {:.1} | {:.2} |",
                batch.name,
                if pack { "packed" } else { "unpacked" },
                records_per_1000,
                billed_ratio
            );
        }
    }
}

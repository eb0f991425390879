//! What Firehose bills for each benchmark batch, packed and unpacked: billed
//! bytes (each record rounded up to 5 KiB) per event byte, and records per
//! 1,000 events. Computed, not timed. `cargo bench --bench cost`

mod batches;

use kinesis_firehose_bridge::batch::KinesisBatch;

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
            let bridge = batches::bridge(batches::Accepting, pack);
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

//! What Firehose bills for each benchmark batch, in each mode: records per
//! 1,000 events, billed bytes (each record rounded up to 5 KiB) per byte
//! delivered and per byte of events; then, for the realistic and the
//! high-entropy mixes, what each gzip level gives. Computed, not timed.
//! `cargo bench --bench cost`

mod batches;

use batches::Mode;
use kinesis_firehose_bridge::batch::KinesisBatch;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    println!(
        "| batch | mode | Firehose records per 1,000 events | billed bytes / bytes sent | billed bytes / event bytes |"
    );
    println!("|---|---|---:|---:|---:|");
    for batch in batches::batches().into_iter().chain(batches::mixes()) {
        let event: KinesisBatch = serde_json::from_slice(&batch.payload).unwrap();
        for mode in [Mode::Packed, Mode::Gzip, Mode::Unpacked] {
            let bridge = batches::bridge(batches::Accepting, mode);
            let summary = runtime.block_on(bridge.process(&event.records, None, "cost")).summary;
            let records_per_1000 = summary.firehose_records as f64 * 1000.0 / summary.events_delivered as f64;
            let billed_per_sent = summary.firehose_billed_bytes as f64 / summary.firehose_bytes as f64;
            let billed_per_event = summary.firehose_billed_bytes as f64 / summary.event_bytes as f64;
            println!(
                "| {} | {} | {:.1} | {:.2} | {:.3} |",
                batch.name,
                mode.name(),
                records_per_1000,
                billed_per_sent,
                billed_per_event
            );
        }
    }

    println!();
    println!("| mix | gzip level | compressed / raw |");
    println!("|---|---:|---:|");
    for batch in batches::mixes() {
        let event: KinesisBatch = serde_json::from_slice(&batch.payload).unwrap();
        let lines: Vec<&[u8]> = event.records.iter().map(|r| &r.kinesis.data[..]).collect();
        let raw: usize = lines.iter().map(|l| l.len() + 1).sum();
        for level in [1, 3, 6, 9] {
            let member = batches::gzip_at(&lines, level);
            println!("| {} | {level} | {:.3} |", batch.name, member.len() as f64 / raw as f64);
        }
    }
}

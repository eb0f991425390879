//! What Firehose bills for each benchmark batch, in each mode: records per
//! 1,000 events, billed bytes (each record rounded up to 5 KiB) per byte
//! delivered and per byte of events; then, for the realistic and the
//! high-entropy mixes, what each gzip level gives; last, what that comes to
//! at 5,000 events/s. Computed, not timed. `cargo bench --bench cost`

mod batches;

use batches::Mode;
use kinesis_firehose_bridge::batch::KinesisBatch;
use kinesis_firehose_bridge::limits::{DIRECT_PUT_QUOTA, DIRECT_PUT_QUOTA_OTHER_REGIONS};

/// Firehose Direct PUT ingestion, USD per GB of billed bytes, first 500 TB
/// a month, us-east-1. Source: aws.amazon.com/firehose/pricing. GB is read
/// as 2^30 bytes; read as 10^9 the dollar figures are 7% higher.
const FIREHOSE_USD_PER_GB: f64 = 0.029;
/// Direct PUT throughput quota per delivery stream in us-east-1, us-west-2
/// and eu-west-1, and elsewhere (`limits`).
const DIRECT_PUT_BYTES_PER_SECOND: f64 = DIRECT_PUT_QUOTA.bytes_per_second as f64;
const OTHER_REGIONS_BYTES_PER_SECOND: f64 = DIRECT_PUT_QUOTA_OTHER_REGIONS.bytes_per_second as f64;
/// The rate the product is built for.
const EVENTS_PER_SECOND: f64 = 5000.0;
/// A 30-day month.
const SECONDS_PER_MONTH: f64 = 30.0 * 86_400.0;

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
    println!(
        "| mix | mode | mean event | Firehose USD per million events | Firehose USD per month at 5,000/s | sent at 5,000/s: streams at a 5 MiB/s / 1 MiB/s quota | sent at 50,000/s: streams at 5 / 1 MiB/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for batch in batches::mixes() {
        let event: KinesisBatch = serde_json::from_slice(&batch.payload).unwrap();
        for mode in [Mode::Gzip, Mode::Packed, Mode::Unpacked] {
            let bridge = batches::bridge(batches::Accepting, mode);
            let summary = runtime.block_on(bridge.process(&event.records, None, "cost")).summary;
            let events = summary.events_delivered as f64;
            let billed_per_event = summary.firehose_billed_bytes as f64 / events;
            let usd_per_million = billed_per_event * 1e6 / GIB * FIREHOSE_USD_PER_GB;
            let usd_per_month = usd_per_million * EVENTS_PER_SECOND * SECONDS_PER_MONTH / 1e6;
            let sent_per_event = summary.firehose_bytes as f64 / events;
            let streams = |rate: f64| {
                let sent = sent_per_event * rate;
                format!(
                    "{:.2} MiB/s: {:.0} / {:.0}",
                    sent / (1024.0 * 1024.0),
                    (sent / DIRECT_PUT_BYTES_PER_SECOND).ceil(),
                    (sent / OTHER_REGIONS_BYTES_PER_SECOND).ceil()
                )
            };
            println!(
                "| {} | {} | {:.0} B | {:.4} | {:.0} | {} | {} |",
                batch.name,
                mode.name(),
                summary.event_bytes as f64 / events,
                usd_per_million,
                usd_per_month,
                streams(EVENTS_PER_SECOND),
                streams(10.0 * EVENTS_PER_SECOND),
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
        for level in [1, 2, 3, 4, 5, 6, 9] {
            let member = batches::gzip_at(&lines, level);
            println!("| {} | {level} | {:.3} |", batch.name, member.len() as f64 / raw as f64);
        }
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

//! Per-invocation work, in process: from the invocation payload bytes as the
//! runtime receives them (a Lambda `KinesisEvent` JSON document) to the
//! finished `PutRecordBatch` requests, with Firehose answering at once.
//!
//! Beside each batch, in the same run, the floor it is compared against:
//! one `serde_json` pass that reads the payload and discards it
//! (`IgnoredAny`), and one that also base64-decodes every record's `data`
//! (everything else ignored). For reference, the cost of parsing the
//! payload into `aws_lambda_events`' `KinesisEvent`. Compare ratios within
//! one run: this machine is noisy.
//!
//! `cargo bench --bench invocation`

mod batches;

use std::hint::black_box;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_firehose::Client;
use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use batches::{Accepting, Mode, batches, bridge};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kinesis_firehose_bridge::batch::KinesisBatch;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use serde::de::IgnoredAny;

/// The floor: only each record's `data`, base64-decoded.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read by serde only
struct FloorBatch {
    #[serde(rename = "Records")]
    records: Vec<FloorRecord>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FloorRecord {
    kinesis: FloorData,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FloorData {
    #[serde(deserialize_with = "decode")]
    data: Vec<u8>,
}

fn decode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = <&str as serde::Deserialize>::deserialize(d)?;
    base64_simd::STANDARD
        .decode_to_vec(text)
        .map_err(serde::de::Error::custom)
}

fn invocation(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let packed = bridge(Accepting, Mode::Packed);
    let unpacked = bridge(Accepting, Mode::Unpacked);

    let accept_all = mock!(Client::put_record_batch).then_compute_output(|req| {
        let entries = req
            .records()
            .iter()
            .map(|_| PutRecordBatchResponseEntry::builder().record_id("r").build());
        PutRecordBatchOutput::builder()
            .failed_put_count(0)
            .set_request_responses(Some(entries.collect()))
            .build()
            .unwrap()
    });
    let sdk = bridge(
        SdkFirehose::new(mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&accept_all])),
        Mode::Packed,
    );
    let sdk_gzip = bridge(
        SdkFirehose::new(mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&accept_all])),
        Mode::Gzip,
    );

    for batch in batches().into_iter().chain(batches::mixes()) {
        let mut group = c.benchmark_group(batch.name);
        group.throughput(Throughput::Bytes(batch.event_bytes));
        let bytes = &batch.payload[..];

        group.bench_function("floor_ignored_any", |b| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(bytes)).unwrap())
        });
        group.bench_function("floor_base64", |b| {
            b.iter(|| serde_json::from_slice::<FloorBatch>(black_box(bytes)).unwrap())
        });
        group.bench_function("aws_lambda_events_parse", |b| {
            b.iter(|| serde_json::from_slice::<KinesisEvent>(black_box(bytes)).unwrap())
        });
        for (name, bridge) in [("packed", &packed), ("unpacked", &unpacked)] {
            group.bench_with_input(BenchmarkId::new("handler", name), bytes, |b, bytes| {
                b.iter(|| {
                    let event: KinesisBatch = serde_json::from_slice(black_box(bytes)).unwrap();
                    let processed = runtime.block_on(bridge.process(&event.records, None, "bench"));
                    assert_eq!(processed.summary.events_received as u64, batch.events);
                    processed
                })
            });
        }
        // The same work reading the payload as `aws_lambda_events` does.
        group.bench_with_input(
            BenchmarkId::new("handler_via_kinesis_event", "packed"),
            bytes,
            |b, bytes| {
                b.iter(|| {
                    let event: KinesisEvent = serde_json::from_slice(black_box(bytes)).unwrap();
                    runtime.block_on(packed.process(&event.records, None, "bench"))
                })
            },
        );
        for (name, bridge) in [("packed", &sdk), ("gzip", &sdk_gzip)] {
            group.bench_with_input(BenchmarkId::new("handler_through_sdk", name), bytes, |b, bytes| {
                b.iter(|| {
                    let event: KinesisBatch = serde_json::from_slice(black_box(bytes)).unwrap();
                    runtime.block_on(bridge.process(&event.records, None, "bench"))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, invocation);
criterion_main!(benches);

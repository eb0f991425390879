//! Gzip time per batch at each level, for the realistic and the
//! high-entropy mixes (their ratios are in the `cost` bench): the measure
//! the bridge's level was chosen by. `cargo bench --bench compression`

mod batches;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kinesis_firehose_bridge::batch::KinesisBatch;

fn compression(c: &mut Criterion) {
    for batch in batches::mixes() {
        let event: KinesisBatch = serde_json::from_slice(&batch.payload).unwrap();
        let lines: Vec<&[u8]> = event.records.iter().map(|r| &r.kinesis.data[..]).collect();
        let mut group = c.benchmark_group(format!("gzip_{}", batch.name));
        group.throughput(Throughput::Bytes(batch.event_bytes));
        for level in [1u32, 2, 3, 4, 5, 6, 9] {
            group.bench_with_input(BenchmarkId::new("level", level), &lines, |b, lines| {
                b.iter(|| batches::gzip_at(black_box(lines), level))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, compression);
criterion_main!(benches);

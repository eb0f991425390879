//! The worst case of a schema's `pattern` on an attacker's input: the
//! classic backtracking pattern `^(a+)+$` against a run of `a` ended by
//! `!`, which takes a backtracking engine about 2^n steps.
//!
//! - `bridge`: the event checked by the bridge's own schema contract (the
//!   `regex` engine, linear in the input).
//! - `fancy_lookahead`: the same language with a look-ahead inside the
//!   loop, `^((?=a)a+)+$`, which only a backtracking engine (`fancy-regex`,
//!   `jsonschema`'s default) can run, and which it runs until its backtrack
//!   limit (1,000,000 steps by default). A look-ahead around the whole
//!   pattern would not show it: `fancy-regex` hands a look-around's plain
//!   body to the linear engine.
//!
//! `cargo bench --bench patterns`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jsonschema::PatternOptions;
use kinesis_firehose_bridge::event::{Contract, Formats};
use serde_json::json;

fn patterns(c: &mut Criterion) {
    let bridge = Contract::from_schema(
        &json!({"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}),
        Formats::Assert,
    )
    .unwrap();
    let fancy = jsonschema::options()
        .with_pattern_options(PatternOptions::fancy_regex())
        .build(&json!({"type": "string", "pattern": "^((?=a)a+)+$"}))
        .unwrap();
    let mut group = c.benchmark_group("pattern_worst_case");
    for n in [16usize, 20, 30, 1_000, 100_000] {
        let hostile = format!("{}!", "a".repeat(n));
        let event = serde_json::to_vec(&json!({"name": hostile})).unwrap();
        group.bench_with_input(BenchmarkId::new("bridge", n), &event, |b, event| {
            b.iter(|| bridge.check(black_box(event)).is_err())
        });
        if n <= 30 {
            let value = json!(hostile);
            group.bench_with_input(BenchmarkId::new("fancy_lookahead", n), &value, |b, value| {
                b.iter(|| fancy.is_valid(black_box(value)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, patterns);
criterion_main!(benches);

//! Property: whatever the batch and whatever Firehose does, every event is
//! accounted for exactly once, every request is within the limits, and no
//! event is delivered twice within one invocation.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use kinesis_firehose_bridge::firehose::CallError;
use kinesis_firehose_bridge::kpl;
use kinesis_firehose_bridge::limits::{MAX_RECORD_SIZE, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_SIZE};
use kinesis_firehose_bridge::report::Status;
use kinesis_firehose_bridge::request::request_size;
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Input {
    Valid { padding: usize },
    Invalid,
    Aggregate { valid: usize, invalid: usize },
    CorruptAggregate,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (0usize..3000).prop_map(|padding| Input::Valid { padding }),
        1 => Just(Input::Invalid),
        2 => (0usize..20, 0usize..3).prop_map(|(valid, invalid)| Input::Aggregate { valid, invalid }),
        1 => Just(Input::CorruptAggregate),
    ]
}

/// What Firehose does to each call: fail it whole with `call_failure`
/// chance, else refuse each entry with `entry_failure` chance. `broken`
/// names a stream that fails every call.
#[derive(Debug, Clone)]
struct Faults {
    call_failure: f64,
    entry_failure: f64,
    broken: Option<usize>,
    seed: u64,
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        prop_oneof![Just(0.0), 0.0..0.5, Just(1.0)],
        prop_oneof![Just(0.0), 0.0..0.9, Just(1.0)],
        proptest::option::of(0usize..4),
        any::<u64>(),
    )
        .prop_map(|(call_failure, entry_failure, broken, seed)| Faults {
            call_failure,
            entry_failure,
            broken,
            seed,
        })
}

/// A small deterministic generator, so that a failing case replays.
fn next(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

struct Built {
    payloads: Vec<Vec<u8>>,
    /// Every valid event's line and the index of its Kinesis record.
    valid: Vec<(Vec<u8>, usize)>,
    /// The Kinesis record of every rejected event.
    rejected: Vec<usize>,
    events: usize,
}

fn build(inputs: &[Input]) -> Built {
    let mut id = 0;
    let mut fresh = |padding: usize| {
        id += 1;
        format!(
            r#"{{"event_id":"e-{id}","event_type":"t","timestamp":"2026-11-25T12:00:00Z","p":"{}"}}"#,
            "x".repeat(padding)
        )
        .into_bytes()
    };
    let mut built = Built {
        payloads: Vec::new(),
        valid: Vec::new(),
        rejected: Vec::new(),
        events: 0,
    };
    for (record, input) in inputs.iter().enumerate() {
        let payload = match input {
            Input::Valid { padding } => {
                let e = fresh(*padding);
                built.valid.push((e.clone(), record));
                built.events += 1;
                e
            }
            Input::Invalid => {
                built.events += 1;
                built.rejected.push(record);
                br#"{"event_type":"t"}"#.to_vec()
            }
            Input::Aggregate { valid, invalid } => {
                let mut users = Vec::new();
                for _ in 0..*valid {
                    let e = fresh(10);
                    built.valid.push((e.clone(), record));
                    users.push(e);
                }
                users.extend((0..*invalid).map(|_| b"nope".to_vec()));
                built.rejected.extend(std::iter::repeat_n(record, *invalid));
                if users.is_empty() {
                    // An empty aggregate is rejected as one record.
                    built.rejected.push(record);
                }
                built.events += users.len().max(1);
                kpl::aggregate(users.iter().map(|u| ("k", &u[..])))
            }
            Input::CorruptAggregate => {
                built.events += 1;
                built.rejected.push(record);
                let mut a = kpl::aggregate([("k", &fresh(5)[..])]);
                let last = a.len() - 1;
                a[last] ^= 0x55;
                a
            }
        };
        built.payloads.push(payload);
    }
    built
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_event_is_accounted_for_exactly_once(
        inputs in proptest::collection::vec(input(), 0..120),
        faults in faults(),
        streams in 1usize..4,
        pack in any::<bool>(),
        max_record_bytes in prop_oneof![Just(1_024_000usize), 200usize..20_000],
        max_events in prop_oneof![Just(500usize), 1usize..10],
        retry_mode in any::<bool>(),
        attempts in 1u32..5,
        gzip in any::<bool>(),
        s3_broken in any::<bool>(),
        rejects_stream in any::<bool>(),
    ) {
        let built = build(&inputs);
        let names: Vec<String> = (0..streams).map(|i| format!("s{i}")).collect();
        let broken = faults.broken.map(|b| format!("s{b}"));
        let rng = Mutex::new(faults.seed | 1);
        let (call_failure, entry_failure) = (faults.call_failure, faults.entry_failure);
        let firehose = ScriptedFirehose::new(move |stream, _, records| {
            let mut state = rng.lock().unwrap();
            if broken.as_deref() == Some(stream) || next(&mut state) < call_failure {
                return Err(CallError::Service { code: "InternalFailure".into(), message: "boom".into() });
            }
            Ok(records.iter().map(|_| (next(&mut state) < entry_failure).then(slow_down)).collect())
        });
        let joined = names.join(",");
        // Every valid event fits a record alone, compressed or not.
        let bytes = if gzip { max_record_bytes.max(2_000) } else { max_record_bytes }.to_string();
        let events_cap = max_events.to_string();
        let attempts_s = attempts.to_string();
        let store = if s3_broken { MemoryStore::broken() } else { MemoryStore::default() };
        let bridge = bridge_with_store(&[
            ("DELIVERY_STREAMS", joined.as_str()),
            ("PACK_EVENTS", if pack { "true" } else { "false" }),
            ("MAX_RECORD_BYTES", bytes.as_str()),
            ("MAX_EVENTS_PER_RECORD", events_cap.as_str()),
            ("ON_PARTIAL_FAILURE", if retry_mode { "retry" } else { "log" }),
            ("MAX_PUT_ATTEMPTS", attempts_s.as_str()),
            ("COMPRESSION", if gzip { "gzip" } else { "none" }),
            ("REJECTS_DELIVERY_STREAM", if rejects_stream { "rejects" } else { "" }),
        ], firehose, store);
        let batch = records(&built.payloads);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let processed = runtime.block_on(bridge.process(&batch, None, "req"));
        let summary = &processed.summary;

        // The invariant.
        prop_assert!(summary.is_balanced(), "{summary:?}");
        prop_assert_eq!(summary.events_received, built.events);
        prop_assert_eq!(summary.records_received, inputs.len());

        // Limits, on every call made.
        for call in bridge.firehose.calls() {
            prop_assert!(!call.records.is_empty());
            prop_assert!(call.records.len() <= MAX_RECORDS_PER_REQUEST);
            prop_assert!(call.records.iter().all(|r| r.len() <= MAX_RECORD_SIZE));
            let lengths: Vec<usize> = call.records.iter().map(Vec::len).collect();
            prop_assert!(request_size(&call.stream, &lengths) <= MAX_REQUEST_SIZE);
        }

        // Nothing delivered twice; what was delivered is what is counted.
        let delivered: Vec<Vec<u8>> = bridge.firehose.delivered_lines()
            .into_iter()
            .filter(|l| !l.starts_with(b"{\"reason\""))
            .collect();
        let unique: HashSet<&Vec<u8>> = delivered.iter().collect();
        prop_assert_eq!(unique.len(), delivered.len(), "an event was delivered twice");
        let valid: HashSet<&Vec<u8>> = built.valid.iter().map(|(line, _)| line).collect();
        prop_assert!(unique.iter().all(|l| valid.contains(l)), "delivered something that was not a valid event");

        match &processed.verdict {
            Err(_) => {
                prop_assert_eq!(summary.status, Status::Failed);
                prop_assert!(delivered.is_empty());
                prop_assert!(!built.valid.is_empty());
                prop_assert_eq!(summary.events_retried, built.events);
            }
            Ok(response) => {
                prop_assert_eq!(summary.events_delivered, delivered.len());
                let undelivered: BTreeSet<usize> = built.valid.iter()
                    .filter(|(line, _)| !unique.contains(line))
                    .map(|(_, record)| *record)
                    .collect();
                // Rejects from the checkpoint on are handed back with their
                // records, and written by the retry: once each.
                let checkpoint = if retry_mode { undelivered.first().copied() } else { None };
                let written = built.rejected.iter().filter(|&&r| checkpoint.is_none_or(|c| r < c)).count();
                prop_assert_eq!(summary.events_rejected, written);
                // No rejects stream: every written reject is kept elsewhere.
                if !rejects_stream {
                    prop_assert_eq!(processed.unsent_rejected_events, written);
                }
                if retry_mode {
                    let expected = checkpoint.map(seq);
                    let got = response.batch_item_failures.first().and_then(|f| f.item_identifier.clone());
                    prop_assert_eq!(got, expected);
                    prop_assert!(processed.dead_letters.is_empty());
                } else {
                    prop_assert!(response.batch_item_failures.is_empty());
                    // Every undelivered event's line is in a dead letter.
                    let records = kinesis_firehose_bridge::dead_letter::reassemble(&processed.dead_letters).unwrap();
                    let dead: Vec<Vec<u8>> = records.iter().flat_map(|r| lines_of(r)).collect();
                    let dead_lines: HashSet<&[u8]> = dead.iter().map(Vec::as_slice).collect();
                    prop_assert_eq!(dead_lines.len(), summary.events_dead_lettered);
                    for (line, _) in built.valid.iter().filter(|(l, _)| !unique.contains(l)) {
                        prop_assert!(dead_lines.contains(&line[..]));
                    }
                }
            }
        }

        // Then S3: every event ends durable, or its record is handed back.
        let (summary, verdict) = runtime.block_on(bridge.finish(processed, None, "req", "fn", &MemoryLog::default()));
        prop_assert!(summary.is_balanced(), "{summary:?}");
        let Ok(response) = verdict else { return Ok(()) };
        let from = response.batch_item_failures.first().and_then(|f| f.item_identifier.clone());
        let handed_back = |record: usize| from.as_ref().is_some_and(|f| seq(record) >= *f);
        let (stored_dead, mut stored_rejects) = stored(&bridge.store);
        stored_rejects.extend(
            bridge.firehose.calls().iter().filter(|c| c.stream == "rejects")
                .flat_map(|c| c.accepted.iter().flat_map(|&i| lines_of(&c.records[i])).collect::<Vec<_>>())
                .map(|l| serde_json::from_slice::<kinesis_firehose_bridge::reject::RejectLine>(&l).unwrap().sequence_number),
        );
        for (line, record) in built.valid.iter().filter(|(l, _)| !unique.contains(l)) {
            prop_assert!(stored_dead.contains(line) || handed_back(*record), "record {record} is nowhere durable");
        }
        for &record in &built.rejected {
            prop_assert!(stored_rejects.contains(&seq(record)) || handed_back(record), "reject {record} is nowhere durable");
        }
        if s3_broken {
            prop_assert_eq!((summary.events_kept_in_s3, summary.events_dead_lettered), (0, 0));
        } else if !rejects_stream {
            prop_assert_eq!(summary.events_kept_in_s3, summary.events_dead_lettered + summary.events_rejected);
        }
    }
}

/// The event lines of the dead letters in `store`, and the sequence numbers
/// of the rejects.
fn stored(store: &MemoryStore) -> (HashSet<Vec<u8>>, HashSet<String>) {
    use kinesis_firehose_bridge::dead_letter::{DeadLetter, reassemble};
    use kinesis_firehose_bridge::reject::RejectLine;
    let objects = store.objects.lock().unwrap();
    let lines = |prefix: &str| -> Vec<Vec<u8>> {
        objects
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .flat_map(|(_, body)| {
                body.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let letters: Vec<DeadLetter> = lines("dead-letters/")
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let dead = reassemble(&letters).unwrap().iter().flat_map(|r| lines_of(r)).collect();
    let rejects = lines("rejects-unsent/")
        .iter()
        .map(|l| serde_json::from_slice::<RejectLine>(l).unwrap().sequence_number)
        .collect();
    (dead, rejects)
}
